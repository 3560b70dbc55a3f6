"""Co-occurrence initialisation of item and user rows (`paprec_cli.training.item_init`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paprec_cli.errors import PaprecError
from paprec_cli.training.item_init import apply_cooccurrence_init, cooccurrence_rows
from paprec_cli.training.setup import new_options


def _two_groups(n_users: int = 40) -> list[np.ndarray]:
    """Users 1..n/2 buy items 1-4, the others items 5-8; item 9 has no user (train[0] is unused)."""
    train = [np.zeros(0, dtype=np.int64)]
    for user in range(1, n_users + 1):
        group = (1, 2, 3, 4) if user <= n_users // 2 else (5, 6, 7, 8)
        rng = np.random.default_rng(user)
        train.append(np.asarray(rng.choice(group, size=3, replace=False), dtype=np.int64))
    return train


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_items_bought_together_get_similar_rows() -> None:
    items, users, has_users, has_items = cooccurrence_rows(_two_groups(), n_users=40, n_items=9, dim=4)
    assert items.shape == (9, 4) and users.shape == (40, 4)
    assert has_users.tolist() == [True] * 8 + [False] and bool(has_items.all())
    same = _cos(items[0], items[1])
    other = _cos(items[0], items[5])
    assert same > 0.5 and abs(other) < 0.2, (same, other)
    # A user's row is the mean of its items' rows, so it points at its own group.
    assert _cos(users[0], items[0]) > _cos(users[0], items[5])


def test_rows_are_deterministic_for_a_seed() -> None:
    first = cooccurrence_rows(_two_groups(), 40, 9, 4, seed=3)[0]
    again = cooccurrence_rows(_two_groups(), 40, 9, 4, seed=3)[0]
    assert torch.equal(first, again)


def test_apply_rescales_to_the_embedding_and_keeps_rows_without_data() -> None:
    torch.manual_seed(0)
    n_text, n_users, n_items, dim = 30, 40, 9, 8
    embedding = torch.nn.Parameter(torch.randn(n_text + n_users + n_items, dim) * 2.0)
    before = embedding.detach().clone()
    written = apply_cooccurrence_init(embedding, n_text, n_text + n_users, _two_groups(n_users), n_users, n_items)
    assert written == 8 + n_users
    after = embedding.detach()
    assert torch.equal(after[:n_text], before[:n_text])  # text rows untouched
    assert torch.equal(after[-1], before[-1])  # item 9 has no training user: keeps its random row
    item_rows = after[n_text + n_users : n_text + n_users + 8]
    assert float(item_rows.std()) == pytest.approx(float(before[:n_text].std()), rel=0.05)
    assert not torch.equal(item_rows, before[n_text + n_users : n_text + n_users + 8])


def test_explicit_cooccurrence_needs_atomic_ids_and_a_fresh_model() -> None:
    common = {"dataset": "synthetic", "tasks": [], "size": "tiny", "name": None, "seed": 0, "time_budget": None}
    with pytest.raises(PaprecError, match="--item-init"):
        new_options(**common, ids="subword", init=None, overrides={"item_init": "cooccurrence"})
    with pytest.raises(PaprecError, match="--init"):
        new_options(**common, ids="atomic", init="some-model", overrides={"item_init": "cooccurrence"})
    # tiny's default cannot apply to subword ids: recorded as what happened ("random"), not as asked.
    assert new_options(**common, ids="subword", init=None, overrides={}).recipe.item_init == "random"
    assert new_options(**common, ids="atomic", init=None, overrides={}).recipe.item_init == "cooccurrence"


def test_items_only_keeps_every_user_row() -> None:
    torch.manual_seed(0)
    n_text, n_users, n_items, dim = 30, 40, 9, 8
    embedding = torch.nn.Parameter(torch.randn(n_text + n_users + n_items, dim))
    before = embedding.detach().clone()
    written = apply_cooccurrence_init(embedding, n_text, n_text + n_users, _two_groups(n_users), n_users, n_items,
                                      users=False)  # fmt: skip
    assert written == 8
    after = embedding.detach()
    assert torch.equal(after[: n_text + n_users], before[: n_text + n_users])
    assert not torch.equal(after[n_text + n_users : -1], before[n_text + n_users : -1])
