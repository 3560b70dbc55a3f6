"""`paprec recommend`: top-k items for one user, or for many users in one call (core: `paprec_cli.serving`).

Many users (`--users-file`, `--all-users`) are written as JSON lines, one object per user (the object
`--user U --json` prints), to stdout or atomically to `--output`; under torchrun rank 0 alone writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from paprec_cli import serving
from paprec_cli.commands.common import (
    Ctx,
    DecodingOpt,
    DeviceOpt,
    HomeOpt,
    JsonOpt,
    PaprecTyper,
    QuietOpt,
    SeparatorOpt,
    TokenizerOpt,
    make_ctx,
    tokenizer_arg,
)


def show_one(ctx: Ctx, user: str, answer: serving.Answer) -> None:
    """One user's table and prompt (the classic `--user` output) and its `--json` line."""
    rows = answer["items"]
    table = Table(title=escape(f"top {len(rows)} for user {user} ({answer['prompt']['mode']} prompt)"))
    for column in ("rank", "item_idx", "item", "title", "attributes", "log p"):
        table.add_column(column, justify="right" if column in ("rank", "item_idx", "log p") else "left")
    for row in rows:
        table.add_row(
            str(row["rank"]),
            str(row["item_idx"]),
            escape(str(row["item"])),
            escape(row.get("title") or ""),
            escape(", ".join(row.get("attributes") or [])),
            f"{row['score']:.3f}",
        )
    ctx.out.show(table)
    ctx.out.info(escape(f"prompt: {answer['prompt_text']}"))
    ctx.out.result(answer)



def register(app: PaprecTyper) -> None:
    @app.command("recommend")
    def recommend(
        user: Annotated[
            str | None, typer.Option("--user", "-u", help="Raw user id, user_N, or user index N.")
        ] = None,
        users_file: Annotated[
            Path | None,
            typer.Option("--users-file", help="Serve many users: a file with one user per line (as --user reads it)."),
        ] = None,
        all_users: Annotated[
            bool, typer.Option("--all-users", help="Serve every user of the dataset, in index order.")
        ] = False,
        output: Annotated[
            Path | None,
            typer.Option("--output", "-o", help="Write the answers as JSON lines to this file (atomically)."),
        ] = None,
        dataset: Annotated[
            str | None, typer.Option("--dataset", "-d", help="Dataset name (default: the one the prompts name).")
        ] = None,
        model: Annotated[
            str | None,
            typer.Option("--model", help="Model path or name (default: the prompts' model, else the dataset's)."),
        ] = None,
        tokenizer: TokenizerOpt = None,
        separator: SeparatorOpt = None,
        decoding: DecodingOpt = "paprec",
        prompts: Annotated[
            str | None, typer.Option("--prompts", help="Prompts file (any export format) or run folder/name.")
        ] = None,
        task_name: Annotated[
            str | None, typer.Option("--task", help="Task (default: the prompts' task, else sequential).")
        ] = None,
        k: Annotated[int, typer.Option("-k", "--top-k", help="How many items.")] = 10,
        exclude_seen: Annotated[
            bool, typer.Option("--exclude-seen", help="Skip items the user already interacted with.")
        ] = False,
        batch_size: Annotated[int, typer.Option("--batch-size", help="Users per model batch.")] = 64,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing --output file.")] = False,
        device: DeviceOpt = "auto",
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Top-k items for a user or many users, with their personalized prompt (else the shared, else the manual one).

        The history given to the model is the user's full sequence (train + validation + test items).
        --users-file and --all-users print one JSON object per user and line, in the requested order (or
        write them to --output); under torchrun the users are split across processes.
        """
        from paprec_cli.distributed import distributed, resolve_device

        request = serving.Request(user, users_file, all_users, output, dataset, model, prompts, task_name, k,
                                  exclude_seen, batch_size, tokenizer_arg(tokenizer), separator, decoding,
                                  force)
        serving.check_request(request)
        with distributed(resolve_device(device)) as dist:
            ctx = make_ctx(home, json_out and dist.is_main, quiet or not dist.is_main)
            answers = serving.recommend(request, ctx.home, ctx.registry, dist, lambda line: ctx.out.info(escape(line)))
        if not dist.is_main:
            return
        if user is not None and output is None:
            show_one(ctx, user, answers[0])
            return
        written = serving.write_answers(answers, output)
        if written is not None:
            ctx.out.info(f"Wrote recommendations for {len(answers)} user(s) to {output}")
            ctx.out.result(written)
