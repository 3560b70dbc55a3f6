"""The evaluation protocol's splits, the same for every dataset (see DESIGN.md).

Sequential and direct: leave-one-out per user by time (last item test, second-to-last validation,
the rest train); users with fewer than 3 interactions only contribute training data. Direct adds
99 seeded negatives the user never interacted with. Rating: a seeded 80/10/10 split of interactions.
Every random choice is seeded per user (`rng([seed, user])`), so a user's split does not depend on
which other users are processed or in what order (sharded runs see the same split).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from paprec_cli.data.store import Dataset
from paprec_cli.errors import PaprecError
from paprec_cli.inputs import PAPREC, InputProtocol

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject

N_NEGATIVES = 99
MIN_LOO_LENGTH = 3


@dataclass(frozen=True)
class LeaveOneOut:
    """`train[u]`: the items before the last two; `validation[u]`/`test[u]`: target item, 0 if none."""

    train: list[np.ndarray]
    validation: np.ndarray
    test: np.ndarray

    def history(self, user: int, part: str) -> np.ndarray:
        """The history a model sees when predicting `part`'s target (validation target joins for test)."""
        if part == "validation":
            return self.train[user]
        if part == "test":
            return np.append(self.train[user], self.validation[user])
        raise ValueError(part)

    def users(self, part: str) -> np.ndarray:
        targets = self.validation if part == "validation" else self.test
        return np.flatnonzero(targets > 0)


@dataclass(frozen=True)
class RatingSplit:
    """Each part is a table of user_idx, item_idx, rating."""

    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame

    def part(self, name: str) -> pl.DataFrame:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def leave_one_out(sequences: list[np.ndarray]) -> LeaveOneOut:
    n = len(sequences)
    train: list[np.ndarray] = []
    validation = np.zeros(n, dtype=np.int64)
    test = np.zeros(n, dtype=np.int64)
    for user, seq in enumerate(sequences):
        if len(seq) >= MIN_LOO_LENGTH:
            train.append(seq[:-2])
            validation[user] = seq[-2]
            test[user] = seq[-1]
        else:
            train.append(seq)
    return LeaveOneOut(train, validation, test)


def rating_split(interactions: pl.DataFrame, seed: int, fractions: tuple[float, float] = (0.8, 0.1)) -> RatingSplit:
    """Seeded 80/10/10 split of rated interactions (the split is over interactions, as in P5)."""
    rated = interactions.filter(pl.col("rating").is_not_null()).select("user_idx", "item_idx", "rating", "pos")
    if rated.height == 0:
        raise PaprecError("the rating task needs a dataset with ratings (e.g. ml-100k); this one has none")
    rated = rated.sort(["user_idx", "pos"])
    draw = np.random.default_rng(seed).random(rated.height)
    train_cut, val_cut = fractions[0], fractions[0] + fractions[1]
    rated = rated.with_columns(pl.Series("draw", draw))
    return RatingSplit(
        train=rated.filter(pl.col("draw") < train_cut).drop("draw", "pos"),
        validation=rated.filter((pl.col("draw") >= train_cut) & (pl.col("draw") < val_cut)).drop("draw", "pos"),
        test=rated.filter(pl.col("draw") >= val_cut).drop("draw", "pos"),
    )


def sample_negatives(seen: np.ndarray, n_items: int, n: int, seed: int, user: int, salt: int = 0) -> np.ndarray:
    """`n` distinct items in 1..n_items the user never interacted with, seeded per user."""
    seen_set = set(int(i) for i in seen)
    available = n_items - len(seen_set)
    if available < n:
        fix = (f"train with fewer negatives (`paprec train ... -o negatives=N`, N <= {available}) or use another task"
               if available > 0 else "the direct task cannot be used on this dataset; use another task")
        raise PaprecError(
            f"direct task: user {user} interacted with {len(seen_set)} of {n_items} items: fewer than {n} "
            f"negatives remain; {fix}"
        )
    rng = np.random.default_rng([seed, user, salt])
    chosen: list[int] = []
    chosen_set: set[int] = set()
    while len(chosen) < n:
        for item in rng.integers(1, n_items + 1, size=2 * (n - len(chosen)) + 8):
            item = int(item)
            if item not in seen_set and item not in chosen_set:
                chosen.append(item)
                chosen_set.add(item)
                if len(chosen) == n:
                    break
    return np.asarray(chosen, dtype=np.int64)


class TaskData:
    """A dataset plus every split a task needs, computed lazily and cached for one process."""

    def __init__(self, dataset: Dataset, seed: int = 0, negatives: int = N_NEGATIVES,
                 loo: LeaveOneOut | None = None, inputs: InputProtocol = PAPREC) -> None:
        """`negatives`: never-seen negatives in each direct-task candidate list (99 as in P5; `-o negatives=N`).
        `loo`: a leave-one-out split to use instead of the dataset's own (serving passes one whose
        "test" history is each user's whole sequence); None computes the dataset's on first use.
        `inputs`: how prompts are written (history length, separator; `paprec_cli.inputs`)."""
        self.dataset = dataset
        self.seed = seed
        self.negatives = negatives
        self._loo = loo
        self.inputs = inputs

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    @property
    def loo(self) -> LeaveOneOut:
        if self._loo is None:
            self._loo = leave_one_out(self.dataset.sequences)
        return self._loo

    @cached_property
    def ratings(self) -> RatingSplit:
        return rating_split(self.dataset.interactions, self.seed)

    def candidates(self, user: int, part: str) -> np.ndarray:
        """Direct task: the held-out positive plus `negatives` (99) seeded negatives, in a seeded shuffled order."""
        target = int(self.loo.validation[user] if part == "validation" else self.loo.test[user])
        salt = 1 if part == "validation" else 2
        negatives = sample_negatives(self.dataset.sequences[user], self.n_items, self.negatives, self.seed, user, salt)
        pool = np.append(negatives, target)
        return np.random.default_rng([self.seed, user, salt, 7]).permutation(pool)

    @cached_property
    def _name_words(self) -> dict[int, tuple[str, ...]]:
        names: dict[int, str] = getattr(self.dataset, "user_names", {}) if self.inputs.name == "p5" else {}
        return {int(user): tuple(name.split()) for user, name in names.items()}

    def user_name(self, user: int) -> tuple[str, ...]:
        """The words of `user`'s name (plain text words), for templates where P5 writes it
        (`Template.user_name`), under the P5 input protocol on a dataset that keeps names (McAuley's
        reviewerName); () otherwise, and the template writes `user_N` (paprec's own models always see `user_N`)."""
        return self._name_words.get(int(user), ())

    @cached_property
    def train_popularity(self) -> np.ndarray:
        """Interaction counts per item index over training data only (no validation/test targets)."""
        counts = np.zeros(self.n_items + 1, dtype=np.int64)
        for seq in self.loo.train:
            np.add.at(counts, seq, 1)
        return counts

    def protocol(self) -> JSONObject:
        """What every manifest records about how numbers were produced."""
        return {
            "split": "leave-one-out by time (last test, second-to-last validation); rating 80/10/10 seeded",
            "min_sequence_length": MIN_LOO_LENGTH,
            "direct_candidates": f"held-out positive + {self.negatives} seeded negatives never interacted with",
            "negatives": self.negatives,
            "indexing": self.dataset.manifest.get("indexing"),
            "tie_break": self.dataset.manifest.get("tie_break"),
            "seed": self.seed,
            "dataset_fingerprint": self.dataset.fingerprint,
            "inputs": self.inputs.to_json(),
        }
