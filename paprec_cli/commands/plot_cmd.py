"""`paprec plot RUN`: a search's trajectory as a figure (needs the `paprec[plot]` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, make_ctx

OUTPUT_HELP = "Image to write, .png/.pdf/.svg (default: RUN/trajectory.png)."


def register(app: PaprecTyper) -> None:
    @app.command("plot")
    def plot(
        run: Annotated[str, typer.Argument(help="Run folder, run name under <home>/runs, or latest.")],
        output: Annotated[Path | None, typer.Option("--output", "-o", help=OUTPUT_HELP)] = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Plot a search: surrogate per step, accepted flips, shared and personal phases, wall time."""
        from paprec_cli.plots import plot_run
        from paprec_cli.runs import resolve_run

        ctx = make_ctx(home, json_out, quiet)
        done = plot_run(resolve_run(run, ctx.home), output)
        ctx.out.info(f"Wrote {done['path']} ({done['steps']} steps, {done['seconds']:.1f} s of search)")
        ctx.out.result(done)
