"""Training data assembly: held-out templates never train, no validation/test target leaks in,
the auxiliary word families tie attributes to items, batches and the schedule behave."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import synthetic_task_data

from paprec_cli.data.splits import TaskData
from paprec_cli.plugins import load_registry
from paprec_cli.training.batches import IGNORE, batch_order
from paprec_cli.training.loop import lr_factor
from paprec_cli.training.mixture import Mixture, TrainingData, trained_templates
from paprec_cli.training.recipe import Recipe

TASKS = ("sequential", "direct", "rating")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TaskData:
    return synthetic_task_data(tmp_path_factory.mktemp("home"), users=50, items=150)


@pytest.fixture(scope="module")
def training(data: TaskData) -> TrainingData:
    registry = load_registry()
    return TrainingData(data, [registry.task(t) for t in TASKS], Mixture(item_next=0.3), seed=3)


def _text(words) -> str:  # type: ignore[no-untyped-def]
    return " ".join(w.text for w in words)


def _signature(template, others) -> str:  # type: ignore[no-untyped-def]
    """The longest literal stretch of `template` (between slots) that no other template contains."""
    import re

    chunks = [" ".join(c.split()) for c in re.split(r"\{\w+\}", template.source)]
    unique = [c for c in chunks if c and not any(c in " ".join(o.source.split()) for o in others)]
    assert unique, f"template {template.id} has no distinctive wording"
    return max(unique, key=len)


def test_held_out_templates_never_appear(training: TrainingData) -> None:
    registry = load_registry()
    pairs = training.epoch(1)
    sources = {_text(p.source) for p in pairs}
    for name in TASKS:
        task = registry.task(name)
        held = [t for t in task.templates if t.held_out]
        assert len(held) == 1 and held[0] not in trained_templates(task)
        signature = _signature(held[0], [t for t in task.templates if not t.held_out])
        assert not any(signature in s for s in sources), f"held-out template {held[0].id} used in training"


def test_no_validation_or_test_target_in_training(training: TrainingData, data: TaskData) -> None:
    """Every item a user's pair targets, and every history item, comes from that user's training part."""
    checked = 0
    table = data.ratings.train
    rating_train = set(zip(table["user_idx"].to_list(), table["item_idx"].to_list(), strict=True))
    for pair in training.epoch(1) + training.epoch(2):
        users = [w.index for w in pair.source if w.kind == "user"]
        if pair.family == "rating":  # its own 80/10/10 split: only training (user, item) pairs
            items = [w.index for w in pair.source if w.kind == "item"]
            assert (users[0], items[0]) in rating_train
            continue
        targets = [w.index for w in pair.target if w.kind == "item"]
        if not users or not targets:
            continue
        allowed = set(data.loo.train[users[0]].tolist())
        assert set(targets) <= allowed, f"{pair.family} pair targets a held-out item"
        if pair.family == "sequential":
            assert {w.index for w in pair.source if w.kind == "item"} <= allowed
        checked += 1
    assert checked > 100


def test_every_family_present_and_hints_name_the_target(training: TrainingData, data: TaskData) -> None:
    pairs = training.epoch(1)
    counts = training.family_counts(pairs)
    assert set(counts) == {*TASKS, "item_words", "word_item", "hint", "item_next"}
    attributes = data.dataset.item_attributes
    for pair in pairs:
        if pair.family == "hint":
            target = pair.target[0].index
            words = {w.text for w in pair.source}
            assert any(a in words for a in attributes[target])
        if pair.family == "item_words":
            item = next(w.index for w in pair.source if w.kind == "item")
            assert [w.text for w in pair.target] == [x for a in attributes[item] for x in a.split()]


def test_history_hints_carry_the_historys_most_frequent_attribute(data: TaskData) -> None:
    """The word appended is counted over the example's own history items, never the target's alone."""
    from collections import Counter

    registry = load_registry()
    training = TrainingData(data, [registry.task("sequential")], Mixture(history_hint=0.5), seed=1)
    pairs = [p for p in training.epoch(1) if p.family == "history_hint"]
    sequential = sum(1 for p in training.epoch(1) if p.family == "sequential")
    assert abs(len(pairs) - 0.5 * sequential) <= 1
    attributes = data.dataset.item_attributes
    for pair in pairs:
        items = [w.index for w in pair.source if w.kind == "item"]
        counts = Counter(a for i in items for a in dict.fromkeys(attributes[i]))
        top = max(counts.values())
        assert pair.source[-1].text in {a for a, c in counts.items() if c == top}
    # off by default: the tiny recipe's epochs are unchanged
    assert "history_hint" not in training.family_counts(
        TrainingData(data, [registry.task("sequential")], Mixture(), seed=1).epoch(1))


def test_epochs_are_seeded(training: TrainingData, data: TaskData) -> None:
    first = [(_text(p.source), _text(p.target)) for p in training.epoch(1)]
    again = TrainingData(data, training.tasks, training.mixture, seed=3).epoch(1)
    assert first == [(_text(p.source), _text(p.target)) for p in again]
    assert first != [(_text(p.source), _text(p.target)) for p in training.epoch(2)]


def test_no_word_families_without_attributes(data: TaskData) -> None:
    registry = load_registry()
    plain = TrainingData(data, [registry.task("sequential")], Mixture(hint=0, word_item=0, item_words=0), 0)
    assert set(plain.family_counts(plain.epoch(1))) == {"sequential"}


def test_batches_cover_every_pair_once_and_group_lengths() -> None:
    lengths = np.random.default_rng(0).integers(5, 80, size=1000).tolist()
    batches = batch_order(lengths, 32, seed=1)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spreads = [np.ptp(np.asarray(lengths)[b]) for b in batches]
    assert np.median(spreads) < 10  # length-bucketed


def test_collated_labels_ignore_padding(training: TrainingData) -> None:
    from paprec_cli.model import build_codec
    from paprec_cli.training.batches import encode_pairs, make_batch

    codec = build_codec(training.data.dataset, "atomic", training.texts())
    pairs = training.epoch(1)[:8]
    encoded = encode_pairs(codec, pairs)
    batch = make_batch(codec, encoded, np.arange(8))
    for row, target in enumerate(encoded.targets):
        assert batch.labels[row, : len(target)].tolist() == target
        assert (batch.labels[row, len(target) :] == IGNORE).all()
        assert target[-1] == codec.eos_id


def test_schedule_warms_up_then_decays() -> None:
    recipe = Recipe(lr=1e-3, batch_size=8, epochs=1, warmup=0.1, min_lr_ratio=0.05)
    assert lr_factor(0.0, recipe) < lr_factor(0.05, recipe) < lr_factor(0.1, recipe) == pytest.approx(1.0)
    assert lr_factor(0.5, recipe) > lr_factor(0.9, recipe) > lr_factor(1.0, recipe) == pytest.approx(0.05)
    linear = Recipe(lr=1e-3, batch_size=8, epochs=1, warmup=0.0, schedule="linear", min_lr_ratio=0.0)
    assert lr_factor(0.5, linear) == pytest.approx(0.5)


def test_tokenizer_texts_cover_every_template(training: TrainingData) -> None:
    texts = training.texts()
    for task in training.tasks:
        assert all(t.source in texts for t in task.templates)


def test_task_share_draws_a_seeded_part_of_a_task(data: TaskData) -> None:
    registry = load_registry()
    tasks = [registry.task("sequential"), registry.task("direct")]
    full = TrainingData(data, tasks, Mixture(hint=0, word_item=0, item_words=0), 0)
    part = TrainingData(data, tasks, Mixture(hint=0, word_item=0, item_words=0, task_share={"direct": 0.25}), 0)
    n_full, n_part = full.family_counts(full.epoch(1)), part.family_counts(part.epoch(1))
    assert n_part["sequential"] == n_full["sequential"]
    assert n_part["direct"] == round(0.25 * n_full["direct"])


def test_a_default_cap_stops_but_does_not_shape_the_schedule() -> None:
    """A user's --time-budget anneals the learning rate within it; a size's default cap only stops the
    run, so a run that finishes in time follows its epochs whatever the machine's speed."""
    import torch

    from paprec_cli.training.loop import Clock, Trainer

    recipe = Recipe(lr=1e-3, batch_size=8, epochs=1)
    late = Clock(offset=60.0)  # 60 s already spent of a 100 s budget
    model = torch.nn.Linear(2, 2)
    annealed = Trainer(model, recipe, "cpu", planned_steps=100, time_budget=100.0, clock=late)
    capped = Trainer(model, recipe, "cpu", planned_steps=100, time_budget=100.0, clock=late, anneal_to_budget=False)
    annealed.step = capped.step = 10
    assert annealed.progress() >= 0.6
    assert capped.progress() == pytest.approx(0.1)
    assert capped.out_of_time() is False and Trainer(
        model, recipe, "cpu", 100, time_budget=50.0, clock=late, anneal_to_budget=False
    ).out_of_time()


def test_only_the_size_default_budget_is_a_cap() -> None:
    from paprec_cli.training.setup import new_options

    common = {"dataset": "synthetic", "tasks": ["sequential"], "size": "tiny", "ids": "atomic", "name": None,
              "seed": 0, "init": None, "overrides": {}}
    default = new_options(**common, time_budget=None)
    asked = new_options(**common, time_budget=90.0)
    assert (default.time_budget, default.anneal_to_budget) == (150.0, False)
    assert (asked.time_budget, asked.anneal_to_budget) == (90.0, True)
