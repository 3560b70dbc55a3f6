"""Tables of `paprec models`: the model list and one model's record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from paprec_cli import registry


def models_table(rows: Sequence[registry.ModelSummary], models_home: Path) -> Table:
    """`paprec models list`: name, dataset, size, ids, tasks, epochs and the headline test metric."""
    table = Table(title=f"models in {models_home}")
    for column in ("name", "dataset", "size", "ids", "tasks", "epochs", "test"):
        table.add_column(column)
    for row in rows:
        training = registry.read_model_json(Path(row["path"]) / registry.TRAINING_FILE)
        table.add_row(
            row["name"], str(row["dataset"] or ""), str(row["size"] or ""), str(row["ids"] or ""),
            ",".join(row["tasks"]), str(row["epochs"] or ""), registry.headline(training),
        )  # fmt: skip
    return table


def info_table(folder: Path, config: registry.ModelJson, training: registry.ModelJson) -> Table:
    table = Table(title=f"model {folder.name}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("path", str(folder))
    for key in ("size", "ids", "tasks", "epochs", "best_epoch", "seconds", "stopped"):
        if key in training:
            value = training[key]
            table.add_row(key, ",".join(value) if isinstance(value, list) else str(value))
    dataset = training.get("dataset") or {}
    if dataset:
        table.add_row("dataset", f"{dataset.get('name')} ({dataset.get('fingerprint')})")
    for part in ("validation", "test"):
        for task, metrics in (training.get(part) or {}).items():
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))
            table.add_row(f"{part} {task}", shown)
    for baseline, per_task in (training.get("baselines") or {}).items():
        for task, metrics in per_task.items():
            table.add_row(f"{baseline} {task}", f"HR@10 {metrics.get('HR@10', float('nan')):.4f}")
    if not training:
        table.add_row("training", "no training.json (an imported or initialised model)")
    if config.get("dims"):
        table.add_row("dims", ", ".join(f"{k} {v}" for k, v in config["dims"].items()))
    return table
