"""`paprec eval` (being built)."""

from __future__ import annotations

from paprec_cli.commands.common import PaprecTyper


def register(app: PaprecTyper) -> None:
    """Attach this module's commands to the app (filled in by its owner)."""
