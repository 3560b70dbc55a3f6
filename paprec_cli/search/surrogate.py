"""Per-row surrogate scorers: how good each (prompt, validation example) row is, higher is better.

The search hands a scorer all rows of a step at once: candidates x validation examples. The fast scorer
ranks them in large batches (one pass, chunked by `batch_size`); the beam scorer is the reference
implementation's way (one candidate at a time, 20-beam generate) kept for comparison; the loss scorer
is the paper's ablation (negative teacher-forced NLL of the target); the rank scorer (`--selection rank`)
reads the same ranking as the fast scorer but deeper: 1/log2(1 + rank) of the target within the top
`RANK_DEPTH` items, 0 beyond. That is NDCG@RANK_DEPTH with one relevant item (Jarvelin & Kekalainen's
discount, as NDCG@k in `paprec_cli.metrics`): non-zero for most users (the paper's NDCG@5 + HR@5 is 0 for
most of them under every candidate), and, unlike the target's log-probability, it only moves when the
target moves past other items, so a token that lifts every item of one brand scores nothing by itself.
Within a candidate list (the direct task) the depth is a tenth of the list (`CANDIDATE_DEPTH_SHARE`): P5's
1 + 99 candidates give NDCG@10, the metric reported. Depth 50 there read half the list, and on ML-100K direct a
shared flip that moved targets from rank ~80 to ~45 passed the z-test and lost 0.026 test HR@10 (issue #14).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from paprec_cli.choices import Evaluator, Selection
from paprec_cli.errors import PaprecError
from paprec_cli.model.batching import Batch
from paprec_cli.model.rows import PromptRows, Prompts, as_rows
from paprec_cli.specs import Example, TaskSpec

if TYPE_CHECKING:
    from paprec_cli.model.inference import Recommender

BEAMS = 20
#: Ranking depth of `--selection rank` (items; about an eighth of the synthetic default's 400 items).
RANK_DEPTH = 50
#: Within a candidate list the rank signal reads the top tenth of the list (at least 1 item, at most RANK_DEPTH).
CANDIDATE_DEPTH_SHARE = 0.1
#: The fast scorer's constrained beam width with sub-word ids (it keeps the top `task.surrogate_depth` = 5):
#: the smallest width measured to recover at least 90% of the exact top-5 on a tiny trained sub-word model
#: (synthetic, seed 0; 300 validation users: 5 beams 60%, 10 71%, 20 80%, 30 99.7%; bench/beam_gap.py,
#: docs/BEAM-GAP.md). Atomic ids rank exactly and ignore it; `--decoding p5` uses P5's 20 beams.
SURROGATE_BEAMS = 30


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA (the search's speed setting), nothing on the CPU."""
    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class RowScorer(Protocol):
    #: True when one call may hold many candidates' rows (the schedule then batches them together).
    batched: bool

    def __call__(self, prompts: Prompts, examples: Sequence[Example]) -> np.ndarray:
        """[N] per-row values, higher is better (`prompts`: a list of `EncodedPrompt` or `PromptRows`)."""


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _batch(rows: PromptRows, part: slice, device: torch.device | str) -> Batch:
    return rows.collate(np.arange(part.start, part.stop), device)


class FastScorer:
    """The task's surrogate on predictions from the model package's batched `predictions`."""

    batched = True
    #: `predictions` batches rows after a stable sort by prompt length; a sharded search cuts its rows in
    #: that order so each rank runs exactly the batches a single process would (see problem.py).
    sorts_by_length = True

    def __init__(self, recommender: Recommender, task: TaskSpec, batch_size: int) -> None:
        self.recommender, self.task, self.batch_size = recommender, task, batch_size

    def __call__(self, prompts: Prompts, examples: Sequence[Example]) -> np.ndarray:
        from paprec_cli.model import predict

        with torch.no_grad(), autocast(self.recommender.device):
            preds = predict.predictions(
                self.recommender, self.task, list(examples), prompts, self.batch_size, k=self.task.surrogate_depth,
                num_beams=max(self.task.surrogate_depth, SURROGATE_BEAMS),
            )
        return np.asarray(self.task.surrogate(preds, list(examples)), dtype=np.float64)


class RankScorer(FastScorer):
    """NDCG@RANK_DEPTH of each row's target on the same batched ranking as `FastScorer` (`--selection rank`).

    Ranking tasks only (rating has no rank); the direct task ranks within its candidate list."""

    def __init__(self, recommender: Recommender, task: TaskSpec, batch_size: int, depth: int = RANK_DEPTH) -> None:
        super().__init__(recommender, task, batch_size)
        self.depth = depth

    def __call__(self, prompts: Prompts, examples: Sequence[Example]) -> np.ndarray:
        from paprec_cli.model import predict

        with torch.no_grad(), autocast(self.recommender.device):
            ranked = predict.predictions(self.recommender, self.task, list(examples), prompts, self.batch_size,
                                         k=self.depth)
        return deep_ndcg(np.asarray(ranked, dtype=np.int64), examples)


