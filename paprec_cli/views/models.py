"""Tables of `paprec models`: the model list and one model's record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from paprec_cli import registry


def models_table(rows: Sequence[registry.ModelSummary], models_home: Path) -> Table:
    """`paprec models list`: name, dataset, size, ids, tasks, epochs and the headline test metric; a `status`
    column with the one-line reason when a model's files are damaged or its training has not finished."""
    table = Table(title=f"models in {escape(str(models_home))}")
    any_status = any(row["broken"] or row.get("unfinished") for row in rows)
    for column in ("name", "dataset", "size", "ids", "tasks", "epochs", "test", *(("status",) if any_status else ())):
        table.add_column(column)
    for row in rows:
        cells = [row["name"], str(row["dataset"] or ""), str(row["size"] or ""), str(row["ids"] or ""),
                 ",".join(row["tasks"]), str(row["epochs"] or ""), registry.headline({"test": row["test"]})]
        if any_status:
            # the row names the folder: the reason names the file inside it (`--json` keeps the full path)
            reason = str(row["broken"]).replace(f"{row['path']}/", "") if row["broken"] else ""
            cells.append(f"broken: {reason}" if reason else str(row.get("unfinished") or "ok"))
        table.add_row(*(escape(cell) for cell in cells), style="red" if row["broken"] else None)
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
            value = metrics.get("HR@10")
            table.add_row(f"{baseline} {task}", "HR@10 " + ("-" if value is None else f"{value:.4f}"))
    if not training:
        table.add_row("training", registry.unfinished_training(folder)
                      or "no training.json (an imported or initialised model)")
    if config.get("dims"):
        table.add_row("dims", ", ".join(f"{k} {v}" for k, v in config["dims"].items()))
    table.add_row("item_head", registry.item_head(config))
    learned = registry.seen_bias(folder, config)
    table.add_row("seen_bias", "none" if config.get("seen_bias") is not True
                  else "learned (unreadable)" if learned is None else f"learned ({learned:+.3f})")
    return table
