"""Serving: top-k items for one user or many, each with their searched prompt (`paprec recommend`).

The history is what a model would see when serving: the user's full sequence (train + validation +
test items, the most recent `max_history` of them as the task truncates). Prompt choice: the user's
personalized tokens from the prompts, else the shared prompt (with the default personal tokens; said
on stderr), else, without prompts, the task's manual template.

Many users are served in batches of `batch_size`. Under torchrun each rank serves a contiguous share of
whole batches and every rank gets all answers, in the requested order: the output of one process
(docs/DISTRIBUTED.md). `recommend` is the one call the command makes; `write_answers` writes JSON lines
atomically.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

import numpy as np

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.inputs import PAPREC, InputProtocol, inputs_for
from paprec_cli.paths import check_output
from paprec_cli.textio import read_text_file

if TYPE_CHECKING:
    from paprec_cli.data.store import Dataset
    from paprec_cli.distributed import DistContext
    from paprec_cli.export import Document
    from paprec_cli.model.bundle import ModelBundle
    from paprec_cli.model.codec import PromptCodec
    from paprec_cli.model.encoded import EncodedPrompt
    from paprec_cli.model.inference import Recommender
    from paprec_cli.paths import Home
    from paprec_cli.plugins import Registry
    from paprec_cli.specs import Example, TaskSpec


class ItemRow(TypedDict, total=False):
    """One recommended item: rank, item index and id, log-probability; title/attributes where present."""

    rank: int
    item_idx: int
    item: str | None
    score: float
    title: str
    attributes: list[str]


class _AnswerCore(TypedDict):
    """One user's answer: the object `paprec recommend --user U --json` prints."""

    user: str
    user_idx: int
    dataset: str
    task: str
    #: The exact model input: `mode` ("personalized" | "shared" | "manual"), `text`, `input_ids`,
    #: `whole_word_ids` (`PromptCodec.model_input`) and `inputs` (the input protocol's name).
    prompt: dict[str, object]
    prompt_text: str
    items: list[ItemRow]


class Answer(_AnswerCore, total=False):
    """One user's answer; with `--decoding p5` also `decoding`: `{"name": "p5", "generated": sequences
    generated for this user, "dropped": those that were not an item id of the dataset (or repeated one),
    "short": fewer than k items survived}`."""

    decoding: dict[str, object]


@dataclass
class Prepared:
    """The encoded prompt for one user and how it was chosen."""

    prompt: EncodedPrompt
    mode: str  # "personalized" | "shared" | "manual"
    text: str


@dataclass
class Serving:
    """What answers requests: the dataset, model and task, the prompts document (None: manual template)."""

    data: Dataset
    bundle: ModelBundle
    task: TaskSpec
    doc: Document | None
    seed: int
    inputs: InputProtocol = PAPREC
    decoding: str = "paprec"
    #: `--decoding p5`: sequences generated and dropped (not an item id) by this process's answers.
    p5_counts: dict[str, int] = field(default_factory=lambda: {"generated": 0, "dropped": 0})


@dataclass(frozen=True)
class Request:
    """Who to serve and how (`paprec recommend`'s options): exactly one of `user`, `users_file`, `all_users`."""

    user: str | None = None
    users_file: Path | None = None
    all_users: bool = False
    output: Path | None = None
    dataset: str | None = None
    model: str | None = None
    prompts: str | None = None
    task: str | None = None
    k: int = 10
    exclude_seen: bool = False
    batch_size: int = 64
    tokenizer: str | None = None  # a HF/P5 checkpoint's T5 tokenizer (None: beside the weights)
    separator: str | None = None  # P5 input protocol's history separator (None: ",")
    decoding: str = "paprec"  # "paprec" or "p5" (`paprec_cli.model.inference`)
    force: bool = False  # replace an existing `output` file