def rank_depth(example: Example) -> int:
    """How deep the rank signal reads for `example`: RANK_DEPTH over the whole catalogue, a tenth of the list
    (rounded, at least 1) within a candidate list."""
    if example.candidates is None:
        return RANK_DEPTH
    return max(1, min(RANK_DEPTH, int(round(CANDIDATE_DEPTH_SHARE * len(example.candidates)))))


def deep_ndcg(ranked: np.ndarray, examples: Sequence[Example]) -> np.ndarray:
    """[N] 1/log2(1 + rank) of each example's target in its row of `ranked` [N, depth] (rank 1-based), 0 when
    the target is not within the example's `rank_depth`."""
    targets = np.fromiter((int(ex.target) for ex in examples), dtype=np.int64, count=len(examples))
    depths = np.fromiter((rank_depth(ex) for ex in examples), dtype=np.int64, count=len(examples))
    hit = ranked == targets[:, None]
    rank = hit.argmax(axis=1) + 1
    return np.where(hit.any(axis=1) & (rank <= depths), 1.0 / np.log2(1.0 + rank), 0.0)


class BeamScorer:
    """The straightforward baseline: 20-beam generation over valid ids, one candidate per call."""

    batched = False

    def __init__(self, recommender: Recommender, task: TaskSpec, batch_size: int, k: int = 10) -> None:
        self.recommender, self.task, self.batch_size, self.k = recommender, task, batch_size, k

    def __call__(self, prompts: Prompts, examples: Sequence[Example]) -> np.ndarray:
        rec, parts, all_rows = self.recommender, [], as_rows(prompts, self.recommender.codec)
        with torch.no_grad(), autocast(rec.device):
            for rows in _chunks(len(all_rows), self.batch_size):
                batch = _batch(all_rows, rows, rec.device)
                if self.task.kind == "rating":
                    parts.append(rec.predict_rating(batch).float().cpu())
                else:
                    listed = [ex.candidates is not None for ex in examples[rows]]
                    ranked = rec.rank_beam(batch, BEAMS, num_beams=BEAMS, lists_candidates=listed).cpu()
                    parts.append(_restrict(ranked, examples[rows], self.k))
        preds = torch.cat(parts) if parts else torch.zeros(0)
        return np.asarray(self.task.surrogate(preds, list(examples)), dtype=np.float64)


def _restrict(ranked: torch.Tensor, examples: Sequence[Example], k: int) -> torch.Tensor:
    """Keep each row's items that are in its candidate list (direct task), padded with 0 to width k."""
    out = torch.zeros(ranked.shape[0], k, dtype=torch.long)
    for row, example in enumerate(examples):
        allowed = set(example.candidates) if example.candidates is not None else None
        kept = [int(i) for i in ranked[row].tolist() if allowed is None or int(i) in allowed][:k]
        out[row, : len(kept)] = torch.tensor(kept, dtype=torch.long)
    return out


class LossScorer:
    """Negative teacher-forced NLL of each row's target (`--selection loss`)."""

    batched = True

    def __init__(self, recommender: Recommender, task: TaskSpec, batch_size: int) -> None:
        self.recommender, self.task, self.batch_size = recommender, task, batch_size

    def __call__(self, prompts: Prompts, examples: Sequence[Example]) -> np.ndarray:
        rec, parts, all_rows = self.recommender, [], as_rows(prompts, self.recommender.codec)
        with torch.no_grad(), autocast(rec.device):
            for rows in _chunks(len(all_rows), self.batch_size):
                batch = _batch(all_rows, rows, rec.device)
                targets = [rec.codec.target_ids(self.task.target_words(ex)) for ex in examples[rows]]
                listed = [ex.candidates is not None for ex in examples[rows]]
                parts.append(rec.nll(batch, targets, listed).float().cpu())
        nll = torch.cat(parts) if parts else torch.zeros(0)
        return -nll.double().numpy()


def make_scorer(recommender: Recommender, task: TaskSpec, selection: Selection, evaluator: Evaluator,
                batch_size: int) -> RowScorer:
    if selection is Selection.LOSS:
        return LossScorer(recommender, task, batch_size)
    if selection is Selection.RANK:
        if task.kind != "ranking":
            raise PaprecError(f"--selection rank: task '{task.name}' predicts {task.kind}s, not rankings; "
                              "use --selection surrogate or loss")
        return RankScorer(recommender, task, batch_size)
    if evaluator is Evaluator.BEAM:
        return BeamScorer(recommender, task, batch_size)
    return FastScorer(recommender, task, batch_size)


def per_user_means(values: np.ndarray, user_pos: np.ndarray, n_users: int) -> np.ndarray:
    """[..., N] per-example values -> [..., U] means over each user's examples (user_pos[i] in 0..U-1)."""
    counts = np.bincount(user_pos, minlength=n_users).astype(np.float64)
    flat = values.reshape(-1, values.shape[-1])
    sums = np.stack([np.bincount(user_pos, weights=row, minlength=n_users) for row in flat])
    return (sums / np.maximum(counts, 1)).reshape(*values.shape[:-1], n_users)
