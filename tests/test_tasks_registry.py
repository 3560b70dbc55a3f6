"""The built-in tasks register through `register_tasks`, and a clashing third-party task cannot replace one."""

from __future__ import annotations

import json
from collections.abc import Callable

import paprec_tasks
import pluggy
from paprec_tasks import SequentialTask

from paprec_cli import hookspecs
from paprec_cli.cli import app
from paprec_cli.hookspecs import hookimpl
from paprec_cli.plugins import PluginRecord, Registry, _register_each
from paprec_cli.specs import TaskSpec


def test_plugins_json_lists_builtin_tasks(runner, home) -> None:
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    tasks = {t["name"]: t for t in data["tasks"]}
    for name in ("rating", "sequential", "direct"):
        assert tasks[name]["status"] == "ok"
        assert tasks[name]["plugin"] == "paprec_tasks"


class ImpostorSequential(SequentialTask):
    description = "a third party's task that reuses a built-in name"


class ImpostorPlugin:
    @hookimpl
    def register_tasks(self, register: Callable[[TaskSpec], None]) -> None:
        register(ImpostorSequential())


def test_name_clash_is_reported_not_replacing_builtin() -> None:
    manager = pluggy.PluginManager("paprec")
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager=manager)
    impostor = ImpostorPlugin()
    for name, plugin in (("paprec_tasks", paprec_tasks), ("impostor", impostor)):
        manager.register(plugin, name=name)
        record = PluginRecord(name=name, version="test", hooks=["register_tasks"])
        registry.plugins.append(record)
        _register_each(manager, plugin, record, registry)
    assert set(registry.tasks) == {"rating", "sequential", "direct"}
    assert type(registry.task("sequential")) is SequentialTask
    clash = [r for r in registry.rejected if r.name == "sequential"]
    assert len(clash) == 1 and clash[0].plugin == "impostor"
    assert "name clash" in clash[0].status and "paprec_tasks" in clash[0].status
    rows = registry.as_json()["tasks"]
    assert {"name": "sequential", "plugin": "impostor", "status": clash[0].status} in rows
    assert all(p.status == "ok" for p in registry.plugins)
