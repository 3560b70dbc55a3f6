"""`paprec recommend`: top-k items for one user, or for many users in one call, with each user's searched prompt.

The history is what a model would see when serving: the user's full sequence (train + validation +
test items, the most recent `max_history` of them as the task truncates). Prompt choice: the user's
personalized tokens from the prompts, else the shared prompt (with the default personal tokens; said
on stderr), else, without prompts, the task's manual template.

Many users (`--users-file`, `--all-users`) are served in batches of `--batch-size` and written as JSON
lines, one object per user (the object `--user U --json` prints), to stdout or atomically to `--output`.
Under torchrun each rank serves a contiguous share of whole batches and rank 0 alone writes them all, in
the requested order: the output of one process (docs/DISTRIBUTED.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from paprec_cli.commands.common import (
    Ctx,
    DeviceOpt,
    HomeOpt,
    JsonOpt,
    PaprecTyper,
    QuietOpt,
    make_ctx,
    resolve_device,
)
from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.paths import check_output
from paprec_cli.textio import read_text_file

if TYPE_CHECKING:
    from paprec_cli.distributed import DistContext

#: One user's answer: the object `paprec recommend --user U --json` prints.
Answer = dict[str, Any]


@dataclass
class Prepared:
    """The encoded prompt for one user and how it was chosen."""

    prompt: Any  # EncodedPrompt
    mode: str  # "personalized" | "shared" | "manual"
    text: str


@dataclass
class Serving:
    """What answers requests: the dataset, model and task, the prompts document (None: manual template)."""

    data: Any  # Dataset
    bundle: Any  # ModelBundle
    task: Any  # TaskSpec
    doc: dict[str, Any] | None
    seed: int


# -- which users --------------------------------------------------------------------------------------
def check_request(user: str | None, users_file: Path | None, all_users: bool, output: Path | None) -> None:
    """Refuse a request that names no users or several sources of them, before anything is loaded."""
    if sum((user is not None, users_file is not None, all_users)) != 1:
        raise PaprecError("give exactly one of --user U, --users-file FILE or --all-users")
    if output is not None and output.is_dir():
        raise PaprecError(f"--output {output}: is a folder; expected a file path for the JSON lines")


def chosen_users(data: Any, user: str | None, users_file: Path | None, all_users: bool) -> list[int]:
    """User indices to serve, in request order (repeats kept).

    Every bad request fails here, identically on every rank, before the work is split: a rank must never
    wait in a collective for one that already left.
    """
    if all_users:
        return [u for u in range(1, data.n_users + 1) if len(data.sequences[u])]
    if users_file is not None:
        return read_users_file(users_file, data)
    assert user is not None
    index = data.user_index(user)
    if not len(data.sequences[index]):
        raise PaprecError(f"--user {user}: this user has no interactions in dataset '{data.name}'")
    return [index]


def users_file_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, user text) of each non-blank line; unreadable files become one-line errors."""
    text = read_text_file(path, what="--users-file").text  # the shared reader: BOM, UTF-16, UTF-8
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_users_file(path: Path, data: Any) -> list[int]:
    """User indices of a file with one user per line (raw id, user_N or index 1..N; blank lines skipped)."""
    known = raw_to_index(data)
    users = [user_on_line(path, number, text, data, known) for number, text in users_file_lines(path)]
    if not users:
        raise PaprecError(f"--users-file {path}: no users in it; expected one user id per line")
    return users


def user_on_line(path: Path, number: int, text: str, data: Any, known: dict[str, int]) -> int:
    """The user index `text` names (as `--user` reads it), or an error naming the file and line."""
    index = known.get(text)
    if index is None:
        try:
            index = int(data.user_index(text))
        except PaprecError:
            raise DataFormatError(path, number, f"unknown user '{text}' in dataset '{data.name}'",
                                  f"a raw user id, user_N or an index 1..{data.n_users}") from None
    if not len(data.sequences[index]):
        raise DataFormatError(path, number, f"user '{text}' has no interactions in dataset '{data.name}'",
                              "a user with at least one interaction")
    return index


