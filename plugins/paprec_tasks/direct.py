"""Direct recommendation: pick the user's held-out item from a candidate list (positive + sampled negatives)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from paprec_cli.specs import Example, Part, TaskNeeds, Template, Word

from .common import COLON, ItemWords, RankingTask, user_values
from .templates import DIRECT

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData

#: Seed-sequence salt of training candidates (the core uses 1 and 2 for validation and test).
TRAIN_SALT = 3


def _duplicates(draws: np.ndarray) -> np.ndarray:
    """True where a value already occurred earlier in its row."""
    order = np.argsort(draws, axis=1, kind="stable")
    ranked = np.take_along_axis(draws, order, axis=1)
    repeat = np.zeros(draws.shape, dtype=bool)
    repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
    out = np.empty_like(repeat)
    np.put_along_axis(out, order, repeat, axis=1)
    return out


def _redraw(rng: np.random.Generator, seen: set[int], n_items: int, n_neg: int) -> list[int]:
    """The rare slow path: `n_neg` distinct never-seen items drawn one batch at a time."""
    chosen: list[int] = []
    while len(chosen) < n_neg:
        for item in rng.integers(1, n_items + 1, size=2 * n_neg + 8).tolist():
            if item not in seen and item not in chosen:
                chosen.append(item)
                if len(chosen) == n_neg:
                    break
    return chosen


def train_candidate_sets(
    users: Sequence[int],
    positives: Sequence[np.ndarray],
    seen: Sequence[np.ndarray],
    n_items: int,
    size: int,
    seed: int,
) -> list[np.ndarray]:
    """For each user, a [P, size'] array: one candidate set per training positive, holding the positive
    at a random column and `size' - 1` distinct items the user never interacted with (size' = size, or
    fewer when the catalogue is too small).

    Every draw of a user comes from that user's generator, seeded with (seed, user), so a user's sets do
    not depend on other users. The filtering is vectorised over all users at once (Beauty has ~150k
    training positives); rows without enough valid draws are completed by `_redraw`.
    """
    if size < 1:
        raise ValueError(f"a candidate set needs at least the positive (size >= 1), got {size}")
    n_users = len(users)
    counts = np.array([len(p) for p in positives], dtype=np.int64)
    seen_unique = [np.unique(s) for s in seen]
    n_negs = np.array([max(0, min(size - 1, n_items - s.size)) for s in seen_unique], dtype=np.int64)
    # Over-draw in proportion to how much of the catalogue the user has seen.
    widths = [int(n * n_items / max(1, n_items - s.size) * 1.3) + 8 for n, s in zip(n_negs, seen_unique, strict=True)]
    width = max(widths, default=8)
    rngs = [np.random.default_rng([seed, int(user), TRAIN_SALT]) for user in users]
    blocks, slots = [], []
    for rng, count, n_neg, w in zip(rngs, counts.tolist(), n_negs.tolist(), widths, strict=True):
        block = np.zeros((count, width), dtype=np.int64)  # 0 = no draw (never valid)
        block[:, :w] = rng.integers(1, n_items + 1, size=(count, w))
        blocks.append(block)
        slots.append(rng.integers(0, n_neg + 1, size=count))
    if not blocks or counts.sum() == 0:
        return [np.zeros((int(c), 1), dtype=np.int64) for c in counts]
    draws = np.concatenate(blocks)
    slot = np.concatenate(slots)
    owner = np.repeat(np.arange(n_users), counts)
    need = n_negs[owner]
    # never seen by the row's user: look (user, item) codes up among the seen codes
    stride = n_items + 1
    seen_codes = np.concatenate([k * stride + s for k, s in enumerate(seen_unique)]) if n_users else np.zeros(0)
    seen_codes = np.sort(seen_codes)
    codes = owner[:, None] * stride + draws
    at = np.minimum(np.searchsorted(seen_codes, codes), max(seen_codes.size - 1, 0))
    valid = (draws > 0) & ~_duplicates(draws)
    if seen_codes.size:
        valid &= seen_codes[at] != codes
    picks = np.argsort(~valid, axis=1, kind="stable")[:, : size - 1]
    full = np.zeros((draws.shape[0], size), dtype=np.int64)
    full[:, : picks.shape[1]] = np.take_along_axis(draws, picks, axis=1)
    for row in np.flatnonzero(valid.sum(axis=1) < need).tolist():
        k = int(owner[row])
        full[row, : need[row]] = _redraw(rngs[k], set(seen_unique[k].tolist()), n_items, int(need[row]))
    rows = np.arange(draws.shape[0])
    full[rows, need] = np.concatenate(list(positives))
    full[rows, need], full[rows, slot] = full[rows, slot], full[rows, need]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [full[bounds[k] : bounds[k + 1], : n_negs[k] + 1] for k in range(n_users)]


class DirectTask(RankingTask):
    """Choose the held-out positive among 100 candidates (positive + 99 seeded never-seen negatives).

    Validation and test use the core's candidates (`TaskData.candidates`); training uses each training
    item as a positive with `train_candidates` candidates (the positive + seeded never-seen negatives),
    fewer than 100 to keep prompts short during training.
    """

    name = "direct"
    needs = TaskNeeds(negatives=True)  # the candidate list: positive + N never-seen items
    description = "choose the user's next item among 100 candidates (1 positive + 99 sampled; HR/NDCG)"
    argument_help = "user_U : c1 , c2 , ... , c100 (the candidates in their seeded shuffled order)"
    # 5-7 is the P5 prompt that names the user and picks from a candidate list, and one a P5 checkpoint was
    # trained on (5-8, the other such prompt, is P5's held-out one).
    default_template = "5-7"
    #: Size of each training candidate set (the positive included).
    train_candidates = 20

    @property
    def templates(self) -> list[Template]:
        return list(DIRECT)

    def _build(self, data: TaskData, part: Part) -> list[Example]:
        words = ItemWords(data.n_items)
        loo = data.loo
        out: list[Example] = []
        if part == "train":
            users = [u for u in range(1, data.n_users + 1) if loo.train[u].size]
            sequences = data.dataset.sequences
            sets = train_candidate_sets(
                users,
                [loo.train[u] for u in users],
                [sequences[u] for u in users],
                data.n_items,
                self.train_candidates,
                data.seed,
            )
            for user, user_sets in zip(users, sets, strict=True):
                users_ = user_values(data, Word.user(user))
                for positive, candidates in zip(loo.train[user].tolist(), user_sets.tolist(), strict=True):
                    out.append(self._example(words, users_, candidates, positive))
            return out
        if part not in ("validation", "test"):
            raise ValueError(f"unknown split part {part!r}")
        targets = loo.validation if part == "validation" else loo.test
        for user in loo.users(part).tolist():
            candidates = data.candidates(user, part).tolist()
            out.append(self._example(words, user_values(data, Word.user(user)), candidates, int(targets[user])))
        return out

    @staticmethod
    def _example(words: ItemWords, users: dict[str, tuple[Word, ...]], candidates: list[int], target: int) -> Example:
        listed = tuple(words.listed(candidates))
        user_word = users["user"][0]
        return Example(
            user=user_word.index,
            argument=(user_word, COLON, *listed),
            values={**users, "candidates": listed},
            target=target,
            candidates=tuple(candidates),
        )
