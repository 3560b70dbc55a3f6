"""Metric helpers: hand-computed cases, agreement with torchmetrics, and garbage scores never hitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paprec_cli import metrics as M


def test_hand_computed_ranking() -> None:
    ranked = np.array(
        [
            [7, 3, 9, 1, 2, 4, 5, 6, 8, 10],  # target 7 at rank 1
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # target 3 at rank 3
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # target 8 at rank 8
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # target 42 absent
        ]
    )
    targets = np.array([7, 3, 8, 42])
    assert M.target_ranks(ranked, targets).tolist() == [1, 3, 8, 0]
    out = M.ranking_metrics(ranked, targets)
    assert out["HR@1"] == pytest.approx(1 / 4)
    assert out["HR@5"] == pytest.approx(2 / 4)
    assert out["HR@10"] == pytest.approx(3 / 4)
    assert out["NDCG@5"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert out["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(9)) / 4)
    assert list(out) == list(M.RANKING_KEYS)
    per = M.ndcg_hr_at_5_per_example(ranked, targets)
    assert per.tolist() == pytest.approx([2.0, 1.5, 0.0, 0.0])


def test_torch_inputs_and_errors() -> None:
    ranked = torch.tensor([[2, 1, 3, 4, 5]])
    assert M.hit_rate_at_k(ranked, torch.tensor([1]), 1) == 0.0
    assert M.hit_rate_at_k(ranked, torch.tensor([1]), 2) == 1.0
    assert M.ndcg_at_k(ranked, [1], 5) == pytest.approx(1 / math.log2(3))
    # fewer than 10 items (a list of every item is shorter than 10): @10 reads the whole list, "in the list"
    short = M.ranking_metrics(ranked, [1])
    assert short["HR@10"] == 1.0 and short["HR@5"] == 1.0 and short["HR@1"] == 0.0
    assert short["NDCG@10"] == short["NDCG@5"] == pytest.approx(1 / math.log2(3))
    assert M.ranking_metrics(ranked, [9])["HR@10"] == 0.0  # not in the list: a miss at every cutoff
    assert M.ranking_per_example(ranked, [1])["HR@10"].tolist() == [1.0]
    with pytest.raises(ValueError, match="k must be >= 1"):
        M.hit_rate_at_k(ranked, [1], 0)
    with pytest.raises(ValueError, match="targets"):
        M.hit_rate_at_k(ranked, [1, 2], 1)
    assert math.isnan(M.hit_rate_at_k(np.zeros((0, 10), dtype=int), [], 5))


def test_padding_zero_never_matches() -> None:
    assert M.target_ranks([[0, 0, 5]], [0]).tolist() == [0]


def test_agrees_with_torchmetrics() -> None:
    tm = pytest.importorskip("torchmetrics.functional.retrieval")
    rng = np.random.default_rng(0)
    n, c = 200, 30
    scores = rng.normal(size=(n, c))
    target_index = rng.integers(0, c, size=n)
    ranked = M.topk_from_scores(scores, c, items=np.arange(1, c + 1))  # item c+1 is column c, best first
    for k in (1, 5, 10):
        hr = M.hit_rate_at_k(ranked, target_index + 1, k)
        nd = M.ndcg_at_k(ranked, target_index + 1, k)
        ref_hr, ref_nd = [], []
        for row in range(n):
            preds = torch.tensor(scores[row])
            rel = torch.zeros(c, dtype=torch.long)
            rel[target_index[row]] = 1
            ref_hr.append(float(tm.retrieval_hit_rate(preds, rel, top_k=k)))
            ref_nd.append(float(tm.retrieval_normalized_dcg(preds, rel, top_k=k)))
        assert hr == pytest.approx(np.mean(ref_hr), abs=1e-9)
        assert nd == pytest.approx(np.mean(ref_nd), abs=1e-6)
    # rank_of_target agrees with the position in the ranked list when there are no ties
    ranks = M.rank_of_target(scores, target_index)
    assert (ranks == M.target_ranks(ranked, target_index + 1)).all()


def test_non_finite_scores_never_hit() -> None:
    c = 20
    bad = [np.nan, np.inf, -np.inf]
    for value in bad:
        scores = np.random.default_rng(1).normal(size=(3, c))
        scores[:, 4] = value  # the target's score is garbage
        ranks = M.rank_of_target(scores, [4, 4, 4])
        assert (ranks == c + 1).all()
        top = M.topk_from_scores(scores, 10, items=np.arange(1, c + 1), target_index=[4, 4, 4])
        assert M.hit_rate_at_k(top, [5, 5, 5], 10) == 0.0
    # all scores garbage: nothing is a hit, the top-k is all padding
    scores = np.full((2, c), np.nan)
    scores[1] = np.inf
    assert (M.rank_of_target(scores, [0, 3]) == c + 1).all()
    top = M.topk_from_scores(scores, 10, items=np.arange(1, c + 1))
    assert (top == 0).all()
    # a finite target beats non-finite competitors (they are the worst)
    scores = np.array([[np.nan, np.inf, 0.5, -np.inf]])
    assert M.rank_of_target(scores, [2]).tolist() == [1]
    assert M.topk_from_scores(scores, 2, items=[10, 11, 12, 13]).tolist() == [[12, 0]]


def test_ties_count_against_target() -> None:
    scores = np.zeros((4, 50))  # a constant scorer
    target = np.array([0, 7, 25, 49])
    assert (M.rank_of_target(scores, target) == 50).all()
    top = M.topk_from_scores(scores, 10, target_index=target)
    assert M.hit_rate_at_k(top, target, 10) == 0.0
    scores = np.array([[1.0, 2.0, 2.0, 0.0]])
    assert M.rank_of_target(scores, [1]).tolist() == [2]
    assert M.topk_from_scores(scores, 4, target_index=[1]).tolist() == [[2, 1, 0, 3]]


def test_topk_with_per_row_items_and_padding() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5], [3.0, 2.0, 1.0]])
    items = torch.tensor([[10, 20, 30], [40, 50, 60]])
    assert M.topk_from_scores(scores, 2, items=items).tolist() == [[20, 30], [40, 50]]
    assert M.topk_from_scores(scores, 5, items=items)[:, 3:].tolist() == [[0, 0], [0, 0]]
    assert M.topk_from_scores([[np.nan, 1.0]], 3).tolist() == [[1, -1, -1]]


def test_rating_metrics() -> None:
    pred = np.array([4.0, 2.5, 5.0, 1.0])
    true = np.array([5.0, 2.5, 3.0, 1.0])
    out = M.rating_metrics(pred, true)
    assert out["RMSE"] == pytest.approx(math.sqrt((1 + 0 + 4 + 0) / 4))
    assert out["MAE"] == pytest.approx((1 + 0 + 2 + 0) / 4)
    assert list(out) == list(M.RATING_KEYS)
    # no silent clipping: an out-of-range prediction is measured as is
    assert M.mae([7.0], [5.0]) == pytest.approx(2.0)
    assert math.isnan(M.rmse([np.nan], [3.0]))
    assert M.neg_squared_error_per_example([4.0, np.nan], [5.0, 3.0]).tolist() == [-1.0, -np.inf]
    assert M.rating_metrics(torch.tensor([3.0]), torch.tensor([3.0])) == {"RMSE": 0.0, "MAE": 0.0}


def test_paired_bootstrap() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(500)
    better = base + 0.1 + rng.normal(0, 0.01, 500)
    out = M.paired_bootstrap(better, base, n_boot=500, seed=3)
    assert out["n"] == 500
    assert out["ci_low"] <= out["mean_diff"] <= out["ci_high"]
    assert out["ci_low"] > 0.09 and out["ci_high"] < 0.11
    assert out == M.paired_bootstrap(better, base, n_boot=500, seed=3)  # seeded
    noise = M.paired_bootstrap(rng.normal(size=400), rng.normal(size=400), seed=1)
    assert noise["ci_low"] < 0 < noise["ci_high"]
    with_nan = M.paired_bootstrap([1.0, np.nan, 3.0], [0.0, 0.0, 1.0])
    assert with_nan["n"] == 2 and with_nan["mean_diff"] == pytest.approx(1.5)
    empty = M.paired_bootstrap([], [])
    assert empty["n"] == 0 and math.isnan(empty["mean_diff"])
    with pytest.raises(ValueError, match="equal lengths"):
        M.paired_bootstrap([1.0], [1.0, 2.0])
