"""`paprec eval`: manual vs shared vs personalized prompts on the test split, with paired bootstrap CIs.

Core: `paprec_cli.eval_report` (scores and report), `paprec_cli.paired` (intervals and verdicts),
`paprec_cli.references` (oracle / history_word / liked_word prompts); tables: `paprec_cli.views.eval`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from paprec_cli import eval_report
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
from paprec_cli.errors import PaprecError
from paprec_cli.views import eval as views

HELP = (
    "Evaluate manual, shared and personalized prompts of a run (or a prompts file) on validation and test.\n\n"
    "Reference prompts (default: all the run and dataset allow) put one word per user in the run's personal slot "
    "after its shared tokens: `oracle` the hidden taste word (synthetic), `history_word` the most frequent attribute "
    "of the user's training items, `liked_word` the attribute with the largest rating-weighted count (rating minus "
    "the training ratings' midpoint); unavailable ones say why.\n\n"
    "The prompts name their task, dataset and model; for automatic vs manual the per-user paired difference is "
    "reported with a 95% bootstrap confidence interval. --users N scores a seeded sample of N users instead of all. "
    "Under torchrun the model's predictions are split across processes; rank 0 alone prints (docs/DISTRIBUTED.md).\n"
)


def register(app: PaprecTyper) -> None:
    @app.command("eval", help=HELP)
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
        references: Annotated[
            str,
            typer.Option("--references",
                         help="Reference prompts: comma list of oracle,history_word,liked_word; all; none."),
        ] = "all",
        users: Annotated[
            int | None,
            typer.Option("--users", help="Score a seeded sample of N users with a test example (the --seed "
                         "draws it), for datasets too large to score whole; default: all users."),
        ] = None,
        device: DeviceOpt = "auto",
        seed: SeedOpt = 0,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """`paprec eval` (help: `HELP`)."""
        if (run is None) == (prompts is None):
            raise PaprecError("give a run (paprec eval RUN) or --prompts FILE, not both and not neither")
        for option, value in (("--n-boot", n_boot), ("--batch-size", batch_size), ("--users", users)):
            if value is not None and value < 1:
                raise PaprecError(f"{option} {value}: expected an integer >= 1")
        from paprec_cli.distributed import distributed, resolve_device
        from paprec_cli.references import parse_references

        names = parse_references(references)
        source: str | Path = run if run is not None else prompts  # type: ignore[assignment]
        with distributed(resolve_device(device)) as dist:  # the process group ends before rank 0 reports
            ctx = make_ctx(home, json_out and dist.is_main, quiet or not dist.is_main, verbose)
            found = eval_report.evaluate_source(source, ctx.home, ctx.registry, model, batch_size, dist, ctx.out.info,
                                                tokenizer=tokenizer_arg(tokenizer), decoding=decoding,
                                                reference_names=names, users=users, seed=seed)
        if dist.is_main:
            report = eval_report.build_report(found, n_boot, seed, baselines)
            for line in views.reference_lines(report["references"]):
                ctx.out.info(escape(line))
            for item in views.report_lines(report):
                ctx.out.show(item)
            ctx.out.result(report)
