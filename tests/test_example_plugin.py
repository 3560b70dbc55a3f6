"""The example third-party plugin in examples/: installed into a temporary folder (never into the shared
venv), it shows up in `paprec plugins` and `paprec data list`, registers through `register_datasets`,
and `PAPREC_LOAD_PLUGINS` can hide it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import install_example


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed into a temporary folder (`helpers.install_example`)."""
    return install_example("paprec-example-plugin", tmp_path_factory.mktemp("example-plugin"))


def paprec(site: Path, home: Path, *args: str, load: str | None = None) -> dict:  # type: ignore[type-arg]
    """`paprec ARGS --json` in a subprocess that sees `site`; every installed plugin loads unless `load`."""
    env = {k: v for k, v in os.environ.items() if k != "PAPREC_LOAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PAPREC_HOME"] = str(home)
    if load is not None:
        env["PAPREC_LOAD_PLUGINS"] = load
    done = subprocess.run([sys.executable, "-m", "paprec_cli", *args, "--json"], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_example_plugin_is_listed_and_its_dataset_imports(site: Path, tmp_path: Path) -> None:
    plugins = paprec(site, tmp_path, "plugins")
    example = [p for p in plugins["plugins"] if p["name"] == "example"]
    assert example and example[0]["status"] == "ok" and not example[0]["builtin"]
    assert example[0]["hooks"] == ["register_datasets"]
    assert {"name": "example-toy", "plugin": "example", "status": "ok"} in plugins["datasets"]
    listing = {row["name"]: row for row in paprec(site, tmp_path, "data", "list")["datasets"]}
    assert listing["example-toy"]["status"] == "ok" and listing["example-toy"]["plugin"] == "example"
    assert {"synthetic", "beauty", "ml-100k", "csv"} <= set(listing)  # built-ins still there
    imported = paprec(site, tmp_path, "data", "import", "example-toy")
    assert (imported["users"], imported["interactions"]) == (12, 60)
    info = paprec(site, tmp_path, "data", "info", "example-toy")
    assert info["items"] == 10 and info["rating_histogram"] is not None


def test_load_plugins_env_selects_external_plugins(site: Path, tmp_path: Path) -> None:
    hidden = paprec(site, tmp_path, "data", "list", load="")
    assert "example-toy" not in {row["name"] for row in hidden["datasets"]}
    assert "synthetic" in {row["name"] for row in hidden["datasets"]}  # built-ins always load
    none = paprec(site, tmp_path, "plugins", load="")
    assert "example" not in {p["name"] for p in none["plugins"]}
    only = paprec(site, tmp_path, "plugins", load="example")
    assert "example" in {p["name"] for p in only["plugins"]}
