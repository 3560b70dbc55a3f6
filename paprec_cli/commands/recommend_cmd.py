"""`paprec recommend`: top-k items for one user with that user's searched prompt.

The history is what a model would see when serving: the user's full sequence (train + validation +
test items, the most recent `max_history` of them as the task truncates). Prompt choice: the user's
personalized tokens from the prompts, else the shared prompt (with the default personal tokens; said
on stderr), else, without prompts, the task's manual template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from paprec_cli.commands.common import DeviceOpt, HomeOpt, JsonOpt, PaprecTyper, QuietOpt, make_ctx, resolve_device
from paprec_cli.errors import PaprecError


@dataclass
class Prepared:
    """The encoded prompt for one user and how it was chosen."""

    prompt: Any  # EncodedPrompt
    mode: str  # "personalized" | "shared" | "manual"
    text: str


def serving_example(task: Any, dataset: Any, user: int, seed: int) -> Any:
    """The task's test-style example for `user` whose history is the user's whole sequence.

    Reuses the task's own example builder (same argument words as in search and eval) on a split in
    which `user`'s "test" history is everything they interacted with; the target is a placeholder
    that nothing reads.
    """
    from paprec_cli.data.splits import LeaveOneOut, TaskData

    if task.kind != "ranking":
        raise PaprecError(f"--task {task.name}: recommend ranks items; use a ranking task such as sequential")
    full = np.asarray(dataset.sequences[user], dtype=np.int64)
    if full.size == 0:
        raise PaprecError(f"--user {user}: this user has no interactions in dataset '{dataset.name}'")
    n = dataset.n_users + 1
    train = [np.zeros(0, dtype=np.int64) for _ in range(n)]
    validation = np.zeros(n, dtype=np.int64)
    test = np.zeros(n, dtype=np.int64)
    train[user], validation[user], test[user] = full[:-1], full[-1], full[-1]
    data = TaskData(dataset, seed)
    data.__dict__["loo"] = LeaveOneOut(train, validation, test)  # cached_property slot: this view only
    examples = [ex for ex in task.examples(data, "test") if ex.user == user]
    if len(examples) != 1 or examples[0].candidates is not None:
        raise PaprecError(
            f"--task {task.name}: recommend ranks over all items, but this task ranks given candidates; "
            "use --task sequential"
        )
    return examples[0]


def prepare_prompt(codec: Any, task: Any, example: Any, doc: dict[str, Any] | None) -> Prepared:
    """Personalized, else shared automatic prompt from `doc`; the manual template without a document."""
    from paprec_cli.evaluate import automatic_prompts, layout_of, manual_prompts, tokens_of
    from paprec_cli.export import render_prompt

    if doc is None:
        words = task.manual().render(example.values)
        return Prepared(manual_prompts(codec, task, [example])[0], "manual", " ".join(w.text for w in words))
    own = str(example.user) in (doc.get("personal") or {})
    prompt = automatic_prompts(codec, layout_of(doc), [example], tokens_of(doc, personalized=own))[0]
    text = render_prompt(doc, example.user if own else None, " ".join(w.text for w in example.argument))
    return Prepared(prompt, "personalized" if own else "shared", text)


def top_items(recommender: Any, codec: Any, prompt: Any, k: int, exclude: set[int]) -> list[tuple[int, float]]:
    """(item index, log-probability) of the best `k` items, skipping `exclude`."""
    want = min(codec.n_items, k + len(exclude))
    batch = codec.collate([prompt], recommender.device)
    ranked = recommender.rank_all(batch, want)
    scores = recommender.score_candidates(batch, ranked)[0].float().cpu().tolist()
    items = [(int(i), float(s)) for i, s in zip(ranked[0].cpu().tolist(), scores, strict=True) if int(i) not in exclude]
    return items[:k]


def item_rows(dataset: Any, ranked: list[tuple[int, float]]) -> list[dict[str, Any]]:
    import polars as pl

    wanted = [i for i, _ in ranked]
    meta = dataset.items.filter(pl.col("item_idx").is_in(wanted))
    by_idx = {row["item_idx"]: row for row in meta.iter_rows(named=True)}
    rows = []
    for rank, (idx, score) in enumerate(ranked, start=1):
        info = by_idx.get(idx, {})
        row: dict[str, Any] = {"rank": rank, "item_idx": idx, "item": info.get("item"), "score": score}
        if info.get("title"):
            row["title"] = info["title"]
        if info.get("attributes"):
            row["attributes"] = list(info["attributes"])
        rows.append(row)
    return rows


def register(app: PaprecTyper) -> None:
    @app.command("recommend")
    def recommend(
        user: Annotated[str, typer.Option("--user", "-u", help="Raw user id, user_N, or user index N.")],
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
        device: DeviceOpt = "auto",
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Top-k items for a user, with their personalized prompt (else the shared one, else the manual one).

        The history given to the model is the user's full sequence (train + validation + test items).
        """
        from paprec_cli.data.store import load_dataset
        from paprec_cli.evaluate import split_seed
        from paprec_cli.export import open_prompts
        from paprec_cli.model import Recommender, load_model
        from paprec_cli.search.runner import default_model

        if k < 1:
            raise PaprecError("-k must be an integer >= 1")
        ctx = make_ctx(home, json_out, quiet)
        doc: dict[str, Any] | None = None
        if prompts is not None:
            bound = open_prompts(prompts, ctx.home, model=model, dataset=dataset)
            doc, data, bundle, seed = bound.doc, bound.dataset, bound.bundle, bound.split_seed
            if task_name is not None and task_name != doc["task"]:
                raise PaprecError(f"--task {task_name}: the prompts in {bound.source} are for task '{doc['task']}'")
            task_name = str(doc["task"])
        else:
            if dataset is None:
                raise PaprecError("--dataset is required without --prompts (the prompts would name it)")
            data = load_dataset(ctx.home, dataset)
            bundle = load_model(model or default_model(ctx.home, dataset), ctx.home, dataset=data)
            seed = split_seed(bundle)
        task = ctx.registry.task(task_name or "sequential")
        user_idx = data.user_index(user)
        example = serving_example(task, data, user_idx, seed)
        prepared = prepare_prompt(bundle.codec, task, example, doc)
        if prepared.mode == "shared" and doc is not None and int(doc["layout"].get("n_personal", 0)) > 0:
            ctx.out.info(f"user {user} has no personalized tokens in {prompts}; using the shared prompt")
        bundle.model.eval()
        recommender = Recommender(bundle.model, bundle.codec, resolve_device(device))
        seen = {int(i) for i in data.sequences[user_idx]} if exclude_seen else set()
        rows = item_rows(data, top_items(recommender, bundle.codec, prepared.prompt, k, seen))

        table = Table(title=f"top {len(rows)} for user {user} ({prepared.mode} prompt)")
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
        ctx.out.info(escape(f"prompt: {prepared.text}"))
        ctx.out.result(
            {
                "user": data.user_raw_id(user_idx),
                "user_idx": user_idx,
                "dataset": data.name,
                "task": task.name,
                "prompt": prepared.mode,
                "prompt_text": prepared.text,
                "items": rows,
            }
        )
