"""`paprec eval`: manual vs shared vs personalized prompts on the test split, with paired bootstrap CIs.

Core: `paprec_cli.eval_report` (scores and report), `paprec_cli.paired` (intervals and verdicts).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from paprec_cli import eval_report
from paprec_cli.commands.common import (
    Ctx,
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
from paprec_cli.errors import PaprecError
from paprec_cli.paired import Paired, summary, verdict


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4f}"


def _signed(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:+.4f}"


def results_table(results: eval_report.Results, baselines: dict[str, dict[str, dict[str, float]]],
                  parts: list[str]) -> Table:
    caption = "popularity and item_knn: non-neural baselines on the same test examples" if baselines else None
    table = Table(title="manual vs automatic prompts", caption=caption)
    metrics = list(dict.fromkeys(m for v in results.values() for p in parts for m in (v.get(p) or {})))
    table.add_column("prompt")
    table.add_column("split")
    for metric in metrics:
        table.add_column(metric, justify="right")
    rows = [*results.items(), *baselines.items()]
    for name, by_part in rows:
        for part in parts:
            if part in by_part:
                table.add_row(name, part, *(_fmt(by_part[part].get(m)) for m in metrics))
    return table


def paired_table(paired: Paired, part: str, lower_is_better: Collection[str] = ()) -> Table:
    """One row per value; each cell `mean diff [95% CI] verdict` for one automatic variant vs manual."""
    table = Table(
        title=f"automatic - manual, paired per user on {part}",
        caption=escape("mean [95% bootstrap CI]; 'noise' = the CI includes 0: no evidence of a difference"),
    )
    table.add_column("value")
    for name in paired:
        table.add_column(name.replace("_vs_", " - "))
    table.add_column("users", justify="right")
    keys = list(dict.fromkeys(k for per_key in paired.values() for k in per_key))
    for key in keys:
        cells, n = [], 0
        for per_key in paired.values():
            stats = per_key.get(key)
            if stats is None:
                cells.append("-")
                continue
            n = max(n, int(stats["n"]))
            interval = f"[{_signed(stats['ci_low'])}, {_signed(stats['ci_high'])}]"
            word = verdict(stats, key in lower_is_better)
            cells.append(escape(f"{_signed(stats['mean_diff'])} {interval} {word}"))
        table.add_row(key, *cells, str(n))
    return table


def show(ctx: Ctx, report: eval_report.Report) -> None:
    """Tables, protocol line, verdict sentences, taste agreement and the `--json` line."""
    protocol = report["protocol"]
    ctx.out.show(results_table(report["results"], report["baselines"], list(eval_report.PARTS)))
    ctx.out.show(paired_table(report["paired"], "test", report["lower_is_better"]))
    keys = ("split", "evaluated", "indexing", "tie_break", "split_seed")
    ctx.out.show(escape("protocol: " + "; ".join(f"{k}={protocol.get(k)}" for k in keys)))
    for line in summary(report["paired"]):
        ctx.out.show(escape(line))
    taste = report["taste_agreement"]
    if taste is not None and taste.get("agreement") is not None:
        ctx.out.show(
            f"personal tokens vs hidden taste: {taste['agreement']:.3f} of {taste['users']} users "
            f"(chance {taste['chance']:.3f}); an attribute word for {taste['attribute_share']:.3f} of them"
        )
    ctx.out.result(report)


def register(app: PaprecTyper) -> None:
    @app.command("eval")
    def eval_prompts(
        run: Annotated[str | None, typer.Argument(help="Run folder or run name under <home>/runs.")] = None,
        prompts: Annotated[
            Path | None, typer.Option("--prompts", help="A prompts file (paprec export-prompts) instead of a run.")
        ] = None,
        model: Annotated[
            str | None, typer.Option("--model", help="Model path or name (default: the one the prompts name).")
        ] = None,
        tokenizer: TokenizerOpt = None,
        decoding: Annotated[
            str | None,
            typer.Option("--decoding", help="paprec or p5 (see `paprec search --help`; default: the run's)."),
        ] = None,
        n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the paired CIs.")] = 1000,
        baselines: Annotated[
            bool, typer.Option("--baselines/--no-baselines", help="Also report popularity and item-kNN.")
        ] = True,
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", help="Prompts per model batch (default 256; 2048 on CUDA).")
        ] = None,
        device: DeviceOpt = "auto",
        seed: SeedOpt = 0,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Evaluate manual, shared and personalized prompts of a run (or a prompts file) on validation and test.

        The prompts name their task, dataset and model; for automatic vs manual the per-user paired
        difference is reported with a 95% bootstrap confidence interval. Under torchrun the model's
        predictions are split across processes; rank 0 alone prints (docs/DISTRIBUTED.md).
        """
        if (run is None) == (prompts is None):
            raise PaprecError("give a run (paprec eval RUN) or --prompts FILE, not both and not neither")
        if n_boot < 1 or (batch_size is not None and batch_size < 1):
            raise PaprecError("--n-boot and --batch-size must be integers >= 1")
        from paprec_cli.distributed import distributed, resolve_device

        source: str | Path = run if run is not None else prompts  # type: ignore[assignment]
        with distributed(resolve_device(device)) as dist:  # the process group ends before rank 0 reports
            ctx = make_ctx(home, json_out and dist.is_main, quiet or not dist.is_main, verbose)
            found = eval_report.evaluate_source(source, ctx.home, ctx.registry, model, batch_size, dist, ctx.out.info,
                                                tokenizer=tokenizer_arg(tokenizer), decoding=decoding)
        if dist.is_main:
            show(ctx, eval_report.build_report(found, n_boot, seed, baselines))
