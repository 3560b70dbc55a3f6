"""Per-dataset recipes, `-o` training settings, the most recent prefixes and the history cap (issue #18)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paprec_cli.data.splits import TaskData
from paprec_cli.data.store import import_dataset, load_dataset
from paprec_cli.errors import PaprecError
from paprec_cli.inputs import PAPREC, InputProtocol, inputs_for
from paprec_cli.paths import Home
from paprec_cli.plugins import load_registry
from paprec_cli.specs import ImportOptions
from paprec_cli.training import recipe as recipes
from paprec_cli.training.mixture import Mixture, TrainingData, recent_indices
from paprec_cli.training.setup import new_options, parse_train_options


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = Home.resolve(tmp_path_factory.mktemp("home"))
    options = ImportOptions(extra={"users": "30", "items": "80", "categories": "4", "length": "12"})
    import_dataset(load_registry().dataset("synthetic"), None, home, options=options)
    return load_dataset(home, "synthetic")


def test_recent_indices_keep_each_users_last_entries() -> None:
    assert recent_indices([1, 1, 1, 2, 2], 2).tolist() == [1, 2, 3, 4]
    assert recent_indices([1, 1, 1, 2, 2], 1).tolist() == [2, 4]
    assert recent_indices([3, 3, 3], 0).tolist() == [0, 1, 2]
    assert recent_indices([], 4).tolist() == []


def test_recent_keeps_the_last_prefixes_of_every_user(dataset) -> None:  # type: ignore[no-untyped-def]
    data = TaskData(dataset, seed=0)
    sequential = load_registry().task("sequential")
    plain = Mixture(hint=0, word_item=0, item_words=0)
    every = TrainingData(data, [sequential], plain, 0)
    recent = TrainingData(data, [sequential], Mixture(hint=0, word_item=0, item_words=0, recent=3), 0)
    n_users = sum(1 for u in range(1, data.n_users + 1) if len(data.loo.train[u]) >= 2)
    assert len(recent.pool(sequential)) == sum(min(3, len(data.loo.train[u]) - 1) for u in range(1, data.n_users + 1))
    assert len(every.pool(sequential)) > len(recent.pool(sequential)) >= n_users
    kept = [every.examples["sequential"][i] for i in recent.pool(sequential).tolist()]
    for user in (1, 2):
        train = data.loo.train[user]
        assert [ex.target for ex in kept if ex.user == user] == [int(x) for x in train[-3:]]
    assert recent.family_counts(recent.epoch(1)) == {"sequential": len(recent.pool(sequential))}


def test_history_cap_shortens_train_and_test_prompts(dataset) -> None:  # type: ignore[no-untyped-def]
    sequential = load_registry().task("sequential")
    short = TaskData(dataset, seed=0, inputs=InputProtocol(history=3))
    default = TaskData(dataset, seed=0)
    n_items = lambda ex: sum(1 for w in ex.values["history"] if w.text != ",")  # noqa: E731
    assert max(n_items(ex) for ex in sequential.examples(short, "train")) == 3
    assert max(n_items(ex) for ex in sequential.examples(short, "test")) == 3
    assert max(n_items(ex) for ex in sequential.examples(default, "test")) > 3
    assert [ex.target for ex in sequential.examples(short, "train")] == [
        ex.target for ex in sequential.examples(default, "train")
    ]


def test_a_model_records_its_history_and_search_reads_it() -> None:
    assert inputs_for({}, "ml-100k") is PAPREC
    assert inputs_for({"input_history": 20}, "ml-100k") is PAPREC
    assert inputs_for({"input_history": 8}, "ml-100k").history == 8
    assert inputs_for({"input_history": 8, "input_protocol": "p5"}, "beauty").name == "p5"


def test_train_settings_parse_and_refuse() -> None:
    assert parse_train_options(["history=8", "recent=20", "hint=0"]) == {"history": 8, "recent": 20, "hint": 0.0}
    for bad in (["history=0"], ["recent=-1"], ["hint=nan"], ["recent=x"], ["lr=1"], ["history=3", "history=4"]):
        with pytest.raises(PaprecError, match="^-o "):
            parse_train_options(bad)


def test_dataset_recipe_and_settings_reach_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(recipes.DATASET_RECIPES, ("toyset", "tiny"), {"lr": 2e-3, "history": 9, "hint": 0.0})
    common = {"tasks": ["sequential"], "size": "tiny", "ids": "atomic", "name": None, "seed": 0, "init": None,
              "time_budget": None}
    tuned = new_options(dataset="toyset", overrides={}, **common)
    assert (tuned.recipe.lr, tuned.recipe.history, tuned.mixture.hint) == (2e-3, 9, 0.0)
    other = new_options(dataset="beauty", overrides={}, **common)  # no entry of its own: the size's defaults
    assert (other.recipe, other.mixture) == (recipes.RECIPES["tiny"], recipes.MIXTURES["tiny"])
    given = new_options(dataset="toyset", overrides={"lr": 1e-3}, settings={"history": 5, "recent": 4}, **common)
    assert (given.recipe.lr, given.recipe.history, given.mixture.recent) == (1e-3, 5, 4)
    hinted = new_options(dataset="synthetic", overrides={}, settings=parse_train_options(["history_hint=1"]), **common)
    assert (hinted.mixture.history_hint, hinted.mixture.hint) == (1.0, recipes.MIXTURES["tiny"].hint)


def test_recent_defaults_to_every_prefix() -> None:
    assert Mixture().recent == 0
    assert np.array_equal(recent_indices([1, 2, 1], 0), np.arange(3))


def test_share_draws_a_new_part_of_every_task_each_epoch(dataset) -> None:  # type: ignore[no-untyped-def]
    data = TaskData(dataset, seed=0)
    sequential = load_registry().task("sequential")
    part = TrainingData(data, [sequential], Mixture(hint=0, word_item=0, item_words=0, share=0.25), 0)
    n_pool = len(part.pool(sequential))
    first, second = part.epoch(1), part.epoch(2)
    assert len(first) == len(second) == round(0.25 * n_pool)
    assert {p.source for p in first} != {p.source for p in second}
    assert parse_train_options(["share=0.2"]) == {"share": 0.2}
    for bad in (["share=0"], ["share=1.5"]):
        with pytest.raises(PaprecError, match="^-o share"):
            parse_train_options(bad)


def test_seen_penalty_targets_only_the_prompts_items_and_never_the_target() -> None:
    import torch

    from paprec_cli.training.loop import seen_item_penalty

    logits = torch.zeros(2, 10)  # uniform: p = 0.1 everywhere, every logit equal to the target's
    ids = torch.tensor([[1, 5, 6, 5, 0], [2, 3, 0, 0, 0]])  # items are tokens 5..8
    labels = torch.tensor([6, 7])
    # row 0: item 5 once (6 is the target, 5 repeated counts once); row 1: no item in the prompt
    unlikely = seen_item_penalty(logits, ids, labels, (5, 9), "unlikelihood")
    assert unlikely.tolist() == pytest.approx([-np.log(0.9), 0.0])
    pairwise = seen_item_penalty(logits, ids, labels, (5, 9))
    assert pairwise.tolist() == pytest.approx([np.log(2.0), 0.0])  # softplus(0)
    logits.requires_grad_(True)
    seen_item_penalty(logits, ids, labels, (5, 9)).sum().backward()
    assert logits.grad is not None
    assert float(logits.grad[0, 5]) == pytest.approx(0.5) and float(logits.grad[0, 6]) == pytest.approx(-0.5)
    assert float(logits.grad[1].abs().sum()) == 0
    assert parse_train_options(["seen_penalty=1"]) == {"seen_penalty": 1.0}
    assert parse_train_options(["item_head=untied"]) == {"item_head": "untied"}


def test_ml100k_tiny_recipe_is_a_budget_that_anneals() -> None:
    common = {"tasks": ["sequential"], "size": "tiny", "ids": "atomic", "name": None, "seed": 0, "init": None,
              "overrides": {}}
    ml = new_options(dataset="ml-100k", time_budget=None, **common)
    assert (ml.time_budget, ml.anneal_to_budget) == (600.0, True)
    assert (ml.recipe.history, ml.mixture.recent, ml.mixture.hint, ml.recipe.lr) == (30, 20, 0.0, 2e-3)
    assert ml.recipe.val_users >= 943  # every ML-100K user validates: 300 picked noisy epochs (session 15)
    assert ml.recipe.user_dropout == 0.5  # half the prompts hide the user id (session 17)
    assert (ml.recipe.seen_bias, ml.recipe.dropout) == (1, 0.0)  # session 18
    quick = new_options(dataset="synthetic", time_budget=None, **common)
    assert (quick.time_budget, quick.anneal_to_budget, quick.recipe.history, quick.mixture.recent) == (
        150.0, False, 20, 0)
    small = new_options(dataset="ml-100k", time_budget=None, **{**common, "size": "small"})
    assert small.recipe == recipes.RECIPES["small"] and small.time_budget is None


def test_history_hint_alone_adds_its_pairs(dataset) -> None:  # type: ignore[no-untyped-def]
    data = TaskData(dataset, seed=0)
    sequential = load_registry().task("sequential")
    alone = TrainingData(data, [sequential], Mixture(hint=0, word_item=0, item_words=0, history_hint=1.0), 0)
    counts = alone.family_counts(alone.epoch(1))
    assert counts["history_hint"] > 0.9 * counts["sequential"]
    assert set(counts) == {"sequential", "history_hint"} and alone.families() == ["sequential", "history_hint"]
    assert recipes.mixture_for("tiny", "ml-100k").history_hint == 0.0  # the measured ML-100K recipe has none


def test_an_import_under_another_name_trains_with_its_importers_recipe(tmp_path: Path) -> None:
    """The recipe follows the importer recorded in the manifest (`recipe.recipe_dataset`): ML-100K imported as
    "ml-100k-item" gets ML-100K's measured recipe, not the size's generic one, and its retrain command asks for
    nothing more (it would otherwise have silently lost the recipe that beats item-kNN)."""
    from paprec_cli.training.command import train_command
    from paprec_cli.training.recipe import recipe_dataset
    from paprec_cli.training.setup import cli_options

    home = Home(tmp_path)
    (tmp_path / "data" / "ml-100k-item").mkdir(parents=True)
    (tmp_path / "data" / "ml-100k-item" / "manifest.json").write_text(json.dumps({"dataset": "ml-100k"}))
    assert recipe_dataset("ml-100k-item", tmp_path) == "ml-100k"
    assert recipe_dataset("elsewhere", tmp_path) == "elsewhere" and recipe_dataset("x", None) == "x"
    options = cli_options(home, dataset="ml-100k-item", tasks="sequential", size=None, ids=None, name=None, seed=0,
                          time_budget=None, init=None, resume=None, overrides={})
    ml = recipes.recipe_for("tiny", "ml-100k")
    assert options.recipe == ml and options.mixture == recipes.mixture_for("tiny", "ml-100k")
    assert options.recipe != recipes.recipe_for("tiny", "ml-100k-item")  # the name alone has no recipe
    command = train_command(options, "m", tmp_path)
    assert " -o " not in command and "--lr" not in command and "--dropout" not in command, command


@pytest.mark.parametrize(("path", "value", "message"), [
    (("recipe", "seen_bias"), 7, r"the recipe's seen_bias cannot train; expected 0 or 1"),
    (("recipe", "seen_bias"), "on", r"recipe.seen_bias is 'on', expected int"),
    (("recipe", "history"), "many", r"recipe.history is 'many', expected int"),
    (("recipe", "user_dropout"), -3, r"the recipe's user_dropout cannot train; expected a share in \[0, 1\]"),
    (("recipe", "epochs"), 4.0, r"recipe.epochs is 4.0, expected int"),
    (("mixture", "hint"), float("nan"), r"mixture.hint is nan, expected float"),
    (("seed",), True, r"seed is True, expected int"),
    (("tasks",), "sequential", r"tasks is 'sequential', expected a list"),
])
def test_recorded_options_are_checked_field_by_field(path: tuple[str, ...], value: object, message: str) -> None:
    """A resume state's or training.json's options (`TrainOptions.from_json`): a wrong type or a value that
    cannot train is a ValueError naming the field (the reader names the file), never a traceback later."""
    from paprec_cli.training.recipe import TrainOptions

    good = new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="atomic", name=None, seed=0,
                       time_budget=None, init=None, overrides={}).to_json()
    assert TrainOptions.from_json(json.loads(json.dumps(good))) == new_options(
        dataset="synthetic", tasks=["sequential"], size="tiny", ids="atomic", name=None, seed=0, time_budget=None,
        init=None, overrides={})
    bad = json.loads(json.dumps(good))
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        TrainOptions.from_json(bad)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("epoch", -3, r"epoch is -3, expected a whole number >= 0"),
    ("epoch", "1", r"epoch is '1', expected a whole number"),
    ("epoch", 99, r"history holds 2 entries, expected one per finished epoch \(99\)"),
    ("best_epoch", 5, r"best_epoch is 5, expected one of the finished epochs 1..2"),
    ("best_score", "nan", r"best_score is 'nan', expected the best epoch's finite validation score"),
    ("best_score", None, r"best_score is None"),
    ("step", -1, r"step is -1"),
    ("finished", "no", r"finished is 'no', expected true or false"),
    ("history", [], r"history holds 0 entries"),
    ("history", [{"epoch": 2}, {"epoch": 1}], r"history entry 1 is not epoch 1's record"),
])
def test_a_resume_states_progress_is_checked(key: str, value: object, message: str, tmp_path: Path) -> None:
    """`state.json`'s counters (`RunState.from_json`): an edited or damaged value is a one-line error naming the
    file and the field when the run is resumed, never a traceback after another epoch or a wrong record."""
    from paprec_cli.training.state import STATE, RunState, read_state

    options = new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="atomic", name=None, seed=0,
                          time_budget=None, init=None, overrides={})
    good = RunState(options, epoch=2, step=10, seconds=3.0, history=[{"epoch": 1}, {"epoch": 2}], best_epoch=2,
                    best_score=0.25).to_json()
    assert RunState.from_json(json.loads(json.dumps(good))).best_epoch == 2
    (tmp_path / STATE).write_text(json.dumps({**good, key: value}))
    with pytest.raises(PaprecError, match=rf"state.json: damaged training state \(ValueError: {message}"):
        read_state(tmp_path, "run")


def test_recorded_ids_and_mixture_shares_are_checked() -> None:
    from paprec_cli.training.recipe import TrainOptions

    good = new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="atomic", name=None, seed=0,
                       time_budget=None, init=None, overrides={}).to_json()
    for change, message in (({"ids": "bogus"}, r"ids is 'bogus', expected atomic or subword"),
                            ({"mixture": {**good["mixture"], "hint": -0.5}}, r"mixture.hint is -0.5, expected"),
                            ({"mixture": {**good["mixture"], "share": 0.0}}, r"mixture.share 0.0")):
        with pytest.raises(ValueError, match=message):
            TrainOptions.from_json(json.loads(json.dumps({**good, **change})))


def test_quick_start_validates_on_every_user_of_the_default_dataset() -> None:
    """Issue #18: 300 of the synthetic default's 600 users chose epoch 1 (test 1.96x popularity) for the quick
    start; all 600 kept epochs 2-3 (docs/RECIPE-18.md, "Session 21"). If the generator's default user count
    changes, this recipe value must follow it."""
    from paprec_datasets.synthetic import DEFAULTS

    common = {"dataset": "synthetic", "tasks": [], "size": "tiny", "ids": "atomic", "name": None, "seed": 0,
              "time_budget": None, "init": None}
    assert new_options(**common, overrides={}).recipe.val_users == int(DEFAULTS["users"])
    assert new_options(**common, overrides={"val_users": 50}).recipe.val_users == 50  # --val-users still wins
    other = {**common, "dataset": "beauty"}
    assert new_options(**other, overrides={}).recipe.val_users == recipes.RECIPES["tiny"].val_users
