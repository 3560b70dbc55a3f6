"""Popularity and item-kNN on hand-made interaction data, and on a small synthetic dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paprec_cli.baselines import ItemKNN, popularity_scores, rank_candidates, top_items

TRAIN = [
    np.array([], dtype=np.int64),  # user 0 is padding
    np.array([1, 2]),
    np.array([1, 2, 3]),
    np.array([4, 5]),
    np.array([4, 5, 3]),
    np.array([3, 6]),
]
N_ITEMS = 7  # item 7 never appears in training


def test_popularity_ranks_the_most_common_training_item_first() -> None:
    ranked = top_items(popularity_scores(TRAIN, N_ITEMS)[None], k=5)[0].tolist()
    assert ranked[0] == 3  # three training interactions
    assert ranked[1:4] == [1, 2, 4]  # two each: ties go to the lower index
    assert 0 not in ranked


def test_popularity_counts_repeated_items() -> None:
    scores = popularity_scores([np.array([]), np.array([2, 2, 2]), np.array([1, 1])], 2)
    assert top_items(scores[None], k=2)[0].tolist() == [2, 1]


def test_item_knn_finds_an_obvious_co_occurrence() -> None:
    knn = ItemKNN(TRAIN, N_ITEMS)
    scores = knn.scores([np.array([4])])
    assert top_items(scores, k=1)[0].tolist() == [5]  # 4 and 5 always appear together
    # cosine: |U_4 & U_5| / sqrt(|U_4||U_5|) = 2 / 2
    assert scores[0, 5].item() == pytest.approx(1.0, abs=1e-5)
    # the history item itself gets no self-similarity (only the popularity tie-break)
    assert scores[0, 4].item() < 1e-3


def test_item_knn_weights_recent_items_more() -> None:
    knn = ItemKNN(TRAIN, N_ITEMS, window=2, decay=0.5)
    scores = knn.scores([np.array([1, 4])])  # 4 is the most recent
    assert scores[0, 5] > scores[0, 2]  # neighbour of 4 (weight 1) beats neighbour of 1 (weight 0.5)


def test_item_knn_matches_a_dense_reference() -> None:
    rng = np.random.default_rng(0)
    train = [np.array([], dtype=np.int64)] + [rng.integers(1, 30, size=rng.integers(2, 8)) for _ in range(50)]
    knn = ItemKNN(train, 30, window=3, decay=0.7)
    x = np.zeros((len(train), 31))
    for u, seq in enumerate(train):
        x[u, seq] = 1
    co = x.T @ x
    norm = np.sqrt(np.diag(co))
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = np.nan_to_num(co / np.outer(norm, norm))
    np.fill_diagonal(sim, 0)
    history = train[7]
    expected = np.zeros(31)
    for age, item in enumerate(history[-3:][::-1]):
        expected += 0.7**age * sim[item]
    got = knn.scores([history])[0].numpy()
    assert np.allclose(got[1:], expected[1:], atol=1e-4)


def test_rank_candidates_keeps_only_candidates() -> None:
    scores = torch.tensor([[float("-inf"), 0.1, 0.9, 0.5, 0.7]])
    ranked = rank_candidates(scores, torch.tensor([[1, 3, 4]]), k=3)
    assert ranked.tolist() == [[4, 3, 1]]


def test_baseline_results_on_synthetic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from paprec_cli.baselines import baseline_results
    from paprec_cli.data.splits import TaskData
    from paprec_cli.data.store import import_dataset, load_dataset
    from paprec_cli.paths import Home
    from paprec_cli.plugins import load_registry
    from paprec_cli.specs import ImportOptions

    registry = load_registry()
    home = Home.resolve(tmp_path)
    options = ImportOptions(extra={"users": "60", "items": "150", "categories": "4"})
    import_dataset(registry.dataset("synthetic"), None, home, options=options)
    data = TaskData(load_dataset(home, "synthetic"), seed=0)
    results = baseline_results(data, ["sequential", "direct", "rating"], "test", registry)
    assert set(results) == {"popularity", "item_knn"}
    for baseline in results.values():
        assert set(baseline) == {"sequential", "direct"}  # rating has no ranking baseline
        for metrics in baseline.values():
            assert 0.0 <= metrics["HR@1"] <= metrics["HR@5"] <= metrics["HR@10"] <= 1.0
