"""Predictions for a task's examples under given prompts, and the task's metrics on them.

Ranking: examples with `candidates` (direct task) are scored candidate by candidate and the
candidates sorted by score; the others are ranked over all items. Rating: the expected rating
(see `Recommender.predict_rating`). Prompts are sorted by length so batches carry little padding;
results come back in the examples' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from paprec_cli.model.codec import EncodedPrompt
from paprec_cli.model.inference import Recommender
from paprec_cli.specs import Example, TaskSpec

TOP_K = 10


def batch_indices(prompts: Sequence[EncodedPrompt], batch_size: int) -> list[np.ndarray]:
    """Batches of prompt indices, sorted by length (little padding); sharded evaluation reuses the same cut."""
    order = np.argsort(np.fromiter((len(p) for p in prompts), dtype=np.int64, count=len(prompts)), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def predictions(
    recommender: Recommender,
    task: TaskSpec,
    examples: Sequence[Example],
    prompts: Sequence[EncodedPrompt],
    batch_size: int = 256,
    k: int = TOP_K,
) -> np.ndarray:
    """[N, k] ranked item indices (ranking; 0 pads a candidate list shorter than k) or [N] ratings."""
    if len(examples) != len(prompts):
        raise ValueError(f"{len(examples)} examples but {len(prompts)} prompts")
    codec = recommender.codec
    if task.kind == "rating":
        ratings = np.zeros(len(examples), dtype=np.float64)
        for idx in batch_indices(prompts, batch_size):
            batch = codec.collate([prompts[i] for i in idx], recommender.device)
            ratings[idx] = recommender.predict_rating(batch).cpu().numpy()
        return ratings
    ranked = np.zeros((len(examples), k), dtype=np.int64)
    for idx in batch_indices(prompts, batch_size):
        batch = codec.collate([prompts[i] for i in idx], recommender.device)
        with_cands = [j for j, i in enumerate(idx) if examples[i].candidates is not None]
        plain = [j for j, i in enumerate(idx) if examples[i].candidates is None]
        if plain:
            sub = batch if len(plain) == len(idx) else batch.select(torch.tensor(plain, device=batch.input_ids.device))
            top = recommender.rank_all(sub, k).cpu().numpy()  # fewer than k columns if n_items < k
            ranked[idx[plain], : top.shape[1]] = top
        if with_cands:
            sub = (
                batch
                if len(with_cands) == len(idx)
                else batch.select(torch.tensor(with_cands, device=batch.input_ids.device))
            )
            ranked[idx[with_cands]] = _rank_candidates(recommender, sub, [examples[idx[j]] for j in with_cands], k)
    return ranked


def _rank_candidates(recommender: Recommender, batch: Any, examples: Sequence[Example], k: int) -> np.ndarray:
    width = max(len(ex.candidates or ()) for ex in examples)
    cands = np.zeros((len(examples), width), dtype=np.int64)
    valid = np.zeros((len(examples), width), dtype=bool)
    for row, ex in enumerate(examples):
        items = ex.candidates or ()
        cands[row, : len(items)] = items
        cands[row, len(items) :] = items[0] if items else 1
        valid[row, : len(items)] = True
    scores = recommender.score_candidates(batch, torch.from_numpy(cands)).cpu()
    scores = scores.masked_fill(~torch.from_numpy(valid), float("-inf"))
    top = min(k, width)
    order = scores.topk(top, dim=1).indices.numpy()
    out = np.zeros((len(examples), k), dtype=np.int64)
    chosen = np.take_along_axis(cands, order, axis=1)
    out[:, :top] = np.where(np.take_along_axis(valid, order, axis=1), chosen, 0)
    return out


def evaluate(
    recommender: Recommender,
    task: TaskSpec,
    examples: Sequence[Example],
    prompts: Sequence[EncodedPrompt],
    batch_size: int = 256,
) -> tuple[dict[str, float], np.ndarray]:
    """(the task's full metrics, its per-example surrogate values) for these prompts."""
    preds = predictions(recommender, task, examples, prompts, batch_size)
    metrics = task.metrics(preds, examples)
    surrogate = np.asarray(task.surrogate(preds, examples), dtype=np.float64)
    return dict(metrics), surrogate
