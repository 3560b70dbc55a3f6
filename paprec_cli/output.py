"""Console conventions: human output and progress on stderr, `--json` as the last stdout line."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.table import Table

from paprec_cli.tables import fit


def jsonable(value: object) -> object:
    """Floats that are NaN/inf become null: JSON has no such numbers and we never fake them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return jsonable(value.item())
    return value


@dataclass
class Output:
    """Per-invocation output settings (no global state: passed down from the CLI callback)."""

    json: bool = False
    quiet: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        self.err = Console(stderr=True, quiet=self.quiet, soft_wrap=True)  # log lines stay one line
        self.out = Console()

    def info(self, message: str) -> None:
        """Progress and notes: stderr, hidden by --quiet."""
        self.err.print(message)

    def debug(self, message: str) -> None:
        if self.verbose:
            self.err.print(f"[dim]{message}[/dim]")

    def show(self, renderable: RenderableType) -> None:
        """Human results (tables, summaries): stdout; nothing under --json, whose stdout is the one JSON
        object and whose stderr carries only logs and progress. Tables wrap between words to fit the
        console (never an ellipsis in a number or a name) and are plain ASCII off a terminal."""
        if self.json:
            return
        if isinstance(renderable, Table):
            width = fit(renderable, self.out.width, plain=not self.out.is_terminal)
            self.out.print(renderable, width=width, crop=False)
            return
        self.out.print(renderable)

    def result(self, obj: Mapping[str, object]) -> None:
        """The machine-readable result: exactly one JSON object as the last line of stdout."""
        if self.json:
            sys.stdout.write(json.dumps(jsonable(obj), sort_keys=False) + "\n")
            sys.stdout.flush()
