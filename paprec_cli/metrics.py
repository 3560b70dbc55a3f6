"""Recommendation metrics: ranking (HR@k, NDCG@k), rating (RMSE, MAE), and a paired bootstrap.

Every function accepts numpy arrays, torch tensors or nested sequences and computes in numpy (float64),
so the task plugins, the search core and `paprec eval` all share one implementation.

Conventions (documented because they change numbers):
- Ranking uses one relevant item per example (binary relevance). With the target at 1-based rank
  `r <= k`, HR@k = 1 and NDCG@k = 1 / log2(r + 1); otherwise both are 0. The ideal DCG is 1.
- Ranked lists hold item indices (1-based); 0 is padding and never matches a target.
- Score-based helpers treat NaN and +-inf as the *worst* score, and a score tied with the target's counts
  *against* the target (pessimistic), so a scorer that returns a constant, or garbage, gets no hits.
- Rating predictions are never clipped: a model that predicts outside the rating range is measured as it
  is (paprec's rating prediction is an expectation over the rating tokens, in range by construction).
  NaN predictions give NaN RMSE/MAE rather than a flattering number.
- Means over zero examples are NaN (undefined), not 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Ranking metric keys, in report order.
RANKING_KEYS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10")
#: Rating metric keys, in report order.
RATING_KEYS = ("RMSE", "MAE")

ArrayLike = Any  # numpy array, torch tensor, or nested sequences of numbers


def as_numpy(values: ArrayLike, dtype: npt.DTypeLike | None = None) -> np.ndarray:
    """A numpy view/copy of `values` (torch tensors are detached and moved to the CPU)."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu()
        if dtype is None and str(values.dtype) == "torch.bfloat16":
            values = values.float()
        values = values.numpy()
    return np.asarray(values, dtype=dtype)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


# ---------------------------------------------------------------------------------------------------
# Ranked lists
# ---------------------------------------------------------------------------------------------------


