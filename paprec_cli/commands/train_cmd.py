"""`paprec train`: train a P5-style RLM and report it next to popularity and item-kNN."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from rich.table import Table

from paprec_cli.commands.common import (
    DeviceOpt,
    HomeOpt,
    JsonOpt,
    PaprecTyper,
    QuietOpt,
    SeedOpt,
    VerboseOpt,
    make_ctx,
    resolve_device,
)
from paprec_cli.errors import PaprecError

SIZES = ("tiny", "small", "base")


def register(app: PaprecTyper) -> None:
    @app.command("train")
    def train(
        dataset: Annotated[
            str | None, typer.Option("--dataset", "-d", help="An imported dataset ('synthetic' imports itself).")
        ] = None,
        tasks: Annotated[
            str | None,
            typer.Option(
                "--tasks",
                help="Comma-separated tasks (default: all the dataset supports). The first ranking task listed "
                "picks the best epoch (its validation NDCG@10).",
            ),
        ] = None,
        size: Annotated[
            str | None, typer.Option("--size", help="Model size: tiny, small (P5-small) or base (P5-base).")
        ] = None,
        ids: Annotated[
            str | None, typer.Option("--ids", help="Item/user ids: atomic (one token each) or subword (P5's digits).")
        ] = None,
        epochs: Annotated[int | None, typer.Option("--epochs", help="Maximum epochs (default per size).")] = None,
        time_budget: Annotated[
            float | None,
            typer.Option(
                "--time-budget",
                help="Stop after this many seconds (the learning rate anneals within them), then validate and save "
                "the best. Tiny caps at 150 s unless --epochs is given; that cap does not shape the schedule.",
            ),
        ] = None,
        lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (default per size).")] = None,
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", help="Training batch size (default per size).")
        ] = None,
        patience: Annotated[
            int | None, typer.Option("--patience", help="Stop after this many epochs without validation gain.")
        ] = None,
        dropout: Annotated[float | None, typer.Option("--dropout", help="Dropout rate (default per size).")] = None,
        weight_decay: Annotated[
            float | None, typer.Option("--weight-decay", help="AdamW weight decay (default per size).")
        ] = None,
        item_init: Annotated[
            str | None,
            typer.Option(
                "--item-init",
                help="Fresh atomic-id models: start item/user rows from training co-occurrence "
                "('cooccurrence', tiny's default) or T5's random init ('random').",
            ),
        ] = None,
        val_users: Annotated[
            int | None, typer.Option("--val-users", help="Validation users per epoch (seeded; default per size).")
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="Model name (default <dataset>-<size>-<ids>).")] = None,
        resume: Annotated[
            str | None, typer.Option("--resume", help="Continue the named run from its last finished epoch.")
        ] = None,
        init: Annotated[
            str | None, typer.Option("--init", help="Start from weights: a paprec model, HF T5 folder or P5 .pth.")
        ] = None,
        option: Annotated[
            list[str] | None,
            typer.Option("--option", "-o", help="Protocol setting KEY=VALUE: negatives=N (direct-task negatives, "
                         "default 99; recorded in the protocol)."),
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Replace an existing model of the same --name (and its state).")
        ] = False,
        seed: SeedOpt = 0,
        device: DeviceOpt = "auto",
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Train a P5-style recommendation LM (multitask, multi-template, words that steer) and report
        test metrics next to popularity and item-kNN, plus prompt sensitivity."""
        from paprec_cli.distributed import DistContext
        from paprec_cli.training import setup
        from paprec_cli.training.run import train as run_training

        # Under torchrun every rank runs this; rank 0 alone writes the model and prints (docs/DISTRIBUTED.md).
        dist = DistContext.from_env(resolve_device(device))
        ctx = make_ctx(home, json_out and dist.is_main, quiet or not dist.is_main, verbose)
        overrides: dict[str, Any] = {
            "lr": lr, "batch_size": batch_size, "epochs": epochs, "patience": patience, "dropout": dropout,
            "weight_decay": weight_decay, "val_users": val_users, "item_init": item_init,
        }  # fmt: skip
        if size is not None and size not in SIZES:
            raise PaprecError(f"--size {size}: expected one of {', '.join(SIZES)}")
        if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
            raise PaprecError(f"--time-budget {time_budget}: expected a positive number of seconds")
        task_names = setup.parse_tasks(tasks)
        settings = setup.parse_train_options(option or [])
        chosen_device = dist.device
        registry = ctx.registry
        if resume:
            from paprec_cli.training.state import read_state, state_dir

            if item_init is not None:
                raise PaprecError("--item-init applies to a fresh run only; drop it when using --resume")

            saved = read_state(state_dir(ctx.home, resume), resume).options
            given = {"--dataset": dataset, "--size": size, "--ids": ids, "--tasks": task_names, "--init": init,
                     "--negatives": settings.get("negatives")}  # fmt: skip
            options = setup.resumed_options(saved, given, {**overrides, "time_budget": time_budget})
        else:
            if dataset is None:
                raise PaprecError("--dataset is required (e.g. --dataset synthetic); see `paprec data list`")
            options = setup.new_options(
                dataset=dataset, tasks=task_names or [], size=size or "tiny", ids=ids or "atomic", name=name,
                seed=seed, time_budget=time_budget, init=init, overrides=overrides, **settings,
            )  # fmt: skip
        result = run_training(options, ctx.home, ctx.out, registry, chosen_device, resume=bool(resume), dist=dist,
                              force=force, explicit_name=name is not None)
        dist.destroy()
        if not dist.is_main:
            return
        ctx.out.show(results_table(result))
        sens = sensitivity_table(result.get("sensitivity") or {})
        if sens is not None:
            ctx.out.show(sens)
        ctx.out.info(f"Model saved to {result['model']} ({result['epochs']} epochs, best {result['best_epoch']}, "
                     f"stopped by {result['stopped'].replace('_', ' ')}, {result['seconds']:.0f} s)")  # fmt: skip
        ctx.out.result(result)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def results_table(result: dict[str, Any]) -> Table:
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
