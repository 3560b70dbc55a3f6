"""`paprec export-prompts`: a run's prompts as JSON, Parquet or CSV (schema: docs/EXPORT.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paprec_cli import export, runs
from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, make_ctx


def register(app: PaprecTyper) -> None:
    @app.command("export-prompts")
    def export_prompts(
        run: Annotated[str, typer.Argument(help="Run folder, run name under <home>/runs, or a prompts file.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
        fmt: Annotated[
            str | None,
            typer.Option("--format", "-f", help="json, parquet or csv (default: from the -o suffix)."),
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Export the searched prompts (shared and per-user tokens, fingerprints, metrics) to a file.

        The file is importable again with `--prompts FILE` on `eval` and `recommend`.
        """
        ctx = make_ctx(home, json_out, quiet)
        source = runs.prompts_source(run, ctx.home)
        doc = export.read_prompts(source)
        chosen = export.export_prompts(doc, output, fmt, force=force, source=source)
        n_users = len(doc.get("personal") or {})
        ctx.out.info(f"Exported {doc['task']} prompts ({n_users} personalized users) to {output} as {chosen}")
        ctx.out.result({"run": run, "path": str(output), "format": chosen, "users": n_users})