def _ranked_and_targets(ranked: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ranked_np = as_numpy(ranked)
    targets_np = as_numpy(targets).reshape(-1)
    if ranked_np.ndim == 1 and ranked_np.size == 0:
        ranked_np = ranked_np.reshape(0, 0)
    if ranked_np.ndim != 2:
        raise ValueError(f"ranked items must be a 2-d [N, K] array, got shape {ranked_np.shape}")
    if ranked_np.shape[0] != targets_np.shape[0]:
        raise ValueError(f"{ranked_np.shape[0]} ranked lists but {targets_np.shape[0]} targets")
    return ranked_np.astype(np.int64, copy=False), targets_np.astype(np.int64, copy=False)


def target_ranks(ranked: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """1-based position of each target in its ranked list ([N, K] items, best first); 0 when absent.

    If a list repeats the target, its first (best) position counts.
    """
    ranked_np, targets_np = _ranked_and_targets(ranked, targets)
    match = ranked_np == targets_np[:, None]
    found = match.any(axis=1)
    first = match.argmax(axis=1) + 1
    return np.where(found & (targets_np > 0), first, 0).astype(np.int64)


def _check_k(ranked: np.ndarray, k: int) -> None:
    """k must be positive. A list shorter than k is read whole: rankers list every candidate, so a shorter
    list means the catalogue has fewer than k items, and HR@k / NDCG@k with k >= the number of items is
    "the target is in the list" / its gain at its rank (a dataset of 8 items has a defined HR@10)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def hits_at_k(ranked: ArrayLike, targets: ArrayLike, k: int) -> np.ndarray:
    """Per-example HR@k (1.0 when the target is in the top k, else 0.0)."""
    ranked_np, targets_np = _ranked_and_targets(ranked, targets)
    _check_k(ranked_np, k)
    ranks = target_ranks(ranked_np[:, :k], targets_np)
    return (ranks > 0).astype(np.float64)


def ndcg_per_example(ranked: ArrayLike, targets: ArrayLike, k: int) -> np.ndarray:
    """Per-example NDCG@k with one relevant item: 1/log2(rank + 1) if rank <= k, else 0."""
    ranked_np, targets_np = _ranked_and_targets(ranked, targets)
    _check_k(ranked_np, k)
    ranks = target_ranks(ranked_np[:, :k], targets_np)
    gains = np.zeros(ranks.shape, dtype=np.float64)
    hit = ranks > 0
    gains[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    return gains


def hit_rate_at_k(ranked: ArrayLike, targets: ArrayLike, k: int) -> float:
    """Mean HR@k over examples (NaN for none)."""
    return _mean(hits_at_k(ranked, targets, k))


def ndcg_at_k(ranked: ArrayLike, targets: ArrayLike, k: int) -> float:
    """Mean NDCG@k over examples (NaN for none)."""
    return _mean(ndcg_per_example(ranked, targets, k))


def ranking_metrics(ranked: ArrayLike, targets: ArrayLike) -> dict[str, float]:
    """HR@1/5/10 and NDCG@5/10 from ranked lists [N, K] (best first; K < 10 only when there are fewer than
    10 items: the whole list then counts, see `_check_k`) and targets [N]."""
    ranked_np, targets_np = _ranked_and_targets(ranked, targets)
    _check_k(ranked_np, 10)
    return {
        "HR@1": hit_rate_at_k(ranked_np, targets_np, 1),
        "HR@5": hit_rate_at_k(ranked_np, targets_np, 5),
        "HR@10": hit_rate_at_k(ranked_np, targets_np, 10),
        "NDCG@5": ndcg_at_k(ranked_np, targets_np, 5),
        "NDCG@10": ndcg_at_k(ranked_np, targets_np, 10),
    }


def ranking_per_example(ranked: ArrayLike, targets: ArrayLike) -> dict[str, np.ndarray]:
    """Per-example HR@1/5/10 and NDCG@5/10 ([N] float64 each), whose means are `ranking_metrics`."""
    ranked_np, targets_np = _ranked_and_targets(ranked, targets)
    out: dict[str, np.ndarray] = {}
    for key in RANKING_KEYS:
        name, k = key.split("@")
        fn = hits_at_k if name == "HR" else ndcg_per_example
        out[key] = np.asarray(fn(ranked_np, targets_np, int(k)), dtype=np.float64)
    return out


def ndcg_hr_at_5_per_example(ranked: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """The search's ranking surrogate per example: NDCG@5 + HR@5 (in [0, 2], higher is better)."""
    return ndcg_per_example(ranked, targets, 5) + hits_at_k(ranked, targets, 5)


# ---------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------


def _clean_scores(scores: ArrayLike) -> np.ndarray:
    """Scores as float64 [N, C] with every non-finite value replaced by -inf (the worst)."""
    array = as_numpy(scores).astype(np.float64)
    if array.ndim != 2:
        raise ValueError(f"scores must be a 2-d [N, C] array, got shape {array.shape}")
    return np.where(np.isfinite(array), array, -np.inf)


def rank_of_target(scores: ArrayLike, target_index: ArrayLike) -> np.ndarray:
    """1-based pessimistic rank of each row's target among its C scores (higher score = better).

    rank = 1 + #(other scores > target) + #(other scores == target): ties count against the target.
    A target whose score is NaN or +-inf gets rank C + 1, below every candidate, so it is never a hit;
    other non-finite scores rank below every finite one.
    """
    raw = as_numpy(scores).astype(np.float64)
    clean = _clean_scores(raw)
    index = as_numpy(target_index).astype(np.int64).reshape(-1)
    if index.shape[0] != clean.shape[0]:
        raise ValueError(f"{clean.shape[0]} score rows but {index.shape[0]} target indices")
    rows = np.arange(clean.shape[0])
    target = clean[rows, index]
    others = np.ones_like(clean, dtype=bool)
    others[rows, index] = False
    ahead = ((clean >= target[:, None]) & others).sum(axis=1)
    ranks = 1 + ahead
    ranks[~np.isfinite(raw[rows, index])] = clean.shape[1] + 1
    return ranks.astype(np.int64)


def topk_from_scores(
    scores: ArrayLike,
    k: int,
    items: ArrayLike | None = None,
    target_index: ArrayLike | None = None,
) -> np.ndarray:
    """The top-k of each row of `scores` [N, C] as item indices [N, k], best first.

    `items` maps columns to item indices ([C] shared or [N, C] per row, e.g. direct candidates); without
    it the 0-based column numbers are returned. Non-finite scores never enter a top-k: their slots become
    padding (0 with `items`, an index that is never a target; -1 for column numbers). Ties are broken by
    column order, except that with `target_index` [N] the target loses every tie (pessimistic, matching
    `rank_of_target`), so a constant scorer gets no hits. Rows with fewer than k columns are padded.
    """
    raw = as_numpy(scores).astype(np.float64)
    clean = _clean_scores(raw)
    n, c = clean.shape
    finite = np.isfinite(raw)
    is_target = np.zeros((n, c), dtype=bool)
    if target_index is not None:
        index = as_numpy(target_index).astype(np.int64).reshape(-1)
        is_target[np.arange(n), index] = True
    columns = np.broadcast_to(np.arange(c), (n, c))
    # lexsort: last key is primary. Higher score first, then non-target first, then column order.
    order = np.lexsort((columns, is_target, -clean), axis=1)[:, :k]
    if items is None:
        mapped = order.astype(np.int64)
    else:
        item_array = as_numpy(items).astype(np.int64)
        item_array = np.broadcast_to(item_array, (n, c)) if item_array.ndim == 1 else item_array
        mapped = np.take_along_axis(item_array, order, axis=1)
    kept = np.take_along_axis(finite, order, axis=1)
    pad = -1 if items is None else 0
    out = np.where(kept, mapped, pad)
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=pad)
    return out.astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# Ratings
# ---------------------------------------------------------------------------------------------------


def _pred_true(pred: ArrayLike, true: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = as_numpy(pred).astype(np.float64).reshape(-1)
    t = as_numpy(true).astype(np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"{p.shape[0]} predictions but {t.shape[0]} true ratings")
    return p, t


def rmse(pred: ArrayLike, true: ArrayLike) -> float:
    """Root mean squared error; no clipping (see module docstring)."""
    p, t = _pred_true(pred, true)
    return math.sqrt(_mean((p - t) ** 2)) if p.size else math.nan


def mae(pred: ArrayLike, true: ArrayLike) -> float:
    """Mean absolute error; no clipping."""
    p, t = _pred_true(pred, true)
    return _mean(np.abs(p - t))


def rating_metrics(pred: ArrayLike, true: ArrayLike) -> dict[str, float]:
    """{"RMSE", "MAE"} of predicted vs true ratings."""
    return {"RMSE": rmse(pred, true), "MAE": mae(pred, true)}


def rating_errors_per_example(pred: ArrayLike, true: ArrayLike) -> dict[str, np.ndarray]:
    """Per-example {"squared_error", "abs_error"} ([N] float64 each; lower is better): the mean of the
    first is MSE (RMSE is its square root), the mean of the second is MAE. No clipping."""
    p, t = _pred_true(pred, true)
    error = p - t
    return {"squared_error": error**2, "abs_error": np.abs(error)}


def neg_squared_error_per_example(pred: ArrayLike, true: ArrayLike) -> np.ndarray:
    """The rating surrogate per example: -(pred - true)^2; a non-finite prediction scores -inf (worst)."""
    p, t = _pred_true(pred, true)
    out = -((p - t) ** 2)
    return np.where(np.isfinite(out), out, -np.inf)


# ---------------------------------------------------------------------------------------------------
# Paired bootstrap
# ---------------------------------------------------------------------------------------------------


def paired_bootstrap(
    a: ArrayLike | Sequence[float],
    b: ArrayLike | Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Mean paired difference a - b (e.g. per-user metric, automatic vs manual) with a percentile
    bootstrap (1 - alpha) confidence interval, so that `paprec eval` can tell a gain from noise.

    Users are resampled with replacement `n_boot` times (seeded). Pairs where either value is not finite
    are dropped; `n` is the number of pairs used. With no pairs every value is NaN.
    """
    x = as_numpy(a).astype(np.float64).reshape(-1)
    y = as_numpy(b).astype(np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"paired bootstrap needs equal lengths, got {x.shape[0]} and {y.shape[0]}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    keep = np.isfinite(x) & np.isfinite(y)
    diff = x[keep] - y[keep]
    n = int(diff.size)
    if n == 0:
        return {"mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, 4_000_000 // n)  # bound memory: chunk x n indices at a time
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        draws = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[draws].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"mean_diff": float(diff.mean()), "ci_low": float(low), "ci_high": float(high), "n": n}
