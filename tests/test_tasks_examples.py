"""Built-in tasks on a tiny hand-made dataset: templates, examples without leaks, metrics, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from paprec_tasks import DirectTask, RatingTask, SequentialTask
from paprec_tasks.direct import train_candidate_sets

from paprec_cli.data.splits import N_NEGATIVES, TaskData
from paprec_cli.data.store import import_dataset, load_dataset
from paprec_cli.paths import Home
from paprec_cli.specs import DatasetSpec, Example, ImportOptions, RawDataset, Word

N_ITEMS = 150
#: Sequence lengths of the "story" users: too short for leave-one-out (1, 2), minimal (3), long (30:
#: longer than max_history, so truncation shows).
LENGTHS = [1, 2, 3, 5, 8, 30]


def tiny_raw(_path: Path | None, _options: ImportOptions) -> RawDataset:
    """Three filler users cover all 150 items (50 each); story users draw distinct items, except the
    last, whose sequence repeats one item (repeat visits must not break anything)."""
    rng = np.random.default_rng(7)
    rows: list[tuple[str, str, float, int]] = []
    for f in range(3):
        for t, item in enumerate(range(50 * f, 50 * f + 50)):
            rows.append((f"f{f}", f"i{item}", float(1 + (item % 5)), t))
    for u, length in enumerate(LENGTHS):
        items = rng.choice(N_ITEMS, size=length, replace=False).tolist()
        if u == len(LENGTHS) - 1:
            items[10] = items[3]
        for t, item in enumerate(items):
            rating = 3.5 if (u, t) == (4, 0) else float(1 + (item + t) % 5)
            rows.append((f"u{u}", f"i{item}", rating, 100 + t))
    interactions = pl.DataFrame(
        {
            "user": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "rating": [r[2] for r in rows],
            "timestamp": [r[3] for r in rows],
        }
    )
    return RawDataset(interactions=interactions, items=pl.DataFrame())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TaskData:
    spec = DatasetSpec(name="tiny", description="test", files="none", load=tiny_raw, needs_files=False)
    home = Home(tmp_path_factory.mktemp("home"))
    import_dataset(spec, None, home)
    return TaskData(load_dataset(home, "tiny"), seed=0)


def texts(words: tuple[Word, ...] | list[Word]) -> list[str]:
    return [w.text for w in words]


def items_of(words: tuple[Word, ...]) -> list[int]:
    """Item indices of a P5 item list, checking the `item , item` format on the way."""
    assert all(w.kind == "item" for w in words[0::2]), texts(words)
    assert all(w == Word(",") for w in words[1::2]), texts(words)
    return [w.index for w in words[0::2]]


TASKS = [SequentialTask(), DirectTask(), RatingTask()]


# --- templates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "ids", "held_out"),
    [
        (TASKS[0], ["2-1", "2-2", "2-3", "2-4", "2-5", "2-6", "2-13"], "2-13"),
        (TASKS[1], ["5-5", "5-6", "5-7", "5-8"], "5-8"),
        (TASKS[2], ["1-1", "1-6", "1-10"], "1-10"),
    ],
)
def test_templates_ids_and_held_out(task, ids: list[str], held_out: str) -> None:
    templates = task.templates
    assert [t.id for t in templates] == ids
    assert [t.id for t in templates if t.held_out] == [held_out] == [templates[-1].id]
    assert len({t.family for t in templates}) == 1
    assert not task.manual().held_out
    assert task.kind == ("rating" if task.name == "rating" else "ranking")


def test_default_templates_render_p5_wording(data: TaskData) -> None:
    seq = SequentialTask().examples(data, "validation")[0]
    rendered = texts(SequentialTask().manual().render(seq.values))
    history = texts(seq.values["history"])
    user = f"user_{seq.user}"
    assert SequentialTask().default_template == "2-3"
    head = "Here is the purchase history list of"
    tail = "try to recommend next item to the user"
    assert rendered == [*head.split(" "), user, ":", *history, *tail.split(" ")]
    rating = RatingTask().examples(data, "test")[0]
    assert " ".join(texts(RatingTask().manual("1-1").render(rating.values))) == (
        f"Which star rating will user_{rating.user} give item {rating.values['item'][0].text} ? "
        "( 1 being lowest and 5 being highest )"
    )
    direct = DirectTask().examples(data, "test")[0]
    rendered = texts(DirectTask().manual().render(direct.values))
    assert DirectTask().default_template == "5-7"
    head = "Pick the most suitable item from the following list and recommend to"
    expected = [*head.split(" "), f"user_{direct.user}", ":"]
    assert rendered[: len(expected)] == expected
    assert len(rendered) == len(expected) + 199  # 100 items and 99 commas


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_every_template_fills_from_example_values(task, data: TaskData) -> None:
    example = task.examples(data, "validation")[0]
    for template in task.templates:
        assert set(template.slots()) <= set(example.values), template.id
        words = template.render(example.values)
        assert all(w.text and " " not in w.text for w in words)
        assert "\\n" not in " ".join(texts(words)) and "{" not in " ".join(texts(words))


def test_unknown_template_is_a_user_error() -> None:
    from paprec_cli.errors import PaprecError

    with pytest.raises(PaprecError, match="--template"):
        SequentialTask().manual("9-9")


# --- sequential -----------------------------------------------------------------------------------


def test_sequential_train_is_every_prefix_without_leaks(data: TaskData) -> None:
    task = SequentialTask()
    examples = task.examples(data, "train")
    loo = data.loo
    expected = sum(max(len(loo.train[u]) - 1, 0) for u in range(1, data.n_users + 1))
    assert len(examples) == expected
    by_user: dict[int, list[Example]] = {}
    for ex in examples:
        by_user.setdefault(ex.user, []).append(ex)
    for user, user_examples in by_user.items():
        train = loo.train[user].tolist()
        for j, ex in enumerate(user_examples, start=1):
            history = items_of(ex.values["history"])
            assert history == train[max(0, j - task.max_history) : j]  # the most recent, oldest first
            assert ex.target == train[j]
            assert ex.argument == (Word.user(user), Word(":"), *ex.values["history"])
            assert ex.values["user"] == (Word.user(user),)
    assert max(len(items_of(ex.values["history"])) for ex in examples) == task.max_history
    # story users hold distinct items, so a held-out item showing up anywhere in training would be a leak
    for user in loo.users("validation").tolist():
        held_out = {int(loo.validation[user]), int(loo.test[user])}
        train = loo.train[user].tolist()
        if len(set(train) | held_out) < len(train) + 2:
            continue  # this user repeats an item; the positional check above covers it
        for ex in by_user.get(user, []):
            assert ex.target not in held_out
            assert not held_out & set(items_of(ex.values["history"]))


def test_sequential_validation_and_test(data: TaskData) -> None:
    task = SequentialTask()
    loo = data.loo
    for part, targets in (("validation", loo.validation), ("test", loo.test)):
        examples = task.examples(data, part)
        assert [ex.user for ex in examples] == loo.users(part).tolist()
        for ex in examples:
            assert ex.target == targets[ex.user] > 0
            assert items_of(ex.values["history"]) == loo.history(ex.user, part)[-task.max_history :].tolist()
    test = {ex.user: ex for ex in task.examples(data, "test")}
    for ex in task.examples(data, "validation"):
        assert items_of(test[ex.user].values["history"])[-1] == ex.target  # validation item joins for test


# --- direct -----------------------------------------------------------------------------------------


def test_direct_candidates(data: TaskData) -> None:
    task = DirectTask()
    sequences = data.dataset.sequences
    for part in ("validation", "test"):
        examples = task.examples(data, part)
        assert examples and [ex.user for ex in examples] == data.loo.users(part).tolist()
        for ex in examples:
            cands = list(ex.candidates or ())
            assert len(cands) == 1 + N_NEGATIVES
            assert cands.count(int(ex.target)) == 1
            negatives = [c for c in cands if c != ex.target]
            assert len(set(negatives)) == N_NEGATIVES
            assert not set(negatives) & set(sequences[ex.user].tolist())
            assert items_of(ex.values["candidates"]) == cands
            assert ex.argument == (Word.user(ex.user), Word(":"), *ex.values["candidates"])
    train = task.examples(data, "train")
    assert len(train) == sum(len(data.loo.train[u]) for u in range(1, data.n_users + 1))
    positions: dict[int, int] = {}
    for ex in train:
        cands = list(ex.candidates or ())
        assert len(cands) == task.train_candidates and cands.count(int(ex.target)) == 1
        assert len(set(cands)) == len(cands)
        assert not (set(cands) - {ex.target}) & set(sequences[ex.user].tolist())
        j = positions.get(ex.user, 0)
        assert ex.target == data.loo.train[ex.user][j]  # every training item, in order, is a positive
        positions[ex.user] = j + 1
        assert ex.target not in (data.loo.validation[ex.user], data.loo.test[ex.user]) or len(
            set(sequences[ex.user].tolist())
        ) < len(sequences[ex.user])


def test_train_candidate_sets_small_catalogue_and_spread() -> None:
    small, empty = train_candidate_sets(
        [1, 2], [np.array([1, 2]), np.zeros(0, dtype=np.int64)], [np.array([1, 2, 3]), np.array([4])], 6, 20, 0
    )
    assert small.shape == (2, 4) and empty.shape == (0, 6)  # only items 4..6 are never-seen negatives
    assert sorted(small[0].tolist()) == [1, 4, 5, 6] and sorted(small[1].tolist()) == [2, 4, 5, 6]
    positives = np.arange(1, 401)
    (many,) = train_candidate_sets([3], [positives], [positives], 5000, 20, seed=0)
    slots = (many == positives[:, None]).argmax(axis=1)
    assert len(set(slots.tolist())) > 10  # the positive is not always in the same place
    assert all(
        len(set(row)) == 20 and not set(row) - {p} & set(range(1, 401))
        for row, p in zip(many.tolist(), positives.tolist(), strict=True)
    )
    # a user's sets do not depend on which other users are drawn with it
    (alone,) = train_candidate_sets([7], [np.array([9, 8])], [np.array([9, 8, 1])], 5000, 20, seed=0)
    _, together = train_candidate_sets(
        [3, 7], [positives, np.array([9, 8])], [positives, np.array([9, 8, 1])], 5000, 20, seed=0
    )
    assert (alone == together).all()


# --- rating -----------------------------------------------------------------------------------------


def test_rating_examples_come_from_their_split(data: TaskData) -> None:
    task = RatingTask()
    seen: set[tuple[int, int, float]] = set()
    for part in ("train", "validation", "test"):
        table = data.ratings.part(part)
        columns = (table[c].to_list() for c in ("user_idx", "item_idx", "rating"))
        rows = set(zip(*columns, strict=True))
        examples = task.examples(data, part)
        assert len(examples) == table.height
        got = {(ex.user, ex.argument[1].index, ex.target) for ex in examples}
        assert got == rows
        for ex in examples[:5]:
            assert ex.argument == (Word.user(ex.user), Word.item(ex.argument[1].index))
            assert ex.values == {"user": ex.argument[:1], "item": ex.argument[1:]}
        assert not seen & got
        seen |= got
    assert task.target_words(examples[0]) == [Word(str(int(examples[0].target)), "rating")]
    half = Example(user=1, argument=(), values={}, target=3.5)
    assert task.target_words(half) == [Word("3.5", "rating")]
    assert any(ex.target == 3.5 for part in ("train", "validation", "test") for ex in task.examples(data, part))


# --- determinism, metrics ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_examples_are_deterministic(task, data: TaskData) -> None:
    again = TaskData(data.dataset, seed=data.seed)
    for part in ("train", "validation", "test"):
        assert task.examples(data, part) == task.examples(again, part)
    if task.name == "direct":
        other = TaskData(data.dataset, seed=data.seed + 1)
        assert task.examples(data, "train") != task.examples(other, "train")


def test_ranking_metrics_and_surrogate_hand_case() -> None:
    task = SequentialTask()
    examples = [Example(user=u, argument=(), values={}, target=t) for u, t in ((1, 5), (2, 9), (3, 4))]
    ranked = np.array(
        [
            [5, 1, 2, 3, 4, 6, 7, 8, 10, 11],  # rank 1
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # rank 9
            [1, 2, 4, 3, 5, 6, 7, 8, 9, 10],  # rank 3
        ]
    )
    out = task.metrics(ranked, examples)
    assert out["HR@1"] == pytest.approx(1 / 3) and out["HR@5"] == pytest.approx(2 / 3)
    assert out["HR@10"] == pytest.approx(1.0)
    assert out["NDCG@5"] == pytest.approx((1 + 0.5) / 3)
    assert out["NDCG@10"] == pytest.approx((1 + 1 / np.log2(10) + 0.5) / 3)
    assert task.surrogate(ranked, examples).tolist() == pytest.approx([2.0, 0.0, 1.5])
    assert DirectTask().surrogate(ranked, examples).tolist() == pytest.approx([2.0, 0.0, 1.5])
    assert task.target_words(examples[0]) == [Word.item(5)]
    with pytest.raises(ValueError, match="N=3"):
        task.metrics(ranked[:2], examples)


def test_rating_metrics_and_surrogate_hand_case() -> None:
    task = RatingTask()
    examples = [Example(user=1, argument=(), values={}, target=t) for t in (5.0, 3.0, 1.0)]
    out = task.metrics(np.array([4.0, 3.0, 3.0]), examples)
    assert out["RMSE"] == pytest.approx(np.sqrt(5 / 3)) and out["MAE"] == pytest.approx(1.0)
    assert task.surrogate([4.0, 3.0, np.nan], examples).tolist() == [-1.0, -0.0, -np.inf]
