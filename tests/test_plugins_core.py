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


# --- register_commands, and containment of broken plugins -------------------------------------------

def _manager_with(*plugins: object):
    import pluggy

    from paprec_cli.plugins import Registry

    manager = pluggy.PluginManager("paprec")
    manager.add_hookspecs(hookspecs)
    for index, plugin in enumerate(plugins):
        manager.register(plugin, name=f"fake{index}")
    return Registry(manager=manager)


def test_register_commands_adds_a_command(runner) -> None:
    from paprec_cli.commands.common import PaprecTyper
    from paprec_cli.hookspecs import hookimpl
    from paprec_cli.plugins import PluginRecord, register_plugin_commands

    class Plugin:
        @hookimpl
        def register_commands(self, app):
            @app.command("hello")
            def hello() -> None:
                print("hello from a plugin")

    registry = _manager_with(Plugin())
    registry.plugins.append(PluginRecord(name="fake0", version="1", hooks=["register_commands"]))
    app_ = PaprecTyper()

    @app_.command("noop")
    def noop() -> None:  # a second command so Typer keeps subcommand mode
        pass

    register_plugin_commands(app_, registry)
    result = runner.invoke(app_, ["hello"])
    assert result.exit_code == 0, result.output
    assert "hello from a plugin" in result.stdout


def test_broken_register_commands_is_recorded_not_raised() -> None:
    from paprec_cli.commands.common import PaprecTyper
    from paprec_cli.hookspecs import hookimpl
    from paprec_cli.plugins import PluginRecord, register_plugin_commands

    class Broken:
        @hookimpl
        def register_commands(self, app):
            raise RuntimeError("boom")

    registry = _manager_with(Broken())
    registry.plugins.append(PluginRecord(name="fake0", version="1", hooks=["register_commands"]))
    register_plugin_commands(PaprecTyper(), registry)
    assert registry.plugins[0].status.startswith("error in register_commands")


def test_broken_register_datasets_does_not_hide_other_plugins() -> None:
    from paprec_cli.hookspecs import hookimpl
    from paprec_cli.plugins import PluginRecord, _register_each
    from paprec_cli.specs import DatasetSpec

    class Broken:
        @hookimpl
        def register_datasets(self, register):
            raise ValueError("cannot read config")

    class Good:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec(name="good", description="d", files="none", load=lambda p, o: None))

        @hookimpl
        def register_tasks(self, register):
            register("not a task spec")

    broken, good = Broken(), Good()
    registry = _manager_with(broken, good)
    records = [PluginRecord("fake0", "1", []), PluginRecord("fake1", "1", [])]
    _register_each(registry.manager, broken, records[0], registry)
    _register_each(registry.manager, good, records[1], registry)
    assert "cannot read config" in records[0].status
    assert "good" in registry.datasets
    assert "register_tasks" in records[1].status  # a wrong spec type is reported, not raised


def test_dataset_name_clash_is_reported() -> None:
    from paprec_cli.hookspecs import hookimpl
    from paprec_cli.plugins import PluginRecord, _register_each
    from paprec_cli.specs import DatasetSpec

    def make(plugin_name: str):
        class P:
            @hookimpl
            def register_datasets(self, register):
                register(DatasetSpec(name="same", description=plugin_name, files="", load=lambda p, o: None))

        return P()

    first, second = make("first"), make("second")
    registry = _manager_with(first, second)
    _register_each(registry.manager, first, PluginRecord("fake0", "1", []), registry)
    _register_each(registry.manager, second, PluginRecord("fake1", "1", []), registry)
    assert registry.datasets["same"].spec.description == "first"
    assert registry.rejected and "name clash" in registry.rejected[0].status
    listed = registry.as_json()["datasets"]
    assert [d["status"] for d in listed if d["name"] == "same"] == ["ok", "name clash: already registered by fake0"]


def test_load_plugins_env_limits_external(monkeypatch) -> None:
    from paprec_cli import plugins

    monkeypatch.setenv(plugins.LOAD_ENV, "")
    assert plugins._wanted_external() == set()
    monkeypatch.setenv(plugins.LOAD_ENV, "a, b")
    assert plugins._wanted_external() == {"a", "b"}
    monkeypatch.delenv(plugins.LOAD_ENV)
    assert plugins._wanted_external() is None
