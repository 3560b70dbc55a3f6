"""Whether a dataset offers what a task declares it needs (`TaskSpec.needs`), before any work starts.

`unmet(task, dataset, negatives)` is None when the task can run, else one sentence saying what is
missing and how much; `fix(task, dataset)` (and `remedy`) say what the user can do. Training's default
task set leaves such tasks out (one line each); an explicit `--tasks` naming one is refused.
"""

from __future__ import annotations

import polars as pl

from paprec_cli.data.splits import MIN_LOO_LENGTH, N_NEGATIVES
from paprec_cli.data.store import Dataset
from paprec_cli.errors import PaprecError
from paprec_cli.specs import TaskSpec


def most_seen(dataset: Dataset) -> tuple[int, int]:
    """(user index, distinct items) of the evaluated user (>= MIN_LOO_LENGTH interactions) who has seen
    the most distinct items; (0, 0) when no user is evaluated."""
    table = dataset.interactions.group_by("user_idx").agg(
        pl.len().alias("n"), pl.col("item_idx").n_unique().alias("distinct")
    )
    table = table.filter(pl.col("n") >= MIN_LOO_LENGTH).sort(["distinct", "user_idx"], descending=[True, False])
    if table.height == 0:
        return 0, 0
    row = table.row(0, named=True)
    return int(row["user_idx"]), int(row["distinct"])


def max_negatives(dataset: Dataset) -> int:
    """The most never-seen negatives every evaluated user still has."""
    return dataset.n_items - most_seen(dataset)[1]


def unmet(task: TaskSpec, dataset: Dataset, negatives: int = N_NEGATIVES) -> str | None:
    """Why `dataset` cannot support `task` (one clause), or None when it can."""
    if task.needs.ratings and not dataset.has_ratings:
        return f"dataset '{dataset.name}' has no ratings"
    if task.needs.negatives:
        user, seen = most_seen(dataset)
        if dataset.n_items - seen < negatives:
            return (
                f"dataset '{dataset.name}' has {dataset.n_items} items and user {user} has seen {seen} of them, "
                f"leaving {dataset.n_items - seen} of the {negatives} never-seen negatives each candidate list needs"
            )
    return None


def remedy(task: TaskSpec, dataset: Dataset) -> str | None:
    """What makes `task` possible on `dataset` without other data, or None (ratings cannot be made up)."""
    if task.needs.ratings and not dataset.has_ratings:
        return None
    most = max_negatives(dataset)
    if task.needs.negatives and most >= 1:
        return f"pass -o negatives=N with N <= {most} (recorded in the protocol)"
    return None


def fix(task: TaskSpec, dataset: Dataset) -> str:
    """What the user can do about `unmet(...)` when they named the task in `--tasks`."""
    other = remedy(task, dataset)
    return f"drop {task.name} from --tasks" + (f" or {other}" if other else "")


def check_negatives(negatives: int) -> int:
    if negatives < 1:
        raise PaprecError(f"-o negatives={negatives}: expected a positive number of negatives (default 99)")
    return negatives
