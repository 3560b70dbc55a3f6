"""Plugin loading and the task/dataset registries.

Built-in plugins (`paprec_tasks`, `paprec_datasets`) are entry points of the `paprec` distribution in
group `paprec`, loaded exactly like third-party ones, but first. `PAPREC_LOAD_PLUGINS` (comma-separated
entry-point or distribution names; empty for none) limits which *external* plugins load. A plugin that
fails to import or to register is recorded with its error and skipped, so it cannot break unrelated
commands; `paprec plugins` shows it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from paprec_cli import hookspecs
from paprec_cli.errors import unknown_name
from paprec_cli.specs import DatasetSpec, TaskSpec

if TYPE_CHECKING:
    import typer

GROUP = "paprec"
LOAD_ENV = "PAPREC_LOAD_PLUGINS"
OWN_DISTRIBUTION = "paprec"
#: Imported directly when paprec runs from a source tree whose entry points are not installed.
DEFAULT_PLUGINS = {"paprec_tasks": "paprec_tasks", "paprec_datasets": "paprec_datasets"}


@dataclass
class PluginRecord:
    name: str
    version: str
    hooks: list[str]
    status: str = "ok"
    builtin: bool = False


@dataclass
class Registered:
    name: str
    plugin: str
    spec: Any
    status: str = "ok"


@dataclass
class Registry:
    """Everything the loaded plugins registered; passed to commands (no module-level state)."""

    plugins: list[PluginRecord] = field(default_factory=list)
    tasks: dict[str, Registered] = field(default_factory=dict)
    datasets: dict[str, Registered] = field(default_factory=dict)
    rejected: list[Registered] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None

    def task(self, name: str, option: str = "--task") -> TaskSpec:
        entry = self.tasks.get(name)
        if entry is None:
            raise unknown_name("task", name, list(self.tasks), option)
        return entry.spec  # type: ignore[no-any-return]

    def dataset(self, name: str, option: str = "--dataset") -> DatasetSpec:
        entry = self.datasets.get(name)
        if entry is None:
            raise unknown_name("dataset", name, list(self.datasets), option)
        return entry.spec  # type: ignore[no-any-return]

    def as_json(self) -> dict[str, Any]:
        def rows(entries: list[Registered]) -> list[dict[str, str]]:
            return [{"name": e.name, "plugin": e.plugin, "status": e.status} for e in entries]

        return {
            "tasks": rows(list(self.tasks.values()) + [r for r in self.rejected if isinstance(r.spec, TaskSpec)]),
            "datasets": rows(
                list(self.datasets.values()) + [r for r in self.rejected if isinstance(r.spec, DatasetSpec)]
            ),
            "plugins": [
                {"name": p.name, "version": p.version, "hooks": p.hooks, "status": p.status, "builtin": p.builtin}
                for p in self.plugins
            ],
        }


def _wanted_external() -> set[str] | None:
    raw = os.environ.get(LOAD_ENV)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _discover() -> list[tuple[EntryPoint | None, str, bool]]:
    """(entry point, plugin name, builtin) in load order: built-ins first."""
    found = list(entry_points(group=GROUP))
    builtin = [ep for ep in found if ep.dist is not None and ep.dist.name == OWN_DISTRIBUTION]
    external = [ep for ep in found if ep not in builtin]
    ordered: list[tuple[EntryPoint | None, str, bool]] = [(ep, ep.name, True) for ep in builtin]
    if not builtin:
        ordered = [(None, name, True) for name in DEFAULT_PLUGINS]
    wanted = _wanted_external()
    for ep in external:
        dist = ep.dist.name if ep.dist is not None else ""
        if wanted is None or ep.name in wanted or dist in wanted:
            ordered.append((ep, ep.name, False))
    return ordered


def _register_each(
    manager: pluggy.PluginManager, plugin: object, record: PluginRecord, registry: Registry
) -> None:
    """Call this plugin's registration hooks, isolating its failures from others."""

    def make_register(kind: str, table: dict[str, Registered], spec_type: type) -> Callable[[object], None]:
        def register(spec: object) -> None:
            name = getattr(spec, "name", None)
            if not isinstance(spec, spec_type) or not name:
                raise TypeError(f"register_{kind}s expects a named {spec_type.__name__}, got {spec!r}")
            if isinstance(spec, TaskSpec) and not (spec.metric_specs and spec.example_metric_specs):
                raise TypeError(f"task {name!r} declares no metric_specs/example_metric_specs (its metrics)")
            if name in table:
                registry.rejected.append(
                    Registered(name, record.name, spec, f"name clash: already registered by {table[name].plugin}")
                )
                return
            table[name] = Registered(name, record.name, spec)

        return register

    hook_args = {
        "register_tasks": make_register("task", registry.tasks, TaskSpec),
        "register_datasets": make_register("dataset", registry.datasets, DatasetSpec),
    }
    for hook_name, register in hook_args.items():
        caller = getattr(manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                impl.function(register=register)
            except (Exception, SystemExit) as exc:  # a broken plugin (even one calling sys.exit) must not break paprec
                record.status = f"error in {hook_name}: {type(exc).__name__}: {exc}"


@cache
def load_registry() -> Registry:
    """Load all plugins once per process; the result is read-only after this call."""
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager=manager)
    for ep, name, builtin in _discover():
        version = ep.dist.version if ep is not None and ep.dist is not None else "builtin"
        record = PluginRecord(name=name, version=version, hooks=[], builtin=builtin)
        registry.plugins.append(record)
        try:
            module: ModuleType = ep.load() if ep is not None else importlib.import_module(DEFAULT_PLUGINS[name])
            manager.register(module, name=name)
            manager.check_pending()
        except (Exception, SystemExit) as exc:  # sys.exit at import time, too
            record.status = f"error: {type(exc).__name__}: {exc}"
            if manager.get_plugin(name) is not None:
                manager.unregister(name=name)
            continue
        record.hooks = sorted(caller.name for caller in manager.get_hookcallers(module) or [])
        _register_each(manager, module, record, registry)
    return registry


def register_plugin_commands(app: typer.Typer, registry: Registry) -> None:
    """Let plugins add Typer commands; failures are recorded, not raised."""
    if registry.manager is None:
        return
    for impl in registry.manager.hook.register_commands.get_hookimpls():
        try:
            impl.function(app=app)
        except (Exception, SystemExit) as exc:
            for record in registry.plugins:
                if record.name == registry.manager.get_name(impl.plugin):
                    record.status = f"error in register_commands: {type(exc).__name__}: {exc}"
