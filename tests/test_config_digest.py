"""A model's config.json is checked against the digest it was saved with: an edit that passes every schema check
(negatives, the history a prompt shows, a relative-attention distance) must not change a model without a word."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import invoke, last_json, last_line

from paprec_cli.model.records import config_digest
from paprec_cli.paths import Home

RECOMMEND = ["recommend", "--dataset", "synthetic", "--user", "1", "--device", "cpu"]
MODEL = "synthetic-tiny-atomic"


def _edited_copy(home: Home, name: str, edit: dict[str, object]) -> Path:
    folder = home.model_dir(name)
    shutil.copytree(home.model_dir(MODEL), folder, ignore=shutil.ignore_patterns(".lock"))
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in edit.items():
        if isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path.write_text(json.dumps(config, indent=2))
    return folder


def test_a_saved_config_records_its_own_digest(tiny_home: Home) -> None:
    config = json.loads((tiny_home.model_dir(MODEL) / "config.json").read_text())
    assert config["config_sha256"] == config_digest(config)
    assert config_digest({**config, "negatives": 7}) != config["config_sha256"]
    # formatting is not content: the same object written without indentation has the same digest
    assert config_digest(json.loads(json.dumps(config))) == config["config_sha256"]


@pytest.mark.parametrize(("name", "edit"), [
    ("edit-negatives", {"negatives": 49}),
    ("edit-distance", {"dims": {"relative_attention_max_distance": 64}}),
    ("edit-history", {"input_history": 5}),
])
def test_an_edited_config_is_refused_by_loading_and_listed_broken(tiny_home: Home, name: str,
                                                                  edit: dict[str, object]) -> None:
    folder = _edited_copy(tiny_home, name, edit)
    code, _, err = invoke(*RECOMMEND, "--model", name, "--home", str(tiny_home.root))
    line = last_line(err)
    assert code == 2 and line.startswith(f"Error: {folder / 'config.json'}: content differs from its config_sha256 "
                                         "(config.json edited or damaged after the model was saved); restore the "
                                         "file, or retrain the model"), line
    code, stdout, err = invoke("models", "list", "--home", str(tiny_home.root), "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in last_json(stdout)["models"]}
    assert "content differs from its config_sha256" in (rows[name]["broken"] or "")
    assert rows[MODEL]["broken"] is None
    shutil.rmtree(folder)


def test_a_model_saved_without_a_digest_still_loads(tiny_home: Home) -> None:
    """Models saved before the digest existed are not checked (nothing to check against)."""
    folder = tiny_home.model_dir("no-digest")
    shutil.copytree(tiny_home.model_dir(MODEL), folder, ignore=shutil.ignore_patterns(".lock"))
    config = json.loads((folder / "config.json").read_text())
    config.pop("config_sha256")
    (folder / "config.json").write_text(json.dumps(config))
    code, _, err = invoke(*RECOMMEND, "--model", "no-digest", "--home", str(tiny_home.root))
    assert code == 0, err
    shutil.rmtree(folder)


def test_models_info_refuses_an_edited_config(tiny_home: Home) -> None:
    folder = _edited_copy(tiny_home, "edit-info", {"negatives": 49})
    code, _, err = invoke("models", "info", "edit-info", "--home", str(tiny_home.root))
    assert code == 2 and "content differs from its config_sha256" in last_line(err), err
    code, _, err = invoke("models", "info", MODEL, "--home", str(tiny_home.root))
    assert code == 0, err
    shutil.rmtree(folder)