# -- which users --------------------------------------------------------------------------------------
def check_request(request: Request) -> None:
    """Refuse a request that names no users or several sources of them, before anything is loaded."""
    if request.k < 1 or request.batch_size < 1:
        raise PaprecError("-k and --batch-size must be integers >= 1")
    if sum((request.user is not None, request.users_file is not None, request.all_users)) != 1:
        raise PaprecError("give exactly one of --user U, --users-file FILE or --all-users")
    if request.output is not None and request.output.is_dir():
        raise PaprecError(f"--output {request.output}: is a folder; expected a file path for the JSON lines")
    check_output(request.output, "--output", request.force, reads=(request.prompts, request.users_file))


def chosen_users(data: Dataset, user: str | None, users_file: Path | None, all_users: bool) -> list[int]:
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


def read_users_file(path: Path, data: Dataset) -> list[int]:
    """User indices of a file with one user per line (raw id, user_N or index 1..N; blank lines skipped)."""
    known = raw_to_index(data)
    users = [user_on_line(path, number, text, data, known) for number, text in users_file_lines(path)]
    if not users:
        raise PaprecError(f"--users-file {path}: no users in it; expected one user id per line")
    return users


def user_on_line(path: Path, number: int, text: str, data: Dataset, known: dict[str, int]) -> int:
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


def raw_to_index(data: Dataset) -> dict[str, int]:
    """Raw user id -> index, built once (a lookup per line would scan the user table each time)."""
    return {str(raw): int(idx) for raw, idx in zip(data.users["user"].to_list(), data.users["user_idx"].to_list(),
                                                   strict=True)}


def index_to_raw(data: Dataset) -> dict[int, str]:
    """Index -> raw user id, built once for many answers (what `data.user_raw_id` gives one at a time)."""
    return {idx: raw for raw, idx in raw_to_index(data).items()}


# -- examples and prompts -----------------------------------------------------------------------------
def serving_examples(task: TaskSpec, dataset: Dataset, users: Sequence[int], seed: int,
                     inputs: InputProtocol = PAPREC) -> list[Example]:
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
    data = TaskData(dataset, seed, loo=LeaveOneOut(train, validation, test), inputs=inputs)
    by_user = {ex.user: ex for ex in task.examples(data, "test")}
    found = [by_user.get(user) for user in users]
    examples = [ex for ex in found if ex is not None and ex.candidates is None]
    if len(examples) != len(found):
        raise PaprecError(
            f"--task {task.name}: recommend ranks over all items, but this task ranks given candidates; "
            "use --task sequential"
        )
    return examples


def serving_example(task: TaskSpec, dataset: Dataset, user: int, seed: int) -> Example:
    """The serving example of one user (see `serving_examples`)."""
    return serving_examples(task, dataset, [user], seed)[0]


def prepare_prompts(codec: PromptCodec, task: TaskSpec, examples: Sequence[Example],
                    doc: Document | None) -> list[Prepared]:
    """Each user's personalized, else shared automatic prompt from `doc`; the manual template without one."""
    from paprec_cli.evaluate import automatic_prompts, manual_prompts
    from paprec_cli.export import layout_of, render_prompt, tokens_of

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
#: The narrowest constrained beam `recommend` decodes sub-word ids with (P5's 20 beams): a beam of only K
#: misses items the exact ranking puts in the top K (an item whose first piece is less likely than another
#: item's shared prefix), so a small `-k` still searches 20 beams and keeps the best K.
SERVING_MIN_BEAMS = 20


def top_items_batch(recommender: Recommender, codec: PromptCodec, prompts: Sequence[EncodedPrompt], k: int,
                    excludes: Sequence[set[int]]) -> list[list[tuple[int, float]]]:
    """Per prompt, (item index, log-probability) of the best `k` items, skipping that prompt's `excludes`.

    Sub-word ids are decoded with `max(k + excluded, SERVING_MIN_BEAMS)` beams; atomic ids rank exactly."""
    want = min(codec.n_items, k + max(len(e) for e in excludes))
    batch = codec.collate(list(prompts), recommender.device)
    beams = max(want, SERVING_MIN_BEAMS)
    ranked = recommender.rank_all(batch, want, num_beams=beams)  # 0: no item (--decoding p5 drops non-items)
    scores = recommender.score_candidates(batch, ranked.clamp(min=1)).float().cpu().tolist()
    out = []
    for items, row, exclude in zip(ranked.cpu().tolist(), scores, excludes, strict=True):
        kept = [(int(i), float(s)) for i, s in zip(items, row, strict=True) if int(i) > 0 and int(i) not in exclude]
        out.append(kept[:k])
    return out


