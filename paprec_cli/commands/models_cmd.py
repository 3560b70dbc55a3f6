"""`paprec models list | info NAME`: the trained models under the models home (core: `paprec_cli.registry`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from paprec_cli import registry
from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, make_ctx


def register(app: PaprecTyper) -> None:
    models = PaprecTyper(help="Trained models: list them, show one.", no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list")
    def list_models(json_out: JsonOpt = False, quiet: QuietOpt = False, home: HomeOpt = None) -> None:
        """List the models under the models home with their dataset, size and headline test metric."""
        ctx = make_ctx(home, json_out, quiet)
        rows = [registry.model_summary(folder) for folder in registry.model_folders(ctx.home)]
        table = Table(title=f"models in {ctx.home.models}")
        for column in ("name", "dataset", "size", "ids", "tasks", "epochs", "test"):
            table.add_column(column)
        for row in rows:
            training = registry.read_model_json(Path(row["path"]) / registry.TRAINING_FILE)
            table.add_row(
                row["name"], str(row["dataset"] or ""), str(row["size"] or ""), str(row["ids"] or ""),
                ",".join(row["tasks"]), str(row["epochs"] or ""), registry.headline(training),
            )  # fmt: skip
        if not rows:
            ctx.out.info(f"No models in {ctx.home.models}; train one with `paprec train --dataset synthetic`.")
        else:
            ctx.out.show(table)
        ctx.out.result({"models": rows})

    @models.command("info")
    def info(
        name: Annotated[str, typer.Argument(help="A model name (see `paprec models list`) or a model folder.")],
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Show a model's config and training record (metrics per epoch, baselines, sensitivity)."""
        ctx = make_ctx(home, json_out, quiet)
        folder, config, training = registry.model_record(ctx.home, name)
        ctx.out.show(_info_table(folder, config, training))
        ctx.out.result({"name": folder.name, "path": str(folder), "config": config, "training": training})


def _info_table(folder: Path, config: registry.ModelJson, training: registry.ModelJson) -> Table:
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
