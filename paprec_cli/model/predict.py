"""Predictions for a task's examples under given prompts, and the task's metrics on them.

Ranking: examples with `candidates` (direct task) are scored candidate by candidate and the
candidates sorted by score; the others are ranked over all items. Rating: the expected rating
(see `Recommender.predict_rating`). Prompts are sorted by length so batches carry little padding;
results come back in the examples' order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from paprec_cli.model.batching import Batch, host_to_device
from paprec_cli.model.inference import Recommender
from paprec_cli.model.rows import PromptRows, Prompts, as_rows
from paprec_cli.specs import Example, TaskSpec

TOP_K = 10


def prompt_lengths(prompts: Prompts) -> np.ndarray:
    if isinstance(prompts, PromptRows):
        return prompts.lengths()
    return np.fromiter((len(p) for p in prompts), dtype=np.int64, count=len(prompts))


def batch_indices(prompts: Prompts, batch_size: int) -> list[np.ndarray]:
    """Batches of prompt indices, sorted by length (little padding); sharded evaluation reuses the same cut."""
    order = np.argsort(prompt_lengths(prompts), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def predictions(
    recommender: Recommender,
    task: TaskSpec,
    examples: Sequence[Example],
    prompts: Prompts,
    batch_size: int = 256,
    k: int = TOP_K,
    num_beams: int | None = None,
) -> np.ndarray:
    """[N, k] ranked item indices (ranking; 0 pads a candidate list shorter than k) or [N] ratings.
    `num_beams`: the constrained beam width of a ranking over all items with sub-word ids (default k)."""
    if len(examples) != len(prompts):
        raise ValueError(f"{len(examples)} examples but {len(prompts)} prompts")
    rows = as_rows(prompts, recommender.codec)
    batches = batch_indices(rows, batch_size)
    if task.kind == "rating":
        ratings = [recommender.predict_rating(rows.collate(idx, recommender.device)) for idx in batches]
        return _gather(batches, ratings, np.zeros(len(examples), dtype=np.float64))
    # Results stay on the device until every batch has been queued: reading one back per batch would make
    # the host wait for the GPU before it can collate and launch the next batch.
    done: list[np.ndarray] = []
    tops: list[torch.Tensor] = []
    for idx in batches:
        batch = rows.collate(idx, recommender.device)
        on = batch.input_ids.device
        has_cands = np.fromiter((examples[i].candidates is not None for i in idx), dtype=bool, count=len(idx))
        for part in (~has_cands, has_cands):
            if not part.any():
                continue
            sub = batch if part.all() else batch.select(host_to_device(torch.from_numpy(np.flatnonzero(part)), on))
            if part is has_cands:
                top = _rank_candidates(recommender, sub, [examples[i] for i in idx[part]], k)
            else:
                top = recommender.rank_all(sub, k, num_beams)  # fewer than k columns if n_items < k
            done.append(idx[part])
            tops.append(top)
    return _gather(done, tops, np.zeros((len(examples), k), dtype=np.int64))


def _gather(index: Sequence[np.ndarray], parts: Sequence[torch.Tensor], out: np.ndarray) -> np.ndarray:
    """Scatter per-batch device results into `out` (rows `index[i]` <- `parts[i]`), one read-back per width."""
    by_width: dict[tuple[int, ...], list[int]] = {}
    for i, part in enumerate(parts):
        by_width.setdefault(tuple(part.shape[1:]), []).append(i)
    for members in by_width.values():
        values = torch.cat([parts[i].float() if out.dtype.kind == "f" else parts[i] for i in members]).cpu().numpy()
        rows = np.concatenate([index[i] for i in members])
        if values.ndim == 2:
            out[rows, : values.shape[1]] = values
        else:
            out[rows] = values
    return out


def _rank_candidates(recommender: Recommender, batch: Batch, examples: Sequence[Example], k: int) -> torch.Tensor:
    """[B, k] each example's candidates ranked by score (on the device), 0 where a list is shorter than k."""
    width = max(len(ex.candidates or ()) for ex in examples)
    cands = np.zeros((len(examples), width), dtype=np.int64)
    valid = np.zeros((len(examples), width), dtype=bool)
    for row, ex in enumerate(examples):
        items = ex.candidates or ()
        cands[row, : len(items)] = items
        cands[row, len(items) :] = items[0] if items else 1
        valid[row, : len(items)] = True
    cand_t = host_to_device(torch.from_numpy(cands), recommender.device)
    valid_t = host_to_device(torch.from_numpy(valid), recommender.device)
    scores = recommender.score_candidates(batch, cand_t, lists_candidates=[True] * len(examples))
    top = min(k, width)
    order = scores.masked_fill(~valid_t, float("-inf")).topk(top, dim=1).indices
    chosen = torch.where(valid_t.gather(1, order), cand_t.gather(1, order), 0)
    out = torch.zeros(len(examples), k, dtype=torch.long, device=scores.device)
    out[:, :top] = chosen
    return out


def metrics_and_surrogate(
    recommender: Recommender,
    task: TaskSpec,
    examples: Sequence[Example],
    prompts: Prompts,
    batch_size: int = 256,
) -> tuple[dict[str, float], np.ndarray]:
    """(the task's full metrics, its per-example surrogate values) for these prompts."""
    preds = predictions(recommender, task, examples, prompts, batch_size)
    metrics = task.metrics(preds, examples)
    surrogate = np.asarray(task.surrogate(preds, examples), dtype=np.float64)
    return dict(metrics), surrogate