def raw_to_index(data: Any) -> dict[str, int]:
    """Raw user id -> index, built once (a lookup per line would scan the user table each time)."""
    return {str(raw): int(idx) for raw, idx in zip(data.users["user"].to_list(), data.users["user_idx"].to_list(),
                                                   strict=True)}


def index_to_raw(data: Any) -> dict[int, str]:
    """Index -> raw user id, built once for many answers (what `data.user_raw_id` gives one at a time)."""
    return {idx: raw for raw, idx in raw_to_index(data).items()}


# -- examples and prompts -----------------------------------------------------------------------------
def serving_examples(task: Any, dataset: Any, users: Sequence[int], seed: int) -> list[Any]:
    """The task's test-style examples for `users` (in that order), each history the user's whole sequence.

    Reuses the task's own example builder (same argument words as in search and eval) on a split in
    which each listed user's "test" history is everything they interacted with; the target is a
    placeholder that nothing reads. A user's example does not depend on which other users are listed.
    """
    from paprec_cli.data.splits import LeaveOneOut, TaskData

    if task.kind != "ranking":
        raise PaprecError(f"--task {task.name}: recommend ranks items; use a ranking task such as sequential")
    n = dataset.n_users + 1
    empty = np.zeros(0, dtype=np.int64)
    train = [empty] * n  # read only
    validation = np.zeros(n, dtype=np.int64)
    test = np.zeros(n, dtype=np.int64)
    for user in set(users):
        full = np.asarray(dataset.sequences[user], dtype=np.int64)
        if full.size == 0:
            raise PaprecError(f"--user {user}: this user has no interactions in dataset '{dataset.name}'")
        train[user], validation[user], test[user] = full[:-1], full[-1], full[-1]
    data = TaskData(dataset, seed)
    data.__dict__["loo"] = LeaveOneOut(train, validation, test)  # cached_property slot: this view only
    by_user = {ex.user: ex for ex in task.examples(data, "test")}
    examples = [by_user.get(user) for user in users]
    if any(ex is None or ex.candidates is not None for ex in examples):
        raise PaprecError(
            f"--task {task.name}: recommend ranks over all items, but this task ranks given candidates; "
            "use --task sequential"
        )
    return examples


def serving_example(task: Any, dataset: Any, user: int, seed: int) -> Any:
    """The serving example of one user (see `serving_examples`)."""
    return serving_examples(task, dataset, [user], seed)[0]


def prepare_prompts(codec: Any, task: Any, examples: Sequence[Any], doc: dict[str, Any] | None) -> list[Prepared]:
    """Each user's personalized, else shared automatic prompt from `doc`; the manual template without one."""
    from paprec_cli.evaluate import automatic_prompts, layout_of, manual_prompts, tokens_of
    from paprec_cli.export import render_prompt

    if doc is None:
        encoded = manual_prompts(codec, task, examples)
        texts = [" ".join(w.text for w in task.manual().render(ex.values)) for ex in examples]
        return [Prepared(prompt, "manual", text) for prompt, text in zip(encoded, texts, strict=True)]
    personal = doc.get("personal") or {}
    encoded = automatic_prompts(codec, layout_of(doc), examples, tokens_of(doc, personalized=True))
    out = []
    for prompt, ex in zip(encoded, examples, strict=True):
        own = str(ex.user) in personal
        text = render_prompt(doc, ex.user if own else None, " ".join(w.text for w in ex.argument))
        out.append(Prepared(prompt, "personalized" if own else "shared", text))
    return out


