"""`paprec sweep`: searches over prompt lengths and selection criteria, summarised with CIs and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paprec_cli.commands.common import (
    DeviceOpt,
    HomeOpt,
    JsonOpt,
    PaprecTyper,
    QuietOpt,
    SeedOpt,
    TokenizerOpt,
    VerboseOpt,
    make_ctx,
    tokenizer_arg,
)

HELP = """Run the PAP-REC search over a grid of prompt lengths and selection criteria (the paper's Figures 3, 4).

Every cell (--n-suffix x --n-personal x --selection) is a normal resumable search run in the sweep folder;
re-running the same command skips finished cells and resumes an interrupted one. Writes summary.csv,
summary.json and sweep.png (test metric vs prompt length per criterion, 95% bootstrap CIs over users).
"""
Opt = typer.Option


def register(app: PaprecTyper) -> None:
    app.command("sweep", help=HELP)(sweep_command)


def sweep_command(
    task: Annotated[str, Opt("--task", help="Task to search prompts for (sequential, direct, rating).")],
    dataset: Annotated[str, Opt("--dataset", help="Imported dataset to search on.")],
    model: Annotated[str | None, Opt("--model", help="Model folder or name (default: as paprec search).")] = None,
    n_suffix: Annotated[str, Opt("--n-suffix", help="Shared suffix lengths, comma-separated.")] = "1,3,5",
    n_personal: Annotated[str, Opt("--n-personal", help="Personal token counts, comma-separated.")] = "1",
    selection: Annotated[str, Opt("--selection", help="Selection criteria: surrogate,loss.")] = "surrogate,loss",
    metric: Annotated[
        str | None, Opt("--metric", help="Test metric to summarise (default NDCG@10; MAE for rating).")
    ] = None,
    top_k: Annotated[int, Opt("--top-k", help="Candidates per slot, from the gradient ranking.")] = 5,
    val_users: Annotated[int | None, Opt("--val-users", help="Seeded sample of validation users.")] = None,
    grad_examples: Annotated[int, Opt("--grad-examples", help="Training examples for the shared gradient.")] = 256,
    max_rounds: Annotated[int, Opt("--max-rounds", help="Rounds per cell.")] = 20,
    time_budget: Annotated[float | None, Opt("--time-budget", help="Seconds per cell.")] = None,
    batch_size: Annotated[int | None, Opt("--batch-size", help="Rows per forward pass.")] = None,
    n_boot: Annotated[int, Opt("--n-boot", help="Bootstrap resamples for the 95% CIs.")] = 1000,
    out_dir: Annotated[
        Path | None, Opt("--out", help="Sweep folder (default: <home>/sweeps/<task>-<dataset>-<hash of options>).")
    ] = None,
    no_plot: Annotated[bool, Opt("--no-plot", help="Skip sweep.png (no matplotlib needed).")] = False,
    tokenizer: TokenizerOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    home: HomeOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    from paprec_cli import sweep

    ctx = make_ctx(home, json_out, quiet, verbose)
    spec = sweep.SweepSpec(
        task=task, dataset=dataset, model=model, n_suffix=sweep.parse_grid(n_suffix, "--n-suffix"),
        n_personal=sweep.parse_grid(n_personal, "--n-personal"), selections=sweep.parse_selections(selection),
        top_k=top_k, val_users=val_users, grad_examples=grad_examples, max_rounds=max_rounds,
        time_budget=time_budget, batch_size=batch_size, seed=seed, metric=metric, n_boot=n_boot,
        tokenizer=tokenizer_arg(tokenizer),
    )  # fmt: skip
    from paprec_cli.distributed import resolve_device

    result = sweep.run_sweep(spec, ctx.home, ctx.out, resolve_device(device), out_dir, plot=not no_plot)
    ctx.out.show(sweep.summary_table(result))
    ctx.out.info(f"Wrote {result['csv']}, {result['json']}" + (f" and {result['plot']}" if result["plot"] else ""))
    ctx.out.result(result)
