"""The model registry (`paprec_cli.registry`) and run lookup (`paprec_cli.runs`): the one owner of each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paprec_cli import registry, runs
from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home
from paprec_cli.serving import Request, check_request


def _model(home: Home, name: str, dataset: str, training: dict | None = None) -> Path:
    folder = home.model_dir(name)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"dataset": {"name": dataset}, "size": "tiny",
                                                    "id_scheme": "atomic"}), encoding="utf-8")
    if training is not None:
        (folder / "training.json").write_text(json.dumps(training), encoding="utf-8")
    return folder


def test_default_model_prefers_tiny_atomic_then_the_only_one(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path)
    with pytest.raises(PaprecError, match="no trained model for dataset 'beauty'.*paprec train --dataset beauty"):
        registry.default_model(home, "beauty")
    only = _model(home, "mine", "beauty")
    assert registry.default_model(home, "beauty") == str(only)
    _model(home, "other", "beauty")
    with pytest.raises(PaprecError, match=r"several models are trained on 'beauty' \(mine, other\)"):
        registry.default_model(home, "beauty")
    preferred = _model(home, "beauty-tiny-atomic", "beauty")
    assert registry.default_model(home, "beauty") == str(preferred)


def test_listing_skips_hidden_folders_and_summarises(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path)
    _model(home, "m1", "synthetic", {"tasks": ["sequential"], "epochs": 2, "test": {"sequential": {"HR@10": 0.25}}})
    _model(home, ".m1.old", "synthetic")  # a swap's backup is not a model
    assert [p.name for p in registry.model_folders(home)] == ["m1"]
    row = registry.model_summary(home.model_dir("m1"))
    assert (row["name"], row["dataset"], row["size"], row["ids"], row["epochs"]) == ("m1", "synthetic", "tiny",
                                                                                      "atomic", 2)
    assert registry.headline(registry.read_model_json(home.model_dir("m1") / "training.json")) == \
        "sequential HR@10 0.2500"
    with pytest.raises(PaprecError, match=r"model 'nope' not found .*known: m1"):
        registry.model_record(home, "nope")


def test_run_lookup_resume_and_recorded_split_seed(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path)
    with pytest.raises(PaprecError, match="--resume r1: no such run folder"):
        runs.resume_path(home, "r1")
    run = home.runs / "r1"
    run.mkdir(parents=True)
    assert runs.resume_path(home, "r1") == run
    with pytest.raises(PaprecError, match="no prompts.json .*paprec search --resume"):
        runs.run_prompts("r1", home)
    assert runs.recorded_split_seed(run) is None
    (run / "manifest.json").write_text(json.dumps({"config": {"split_seed": 7}}), encoding="utf-8")
    assert runs.recorded_split_seed(run) == 7


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (Request(), "exactly one of --user U, --users-file FILE or --all-users"),
        (Request(user="1", all_users=True), "exactly one of"),
        (Request(user="1", k=0), "-k and --batch-size must be integers >= 1"),
        (Request(user="1", batch_size=0), "-k and --batch-size"),
    ],
)
def test_bad_serving_requests_fail_before_loading(request_: Request, message: str) -> None:
    with pytest.raises(PaprecError, match=message):
        check_request(request_)


def test_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PaprecError, match="is a folder; expected a file path"):
        check_request(Request(all_users=True, output=tmp_path))


def test_default_model_is_the_newest_rerun_of_the_quick_start(tmp_path: Path) -> None:
    """A second `paprec train` with the default name writes `<dataset>-tiny-atomic-2`; the default model is
    then that newest version; a folder without config.json is not a model."""
    from paprec_cli.paths import Home
    from paprec_cli.registry import default_model

    home = Home.resolve(tmp_path)
    for name, config in (("synthetic-tiny-atomic", True), ("synthetic-tiny-atomic-2", True),
                         ("synthetic-tiny-atomic-3", False), ("synthetic-tiny-atomic-x", True)):
        folder = home.model_dir(name)
        folder.mkdir(parents=True)
        if config:
            (folder / "config.json").write_text("{}")
    assert default_model(home, "synthetic") == str(home.model_dir("synthetic-tiny-atomic-2"))