# -- ranking ------------------------------------------------------------------------------------------
def top_items_batch(recommender: Any, codec: Any, prompts: Sequence[Any], k: int,
                    excludes: Sequence[set[int]]) -> list[list[tuple[int, float]]]:
    """Per prompt, (item index, log-probability) of the best `k` items, skipping that prompt's `excludes`."""
    want = min(codec.n_items, k + max(len(e) for e in excludes))
    batch = codec.collate(list(prompts), recommender.device)
    ranked = recommender.rank_all(batch, want)
    scores = recommender.score_candidates(batch, ranked).float().cpu().tolist()
    out = []
    for items, row, exclude in zip(ranked.cpu().tolist(), scores, excludes, strict=True):
        kept = [(int(i), float(s)) for i, s in zip(items, row, strict=True) if int(i) not in exclude]
        out.append(kept[:k])
    return out


def item_rows_many(dataset: Any, ranked: Sequence[list[tuple[int, float]]]) -> list[list[dict[str, Any]]]:
    """Output rows (rank, item index and id, score, title/attributes where present) of several ranked lists,
    with one look-up in the item table."""
    import polars as pl

    wanted = sorted({i for items in ranked for i, _ in items})
    meta = dataset.items.filter(pl.col("item_idx").is_in(wanted))
    by_idx = {row["item_idx"]: row for row in meta.iter_rows(named=True)}
    return [[item_row(rank, idx, score, by_idx.get(idx, {})) for rank, (idx, score) in enumerate(items, start=1)]
            for items in ranked]


def item_row(rank: int, idx: int, score: float, info: dict[str, Any]) -> dict[str, Any]:
    """One output row; title and attributes only when present, so JSON stays as small as the data allows."""
    row: dict[str, Any] = {"rank": rank, "item_idx": idx, "item": info.get("item"), "score": score}
    if info.get("title"):
        row["title"] = info["title"]
    if info.get("attributes"):
        row["attributes"] = list(info["attributes"])
    return row


# -- serving ------------------------------------------------------------------------------------------
def open_serving(ctx: Ctx, prompts: str | None, model: str | None, dataset: str | None,
                 task_name: str | None) -> Serving:
    """Dataset, model and task the prompts name (overrides checked), else --dataset/--model/--task."""
    from paprec_cli.data.store import load_dataset
    from paprec_cli.evaluate import split_seed
    from paprec_cli.export import open_prompts
    from paprec_cli.model import load_model
    from paprec_cli.search.runner import default_model

    if prompts is not None:
        bound = open_prompts(prompts, ctx.home, model=model, dataset=dataset)
        doc = bound.doc
        if task_name is not None and task_name != doc["task"]:
            raise PaprecError(f"--task {task_name}: the prompts in {bound.source} are for task '{doc['task']}'")
        task = ctx.registry.task(str(doc["task"]))
        return Serving(bound.dataset, bound.bundle, task, doc, bound.split_seed)
    if dataset is None:
        raise PaprecError("--dataset is required without --prompts (the prompts would name it)")
    data = load_dataset(ctx.home, dataset)
    bundle = load_model(model or default_model(ctx.home, dataset), ctx.home, dataset=data)
    return Serving(data, bundle, ctx.registry.task(task_name or "sequential"), None, split_seed(bundle))


def shared_fallbacks(serving: Serving, users: Sequence[int]) -> int:
    """How many requested users get the shared prompt although the prompts have personal slots."""
    doc = serving.doc
    if doc is None or int(doc["layout"].get("n_personal", 0)) == 0:
        return 0
    personal = doc.get("personal") or {}
    return sum(str(user) not in personal for user in users)


def serve(serving: Serving, users: Sequence[int], k: int, exclude_seen: bool, batch_size: int,
          device: str, dist: DistContext | None = None) -> list[Answer]:
    """Answers for `users` in request order; with `dist`, each rank serves a contiguous share of whole
    batches (so every batch is the one a single process runs) and every rank gets all answers."""
    from paprec_cli.model import Recommender

    mine = list(dist.shard(users, align=batch_size)) if dist is not None else list(users)
    answers: list[Answer] = []
    if mine:
        serving.bundle.model.eval()
        recommender = Recommender(serving.bundle.model, serving.bundle.codec, device)
        answers = serve_share(serving, recommender, mine, k, exclude_seen, batch_size)
    return dist.gather_shards(answers) if dist is not None else answers


