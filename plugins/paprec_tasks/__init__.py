"""Built-in tasks: sequential, direct and rating recommendation (P5's task families 2, 5 and 1)."""

from __future__ import annotations

from collections.abc import Callable

from paprec_cli.hookspecs import hookimpl
from paprec_cli.specs import TaskSpec

from .direct import DirectTask
from .rating import RatingTask
from .sequential import SequentialTask

__all__ = ["DirectTask", "RatingTask", "SequentialTask"]


@hookimpl
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    """Register one instance of each built-in task (tasks hold no state, only class attributes)."""
    register(RatingTask())
    register(SequentialTask())
    register(DirectTask())
