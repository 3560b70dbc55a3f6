"""The future-window loss (`-o future=K`) and user-id dropout (`-o user_dropout=P`): what they change in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import synthetic_task_data

from paprec_cli.data.splits import TaskData
from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home
from paprec_cli.plugins import load_registry
from paprec_cli.specs import Example
from paprec_cli.training.batches import IGNORE, encode_pairs, make_batch
from paprec_cli.training.loop import future_loss
from paprec_cli.training.mixture import Mixture, TrainingData, future_items
from paprec_cli.training.setup import new_options, parse_train_options


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TaskData:
    return synthetic_task_data(tmp_path_factory.mktemp("home"), users=40, items=120)


def _example(user: int, target: int, candidates: tuple[int, ...] | None = None) -> Example:
    return Example(user=user, argument=(), values={}, target=target, candidates=candidates)


def test_future_items_are_the_training_items_after_the_target() -> None:
    train = [np.array([], dtype=np.int64), np.array([5, 6, 7, 8]), np.array([9, 3])]
    examples = [_example(1, 6), _example(1, 7), _example(1, 8), _example(2, 3)]
    assert future_items(examples, train, 2) == [(7, 8), (8,), (), ()]
    assert future_items(examples, train, 1) == [(7,), (8,), (), ()]
    # `recent`-style tails are fine: the last two prefixes of user 1
    assert future_items([_example(1, 7), _example(1, 8)], train, 3) == [(8,), ()]


def test_examples_that_are_not_prefixes_have_no_future() -> None:
    train = [np.array([], dtype=np.int64), np.array([5, 6, 7, 8])]
    assert future_items([_example(1, 6), _example(1, 8)], train, 2) is None  # not the sequence's tail
    assert future_items([_example(1, 8, candidates=(8, 2, 3))], train, 2) is None  # direct: a candidate list


def test_sequential_pairs_carry_their_future_and_direct_pairs_none(data: TaskData) -> None:
    registry = load_registry()
    training = TrainingData(data, [registry.task("sequential"), registry.task("direct")],
                            Mixture(hint=0, word_item=0, item_words=0, future=3), seed=1)
    checked = 0
    for pair in training.epoch(1):
        if pair.family == "direct":
            assert pair.future == ()
        if pair.family != "sequential":
            continue
        user = next(w.index for w in pair.source if w.kind == "user")
        history = [w.index for w in pair.source if w.kind == "item"]
        target = pair.target[0].index
        sequence = data.loo.train[user].tolist()
        # the prompt's history ends right before the target; the window starts right after it
        position = len(sequence) - 1 - sequence[::-1].index(target) if sequence.count(target) == 1 else None
        if position is None:
            continue
        assert sequence[position - len(history) : position] == history
        assert [w.index for w in pair.future] == sequence[position + 1 : position + 4]
        assert set(sequence) >= {w.index for w in pair.future}  # never a validation or test item
        checked += 1
    assert checked > 50


def test_future_windows_reach_the_batch_padded(data: TaskData) -> None:
    from paprec_cli.model import build_codec

    registry = load_registry()
    training = TrainingData(data, [registry.task("sequential")],
                            Mixture(hint=0, word_item=0, item_words=0, future=2), seed=1)
    codec = build_codec(data.dataset, "atomic", training.texts())
    pairs = training.epoch(1)[:16]
    batch = make_batch(codec, encode_pairs(codec, pairs), np.arange(16))
    assert batch.future is not None
    for row, pair in enumerate(pairs):
        ids = [t for t in batch.future[row].tolist() if t != IGNORE]
        assert ids == [codec.encode_batch([(w,)])[0].token_ids[0] for w in pair.future]


def test_future_loss_is_the_mean_negative_log_probability_of_the_window() -> None:
    logits = torch.randn(3, 10, requires_grad=True)
    future = torch.tensor([[2, 5], [7, IGNORE], [IGNORE, IGNORE]])
    loss = future_loss(logits, future)
    log_p = logits.log_softmax(-1)
    assert torch.allclose(loss[0], -(log_p[0, 2] + log_p[0, 5]) / 2)
    assert torch.allclose(loss[1], -log_p[1, 7])
    assert loss[2] == 0
    loss.sum().backward()  # and it trains the logits
    assert logits.grad is not None and logits.grad[2].abs().sum() == 0


def test_future_setting_parses_and_needs_atomic_ids() -> None:
    settings = parse_train_options(["future=5", "future_weight=0.5"])
    assert settings == {"future": 5, "future_weight": 0.5}
    options = new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="atomic", name=None, seed=0,
                          time_budget=None, init=None, overrides={}, settings=settings)
    assert options.mixture.future == 5 and options.recipe.future_weight == 0.5
    with pytest.raises(PaprecError, match="-o future=5: needs --ids atomic"):
        new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="subword", name=None, seed=0,
                    time_budget=None, init=None, overrides={}, settings=settings)
    with pytest.raises(PaprecError, match="out of range"):
        parse_train_options(["future=-1"])


def test_drop_users_replaces_only_user_tokens_of_the_drawn_rows() -> None:
    from paprec_cli.training.loop import drop_users

    ids = torch.tensor([[3, 10, 4, 20, 21], [11, 4, 22, 0, 0], [12, 5, 23, 24, 0]])  # users 10..12, items 20..
    every = drop_users(ids, (10, 13), 1, 1.0, torch.Generator().manual_seed(0))
    assert every.tolist() == [[3, 1, 4, 20, 21], [1, 4, 22, 0, 0], [1, 5, 23, 24, 0]]
    assert drop_users(ids, (10, 13), 1, 0.0, torch.Generator().manual_seed(0)).equal(ids)
    assert ids[0, 1] == 10  # the input is not changed in place
    many = torch.full((4000, 2), 10)
    share = float((drop_users(many, (10, 13), 1, 0.3, torch.Generator().manual_seed(5))[:, 0] == 1).float().mean())
    assert abs(share - 0.3) < 0.03
    # the same generator seed draws the same rows (a resumed run masks what an uninterrupted one did)
    a = drop_users(many, (10, 13), 1, 0.3, torch.Generator().manual_seed(7))
    assert a.equal(drop_users(many, (10, 13), 1, 0.3, torch.Generator().manual_seed(7)))


def test_user_dropout_needs_atomic_ids_and_a_share() -> None:
    options = new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="atomic", name=None, seed=0,
                          time_budget=None, init=None, overrides={}, settings=parse_train_options(["user_dropout=0.5"]))
    assert options.recipe.user_dropout == 0.5
    with pytest.raises(PaprecError, match="-o user_dropout=0.5: needs --ids atomic"):
        new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="subword", name=None, seed=0,
                    time_budget=None, init=None, overrides={}, settings={"user_dropout": 0.5})
    with pytest.raises(PaprecError, match="-o user_dropout: invalid value"):
        new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="atomic", name=None, seed=0,
                    time_budget=None, init=None, overrides={}, settings={"user_dropout": 1.5})


def test_a_dataset_default_user_dropout_gives_way_to_subword_ids() -> None:
    """ML-100K tiny's recipe sets user_dropout 0.5; `--ids subword` without -o must still train (at 0)."""
    common = {"tasks": ["sequential"], "size": "tiny", "name": None, "seed": 0, "time_budget": None, "init": None,
              "overrides": {}}
    assert new_options(dataset="ml-100k", ids="atomic", **common).recipe.user_dropout == 0.5
    assert new_options(dataset="ml-100k", ids="subword", **common).recipe.user_dropout == 0.0
    with pytest.raises(PaprecError, match="needs --ids atomic"):
        new_options(dataset="ml-100k", ids="subword", settings={"user_dropout": 0.5}, **common)


@pytest.mark.parametrize("setting", ["user_dropout=0.9", "future_weight=4", "future=5"])
def test_loss_and_input_settings_are_refused_on_resume(setting: str) -> None:
    from pathlib import Path

    from paprec_cli.training.setup import cli_options

    with pytest.raises(PaprecError, match=f"-o {setting.split('=')[0]} applies to a fresh run only"):
        cli_options(Home.resolve(Path("/nonexistent-home")), dataset=None, tasks=None, size=None, ids=None,
                    name=None, seed=0, time_budget=None, init=None, resume="some-run", overrides={},
                    settings=[setting])