def item_rows_many(dataset: Dataset, ranked: Sequence[list[tuple[int, float]]]) -> list[list[ItemRow]]:
    """Output rows (rank, item index and id, score, title/attributes where present) of several ranked lists,
    with one look-up in the item table."""
    import polars as pl

    wanted = sorted({i for items in ranked for i, _ in items})
    meta = dataset.items.filter(pl.col("item_idx").is_in(wanted))
    by_idx = {row["item_idx"]: row for row in meta.iter_rows(named=True)}
    return [[item_row(rank, idx, score, by_idx.get(idx, {})) for rank, (idx, score) in enumerate(items, start=1)]
            for items in ranked]


def item_row(rank: int, idx: int, score: float, info: Mapping[str, object]) -> ItemRow:
    """One output row; title and attributes only when present, so JSON stays as small as the data allows."""
    row: ItemRow = {"rank": rank, "item_idx": idx, "item": cast("str | None", info.get("item")), "score": score}
    if info.get("title"):
        row["title"] = cast(str, info["title"])
    if info.get("attributes"):
        row["attributes"] = list(cast("list[str]", info["attributes"]))
    return row


# -- serving ------------------------------------------------------------------------------------------
def open_serving(home: Home, registry: Registry, prompts: str | None, model: str | None, dataset: str | None,
                 task_name: str | None, tokenizer: str | None = None, separator: str | None = None) -> Serving:
    """Dataset, model and task the prompts name (overrides checked), else --dataset/--model/--task."""
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import load_model
    from paprec_cli.registry import default_model, split_seed
    from paprec_cli.runs import open_prompts

    if prompts is not None:
        bound = open_prompts(prompts, home, model=model, dataset=dataset, tokenizer=tokenizer)
        doc = bound.doc
        if task_name is not None and task_name != doc["task"]:
            raise PaprecError(f"--task {task_name}: the prompts in {bound.source} are for task '{doc['task']}'")
        task = registry.task(str(doc["task"]))
        return Serving(bound.dataset, bound.bundle, task, doc, bound.split_seed, bound.inputs)
    if dataset is None:
        raise PaprecError("--dataset is required without --prompts (the prompts would name it)")
    data = load_dataset(home, dataset)
    bundle = load_model(model or default_model(home, dataset), home, dataset=data,
                        tokenizer=Path(tokenizer) if tokenizer else None)
    inputs = inputs_for(bundle.config, data.source_name, separator)
    return Serving(data, bundle, registry.task(task_name or "sequential"), None, split_seed(bundle), inputs)


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
        recommender = Recommender(serving.bundle.model, serving.bundle.codec, device, decoding=serving.decoding)
        answers = serve_share(serving, recommender, mine, k, exclude_seen, batch_size)
        for key in serving.p5_counts:
            serving.p5_counts[key] += int(recommender.p5_counts.get(key, 0))
    return dist.gather_shards(answers) if dist is not None else answers


