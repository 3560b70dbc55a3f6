"""The plugin contract: three hooks, each called once at start-up.

A plugin module implements any of them with `@paprec_cli.hookimpl`. Registration goes through a
callback (as in simonw/llm) so that the core can validate each spec and settle name clashes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from paprec_cli.specs import DatasetSpec, TaskSpec

hookspec = pluggy.HookspecMarker("paprec")
hookimpl = pluggy.HookimplMarker("paprec")


@hookspec
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    """Call `register(task)` for each recommendation task (a `TaskSpec` subclass instance) the plugin adds."""


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Call `register(spec)` for each dataset (a `DatasetSpec`) the plugin adds."""


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add subcommands to the `paprec` Typer app (e.g. `@app.command()`)."""