def serve_share(serving: Serving, recommender: Any, users: list[int], k: int, exclude_seen: bool,
                batch_size: int) -> list[Answer]:
    """This process's answers, batch by batch (examples and prompts are built once for the share)."""
    data, codec = serving.data, serving.bundle.codec
    examples = serving_examples(serving.task, data, users, serving.seed)
    prepared = prepare_prompts(codec, serving.task, examples, serving.doc)
    excludes = [{int(i) for i in data.sequences[u]} if exclude_seen else set() for u in users]
    raw = index_to_raw(data)
    answers: list[Answer] = []
    for start in range(0, len(users), batch_size):
        part = slice(start, start + batch_size)
        ranked = top_items_batch(recommender, codec, [p.prompt for p in prepared[part]], k, excludes[part])
        rows = item_rows_many(data, ranked)
        for user, prep, items in zip(users[part], prepared[part], rows, strict=True):
            answers.append({"user": raw[user], "user_idx": user, "dataset": data.name, "task": serving.task.name,
                            "prompt": prep.mode, "prompt_text": prep.text, "items": items})
    return answers


# -- output (rank 0) ----------------------------------------------------------------------------------
def json_lines(answers: Sequence[Answer]) -> str:
    """One JSON object per line, serialized as `--json` is (NaN/inf become null)."""
    from paprec_cli.output import jsonable

    return "".join(json.dumps(jsonable(answer)) + "\n" for answer in answers)


def show_one(ctx: Ctx, user: str, answer: Answer) -> None:
    """One user's table and prompt (the classic `--user` output) and its `--json` line."""
    rows = answer["items"]
    table = Table(title=escape(f"top {len(rows)} for user {user} ({answer['prompt']} prompt)"))
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


def write_many(ctx: Ctx, answers: Sequence[Answer], output: Path | None) -> None:
    """JSON lines to stdout, or atomically to `output` with a summary (the `--json` line) on stdout."""
    from paprec_cli.paths import atomic_path

    text = json_lines(answers)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    ctx.out.info(f"Wrote recommendations for {len(answers)} user(s) to {output}")
    modes: dict[str, int] = {}
    for answer in answers:
        modes[answer["prompt"]] = modes.get(answer["prompt"], 0) + 1
    ctx.out.result({"output": str(output), "users": len(answers), "prompts": modes})


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
        from paprec_cli.distributed import distributed

        if k < 1 or batch_size < 1:
            raise PaprecError("-k and --batch-size must be integers >= 1")
        check_request(user, users_file, all_users, output)
        check_output(output, "--output", force, reads=(prompts, users_file))
        with distributed(resolve_device(device)) as dist:
            ctx = make_ctx(home, json_out and dist.is_main, quiet or not dist.is_main)
            serving = open_serving(ctx, prompts, model, dataset, task_name)
            users = chosen_users(serving.data, user, users_file, all_users)
            serving_example(serving.task, serving.data, users[0], serving.seed)  # task refusals, on every rank
            fallbacks = shared_fallbacks(serving, users)
            if fallbacks and user is not None:
                ctx.out.info(escape(f"user {user} has no personalized tokens in {prompts}; using the shared prompt"))
            elif fallbacks:
                ctx.out.info(escape(f"{fallbacks} of {len(users)} users have no personalized tokens in {prompts}; "
                                    "they get the shared prompt"))
            answers = serve(serving, users, k, exclude_seen, batch_size, dist.device, dist)
        if not dist.is_main:
            return
        if user is not None and output is None:
            show_one(ctx, user, answers[0])
        else:
            write_many(ctx, answers, output)
