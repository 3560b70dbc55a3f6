"""Tables of `paprec train`: the model next to its baselines, and prompt sensitivity."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from paprec_cli.training.run import TrainingResult


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def results_table(result: TrainingResult) -> Table:
    """Model vs baselines per task on the test split."""
    table = Table(title="test split: model vs baselines")
    table.add_column("task")
    table.add_column("who")
    keys: list[str] = []
    for metrics in result["test"].values():
        keys += [k for k in metrics if k not in keys]
    for key in keys:
        table.add_column(key, justify="right")
    for task, metrics in result["test"].items():
        rows = [("model", metrics)] + [
            (baseline, per_task[task]) for baseline, per_task in result["baselines"].items() if task in per_task
        ]
        for who, values in rows:
            table.add_row(task, who, *(_fmt(values.get(k)) for k in keys))
    return table


def sensitivity_table(sensitivity: dict[str, Any]) -> Table | None:
    """One row per prompt variant and task (the first metric of each task)."""
    table = Table(title="prompt sensitivity (test sample)")
    for column in ("task", "prompt", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    rows = 0
    for task, entry in sensitivity.items():
        if not isinstance(entry, dict) or "templates" not in entry:
            continue
        variants = {
            **{f"template {k}": v for k, v in entry["templates"].items()},
            "no instruction": entry["argument_only"],
        }
        for extra, labels in (("attribute_hint", ("target_attribute", "random_attribute")),
                              ("taste", ("none", "taste_word", "unrelated_word"))):  # fmt: skip
            for label in labels:
                if extra in entry:
                    variants[f"{extra}: {label}"] = entry[extra][label]
        for label, metrics in variants.items():
            key = next(iter(metrics), None)
            if key is not None:
                table.add_row(task, label, key, _fmt(metrics[key]))
                rows += 1
        taste = entry.get("taste") or {}
        if "taste_ranks_higher_share" in taste:
            table.add_row(
                task, "taste word ranks held-out item higher", "share", _fmt(taste["taste_ranks_higher_share"])
            )
    return table if rows else None
