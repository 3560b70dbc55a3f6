"""Non-neural baselines on exactly the model's split and examples: popularity and item-kNN.

A trained RLM's numbers mean little alone: on leak-free Beauty a naive model scored below popularity.
So `paprec train` and `paprec eval` put these two next to every ranking metric. Both use training
interactions only (`TaskData.loo.train`), rank over all items for sequential and over the 100
candidates for direct, and never exclude already-seen items (sequences may repeat items, and the model
does not exclude them either).

Item-kNN is cosine similarity over the binary user x item matrix of training sequences,
`sim(i, j) = |U_i & U_j| / sqrt(|U_i| |U_j|)`, with the diagonal removed; a user's score for item j is
the similarity of j to the last `window` items of the history, weighted by `decay ** age`. It is
computed as two sparse products per batch of users ((Q X^T) X), so no item x item matrix
is ever materialised (Beauty: a few seconds on a CPU). Ties break by popularity, then by item index.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData
    from paprec_cli.plugins import Registry
    from paprec_cli.specs import Example, TaskSpec

#: How many ranked items a baseline returns (tasks need K >= 10).
TOP_K = 20
#: Tie-breaking weight of (normalised) popularity added to kNN scores.
_POP_EPS = 1e-6


def popularity_scores(train: Sequence[np.ndarray], n_items: int) -> torch.Tensor:
    """[n_items + 1] float64 scores ordered by training count, lower index first among equal counts
    (exact integers, so the order is deterministic); -inf for padding id 0."""
    counts = np.zeros(n_items + 1, dtype=np.float64)
    for seq in train:
        np.add.at(counts, np.asarray(seq, dtype=np.int64), 1.0)
    scores = counts * (n_items + 1) + (n_items - np.arange(n_items + 1))
    scores[0] = -np.inf
    return torch.from_numpy(scores)


def _user_item_matrix(train: Sequence[np.ndarray], n_items: int) -> torch.Tensor:
    """Binary sparse [users, n_items + 1] matrix of who interacted with what in training."""
    empty = [np.zeros(0, dtype=np.int64)]
    rows = np.concatenate([np.full(len(seq), u, dtype=np.int64) for u, seq in enumerate(train)] or empty)
    cols = np.concatenate([np.asarray(seq, dtype=np.int64) for seq in train] or empty)
    pairs = np.unique(np.stack([rows, cols]).astype(np.int64), axis=1)
    values = torch.ones(pairs.shape[1], dtype=torch.float32)
    shape = (len(train), n_items + 1)
    return torch.sparse_coo_tensor(torch.from_numpy(pairs), values, shape, check_invariants=True).coalesce()


@dataclass
class ItemKNN:
    """Cosine item-kNN over training co-occurrence; see the module docstring."""

    train: Sequence[np.ndarray]
    n_items: int
    window: int = 5
    decay: float = 0.7
    batch_size: int = 1024

    def __post_init__(self) -> None:
        self.x = _user_item_matrix(self.train, self.n_items)
        self.xt = self.x.t().coalesce()
        degree = torch.zeros(self.n_items + 1, dtype=torch.float32)
        for seq in self.train:
            degree[torch.from_numpy(np.unique(np.asarray(seq, dtype=np.int64)))] += 1.0
        self.norm = degree.sqrt().clamp_min(1e-12)
        self.has_users = degree > 0
        pop = popularity_scores(self.train, self.n_items)
        top = float(pop[1:].max()) if self.n_items else 1.0
        self.tie = (_POP_EPS * pop.clamp_min(0) / max(top, 1.0)).float()
        self.tie[0] = -float("inf")

    def _query(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Dense [B, n_items + 1] weights on the last `window` items of each history."""
        query = torch.zeros(len(histories), self.n_items + 1)
        for row, history in enumerate(histories):
            recent = np.asarray(history, dtype=np.int64)[-self.window :][::-1]
            for age, item in enumerate(recent):
                query[row, int(item)] += self.decay**age
        return query

    def scores(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """[B, n_items + 1] scores for one batch of histories (higher is better)."""
        query = self._query(histories)
        scaled = (query * (self.has_users / self.norm)).to_sparse()  # q_h / n_h; 0 for items without users
        with warnings.catch_warnings():  # torch calls its (correct) sparse CSR kernels "beta"
            warnings.simplefilter("ignore", UserWarning)
            co = torch.sparse.mm(torch.sparse.mm(scaled, self.xt), self.x).to_dense()  # sum_h q_h C_hj / n_h
        sim = co / self.norm
        sim -= query * self.has_users  # remove the diagonal: q_h C_hh / (n_h n_h) = q_h
        return sim + self.tie


def top_items(scores: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """[B, k] 1-based item indices, best first (column 0 is padding and never chosen)."""
    scores = scores.clone()
    scores[:, 0] = -float("inf")
    return scores.topk(min(k, scores.shape[1] - 1), dim=1).indices


def rank_candidates(scores: torch.Tensor, candidates: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """[B, k] candidate items ranked by `scores` ([B, n_items + 1]); ties keep the candidate order."""
    picked = scores.gather(1, candidates)
    order = torch.sort(picked, dim=1, descending=True, stable=True).indices[:, : min(k, candidates.shape[1])]
    return candidates.gather(1, order)


def _histories(data: TaskData, examples: Sequence[Example], part: str) -> list[np.ndarray]:
    return [data.loo.history(ex.user, part) for ex in examples]


def _rank_batches(
    score_fn: Callable[[list[np.ndarray]], torch.Tensor],
    histories: list[np.ndarray],
    examples: Sequence[Example],
    batch: int,
) -> torch.Tensor:
    """Rank over all items, or over each example's candidates when it has them."""
    out: list[torch.Tensor] = []
    for start in range(0, len(examples), batch):
        chunk = examples[start : start + batch]
        scores = score_fn(histories[start : start + batch])
        if chunk and chunk[0].candidates is not None:
            cands = torch.tensor([list(ex.candidates or ()) for ex in chunk], dtype=torch.long)
            out.append(rank_candidates(scores, cands))
        else:
            out.append(top_items(scores))
    return torch.cat(out) if out else torch.zeros(0, TOP_K, dtype=torch.long)


def baseline_predictions(
    data: TaskData, examples: Sequence[Example], part: str, knn: ItemKNN | None = None
) -> dict[str, torch.Tensor]:
    """Ranked items [N, K] per baseline for ranking examples of one task."""
    pop = popularity_scores(data.loo.train, data.n_items)
    knn = knn or ItemKNN(data.loo.train, data.n_items)
    histories = _histories(data, examples, part)
    return {
        "popularity": _rank_batches(lambda h: pop.expand(len(h), -1), histories, examples, 4096),
        "item_knn": _rank_batches(knn.scores, histories, examples, knn.batch_size),
    }


def baseline_results(
    data: TaskData,
    task_names: Sequence[str],
    part: str = "test",
    registry: Registry | None = None,
    tasks: dict[str, TaskSpec] | None = None,
    users: frozenset[int] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """`{"popularity": {task: metrics}, "item_knn": {task: metrics}}` for the ranking tasks among
    `task_names` (rating tasks have no ranking baseline and are skipped), via each task's own metrics.
    `users`: only these users' examples (`paprec eval --users`); None: all."""
    if tasks is None:
        from paprec_cli.plugins import load_registry

        reg = registry or load_registry()
        tasks = {name: reg.task(name, "--tasks") for name in task_names}
    knn = ItemKNN(data.loo.train, data.n_items)
    results: dict[str, dict[str, dict[str, float]]] = {"popularity": {}, "item_knn": {}}
    for name in task_names:
        task = tasks[name]
        if task.kind != "ranking":
            continue
        examples = task.examples(data, part)  # type: ignore[arg-type]
        if users is not None:
            examples = [ex for ex in examples if ex.user in users]
        if not examples:
            continue
        for baseline, ranked in baseline_predictions(data, examples, part, knn).items():
            results[baseline][name] = {k: float(v) for k, v in task.metrics(ranked, examples).items()}
    return results