def serve_share(serving: Serving, recommender: Recommender, users: list[int], k: int, exclude_seen: bool,
                batch_size: int) -> list[Answer]:
    """This process's answers, batch by batch (examples and prompts are built once for the share)."""
    data, codec = serving.data, serving.bundle.codec
    examples = serving_examples(serving.task, data, users, serving.seed, serving.inputs)
    prepared = prepare_prompts(codec, serving.task, examples, serving.doc)
    excludes = [{int(i) for i in data.sequences[u]} if exclude_seen else set() for u in users]
    raw = index_to_raw(data)
    answers: list[Answer] = []
    for start in range(0, len(users), batch_size):
        part = slice(start, start + batch_size)
        seen = len(recommender.p5_rows)
        ranked = top_items_batch(recommender, codec, [p.prompt for p in prepared[part]], k, excludes[part])
        counts = recommender.p5_rows[seen:]  # --decoding p5: one (generated, dropped) per prompt of this batch
        rows = item_rows_many(data, ranked)
        for i, (user, prep, items) in enumerate(zip(users[part], prepared[part], rows, strict=True)):
            prompt: dict[str, object] = {"mode": prep.mode, "text": prep.text, **codec.model_input(prep.prompt),
                      "inputs": serving.inputs.name}
            answer: Answer = {"user": raw[user], "user_idx": user, "dataset": data.name, "task": serving.task.name,
                              "prompt": prompt, "prompt_text": prep.text, "items": items}
            if serving.decoding == "p5" and i < len(counts):
                answer["decoding"] = {"name": "p5", "generated": counts[i][0], "dropped": counts[i][1],
                                      "short": len(items) < k}
            answers.append(answer)
    return answers


# -- output (rank 0) ----------------------------------------------------------------------------------
def json_lines(answers: Sequence[Answer]) -> str:
    """One JSON object per line, serialized as `--json` is (NaN/inf become null)."""
    from paprec_cli.output import jsonable

    return "".join(json.dumps(jsonable(answer)) + "\n" for answer in answers)


def write_answers(answers: Sequence[Answer], output: Path | None) -> dict[str, object] | None:
    """JSON lines to stdout (None returned), or atomically to `output`: then the summary that `--json`
    prints (output path, users, how many got each kind of prompt)."""
    from paprec_cli.paths import atomic_path

    text = json_lines(answers)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    modes: dict[str, int] = {}
    for answer in answers:
        mode = str(answer["prompt"]["mode"])
        modes[mode] = modes.get(mode, 0) + 1
    summary: dict[str, object] = {"output": str(output), "users": len(answers), "prompts": modes}
    decoded = decoding_totals(answers)
    if decoded is not None:
        summary["decoding"] = decoded
    return summary


def decoding_totals(answers: Sequence[Answer]) -> dict[str, object] | None:
    """`--decoding p5` over all answers: sequences generated and dropped, and how many users got fewer than
    k items (`{"name": "p5", "generated", "dropped", "short_users"}`); None for paprec's decoding."""
    counted = [a["decoding"] for a in answers if "decoding" in a]
    if not counted:
        return None
    return {"name": "p5", "generated": sum(int(str(c["generated"])) for c in counted),
            "dropped": sum(int(str(c["dropped"])) for c in counted),
            "short_users": sum(1 for c in counted if c["short"])}


def recommend(request: Request, home: Home, registry: Registry, dist: DistContext,
              info: Callable[[str], None]) -> list[Answer]:
    """Answers for the request's users, in request order, on every rank (`check_request` first).

    Loads the prompts (or dataset and model), picks the users, refuses a task that cannot serve (on
    every rank, before any collective), says on `info` how many users fall back to the shared prompt.
    """
    serving = open_serving(home, registry, request.prompts, request.model, request.dataset, request.task,
                           request.tokenizer, request.separator)
    serving.decoding = request.decoding
    users = chosen_users(serving.data, request.user, request.users_file, request.all_users)
    serving_example(serving.task, serving.data, users[0], serving.seed)  # task refusals, on every rank
    fallbacks = shared_fallbacks(serving, users)
    if fallbacks and request.user is not None:
        info(f"user {request.user} has no personalized tokens in {request.prompts}; using the shared prompt")
    elif fallbacks:
        info(f"{fallbacks} of {len(users)} users have no personalized tokens in {request.prompts}; "
             "they get the shared prompt")
    answers = serve(serving, users, request.k, request.exclude_seen, request.batch_size, dist.device, dist)
    if serving.decoding == "p5":
        short = sum(1 for a in answers if len(a["items"]) < request.k)
        counts = serving.p5_counts
        info(f"--decoding p5: {counts['generated']} sequences generated, {counts['dropped']} dropped (not an item "
             f"id of the dataset); {short} of {len(answers)} users got fewer than {request.k} items"
             + (" (this process's share)" if dist.active else ""))
    return answers
