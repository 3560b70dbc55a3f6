"""`paprec models list | info NAME`: the trained models under the models home.

Reads only `config.json` and `training.json` (no weights), so listing is instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, make_ctx
from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise PaprecError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); retrain or delete it") from err
    return data if isinstance(data, dict) else {}


def model_folders(home: Home) -> list[Path]:
    """Folders holding a model (a `config.json`); hidden folders (temporary files, training state) skip."""
    if not home.models.is_dir():
        return []
    return sorted(
        p for p in home.models.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "config.json").exists()
    )


def _headline(training: dict[str, Any]) -> str:
    """The first test metric worth showing: HR@10 of the first ranking task, else RMSE."""
    for task, metrics in (training.get("test") or {}).items():
        for key in ("HR@10", "RMSE"):
            if key in metrics and metrics[key] is not None:
                return f"{task} {key} {metrics[key]:.4f}"
    return ""


def _dataset_name(record: dict[str, Any]) -> str | None:
    dataset = record.get("dataset")
    if isinstance(dataset, dict):
        return dataset.get("name")
    return str(dataset) if dataset else None


def summary(folder: Path) -> dict[str, Any]:
    """One model's identity and headline numbers from its JSON files."""
    config = _read(folder / "config.json")
    training = _read(folder / "training.json")
    return {
        "name": folder.name,
        "path": str(folder),
        "dataset": _dataset_name(training) or _dataset_name(config),
        "size": training.get("size") or config.get("size"),
        "ids": training.get("ids") or config.get("id_scheme"),
        "tasks": training.get("tasks") or [],
        "epochs": training.get("epochs"),
        "best_epoch": training.get("best_epoch"),
        "test": training.get("test") or {},
        "created": training.get("created"),
        "trained": bool(training),
    }


def register(app: PaprecTyper) -> None:
    models = PaprecTyper(help="Trained models: list them, show one.", no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list")
    def list_models(json_out: JsonOpt = False, quiet: QuietOpt = False, home: HomeOpt = None) -> None:
        """List the models under the models home with their dataset, size and headline test metric."""
        ctx = make_ctx(home, json_out, quiet)
        rows = [summary(folder) for folder in model_folders(ctx.home)]
        table = Table(title=f"models in {ctx.home.models}")
        for column in ("name", "dataset", "size", "ids", "tasks", "epochs", "test"):
            table.add_column(column)
        for row in rows:
            training = _read(Path(row["path"]) / "training.json")
            table.add_row(
                row["name"], str(row["dataset"] or ""), str(row["size"] or ""), str(row["ids"] or ""),
                ",".join(row["tasks"]), str(row["epochs"] or ""), _headline(training),
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
        folder = Path(name) if Path(name).is_dir() else ctx.home.model_dir(name)
        if not (folder / "config.json").exists():
            known = ", ".join(p.name for p in model_folders(ctx.home)) or "none yet"
            raise PaprecError(
                f"model '{name}' not found in {ctx.home.models} (known: {known}); see `paprec models list`"
            )
        config = _read(folder / "config.json")
        training = _read(folder / "training.json")
        ctx.out.show(_info_table(folder, config, training))
        ctx.out.result({"name": folder.name, "path": str(folder), "config": config, "training": training})


def _info_table(folder: Path, config: dict[str, Any], training: dict[str, Any]) -> Table:
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
