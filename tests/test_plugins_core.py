"""The plugin contract: hooks are documented and tested; broken plugins are contained."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from paprec_cli import hookspecs
from paprec_cli.cli import app

HOOKS = [name for name, obj in vars(hookspecs).items() if inspect.isfunction(obj) and name.startswith("register_")]


def test_every_hook_is_documented_and_tested() -> None:
    """datasette's guard: a new hook needs a docstring, a README mention and a test naming it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    tests_text = "".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py"))
    assert HOOKS, "no hooks found"
    for name in HOOKS:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"
        assert name in readme, f"hook {name} is not documented in README.md"
        assert tests_text.count(name) >= 2, f"hook {name} has no test besides this guard"


def test_plugins_json_shape(runner, home) -> None:
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data) == {"tasks", "datasets", "plugins"}
    names = {p["name"] for p in data["plugins"]}
    assert {"paprec_tasks", "paprec_datasets"} <= names
    assert all(p["status"] == "ok" for p in data["plugins"])


def test_version(runner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("paprec ")
