"""A third-party paprec task plugin: `next-category`, the category of the user's next item.

The model ranks items after the user's history, as in sequential recommendation (the core's ranking
predictor; the model is trained to generate the next item), and the task scores that ranking at the
level of categories with metrics it declares itself:

- `CatHR@k` (k = 1, 5, 10; higher is better): one of the top-k items has the next item's category;
- `CatRank` (lower is better): the 1-based position of the first top-10 item with the next item's
  category, 11 when none of the ten has it.

An item's category is its first attribute word (`Dataset.item_attributes[i][0]`: the category word of
the synthetic dataset, the first category of an Amazon item). Examples whose next item has no category
are left out of the task (and counted in the error when none is left); items without one never match.

Nothing in paprec's core knows this task: `paprec train --tasks next-category`, `paprec search --task
next-category` and `paprec eval` run it through the `register_tasks` hook, and `paprec eval`'s verdicts
read each metric's direction from `example_metric_specs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from paprec_cli import Example, MetricSpec, Part, TaskSpec, Template, Word, hookimpl
from paprec_cli.errors import PaprecError

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData

__all__ = ["NextCategoryTask", "category_hits", "register_tasks"]

#: Ranked items the metrics read (the core's predictor ranks at least this deep).
DEPTH = 10
#: Histories keep the most recent items, as the built-in sequential task does.
MAX_HISTORY = 20
#: The manual prompts; the last one is held out of training (paprec's unseen-prompt evaluation).
TEMPLATES = (
    Template("nc-1", "user {user} bought {history} . which category does the next purchase belong to ?",
             family="next-category"),
    Template("nc-2", "given the purchases {history} of {user} , predict the category of the next item",
             family="next-category"),
    Template("nc-3", "{user} : {history} . next category ?", family="next-category", held_out=True),
)
SPECS = (
    MetricSpec("CatHR@1", help="the first ranked item has the next item's category"),
    MetricSpec("CatHR@5", help="one of the top 5 items has the next item's category"),
    MetricSpec("CatHR@10", help="one of the top 10 items has the next item's category"),
    MetricSpec("CatRank", smaller=True, help="position of the first top-10 item with that category; 11 if none"),
)


def category_hits(ranked: npt.ArrayLike, targets: npt.ArrayLike, category: np.ndarray) -> np.ndarray:
    """[N, K] bool: ranked item j of example i has the category of target i.

    `ranked` [N, K] item indices (0 = padding), `targets` [N] item indices, `category` [n_items + 1]
    category codes with -1 for "none" (never matches, nor does padding)."""
    ranked_np = np.asarray(ranked, dtype=np.int64)
    targets_np = np.asarray(targets, dtype=np.int64).reshape(-1)
    if ranked_np.ndim != 2 or ranked_np.shape[0] != targets_np.shape[0]:
        raise ValueError(f"ranked items must be [N={targets_np.shape[0]}, K], got shape {ranked_np.shape}")
    want = category[targets_np][:, None]
    return (category[ranked_np] == want) & (want >= 0) & (ranked_np > 0)


class NextCategoryTask(TaskSpec):
    """Which category will the user buy from next? Leave-one-out splits, like sequential."""

    name = "next-category"
    description = "category of the user's next item (plugin example; CatHR@k, CatRank)"
    kind = "ranking"
    argument_help = "user_U : i1 , i2 , ... (the at most 20 most recent items, oldest first)"
    default_template = "nc-1"
    surrogate_depth = 5  # the surrogate reads the top 5
    metric_specs = SPECS
    example_metric_specs = SPECS
    primary_metric = "CatHR@5"

    def __init__(self) -> None:
        #: Category code per item index of the dataset last given to `examples` (-1: none).
        self._category: np.ndarray | None = None

    @property
    def templates(self) -> list[Template]:
        return list(TEMPLATES)

    def categories(self, data: TaskData) -> np.ndarray:
        """[n_items + 1] category codes (index 0 and items without attributes: -1)."""
        names: dict[str, int] = {}
        codes = np.full(data.n_items + 1, -1, dtype=np.int64)
        for item, attributes in enumerate(data.dataset.item_attributes):
            if item and attributes:
                codes[item] = names.setdefault(str(attributes[0]), len(names))
        return codes

    def examples(self, data: TaskData, part: Part) -> list[Example]:
        category = self.categories(data)
        self._category = category
        if (category >= 0).sum() == 0:
            raise PaprecError(
                f"task next-category: dataset '{data.dataset.name}' has no item attributes (categories); "
                "import one with item metadata (e.g. synthetic, or beauty with item2attributes.json)"
            )
        loo = data.loo
        pairs: list[tuple[int, list[int], int]] = []
        if part == "train":
            for user in range(1, data.n_users + 1):
                sequence = loo.train[user].tolist()
                pairs += [(user, sequence[max(0, j - MAX_HISTORY) : j], sequence[j]) for j in range(1, len(sequence))]
        elif part in ("validation", "test"):
            targets = loo.validation if part == "validation" else loo.test
            pairs = [(int(u), loo.history(int(u), part)[-MAX_HISTORY:].tolist(), int(targets[int(u)]))
                     for u in loo.users(part)]  # fmt: skip
        else:
            raise ValueError(f"unknown split part {part!r}")
        return [self._example(user, history, target) for user, history, target in pairs if category[target] >= 0]

    @staticmethod
    def _example(user: int, history: list[int], target: int) -> Example:
        user_word = Word.user(user)
        listed: list[Word] = []
        for item in history:
            listed += [Word(","), Word.item(item)] if listed else [Word.item(item)]
        return Example(user=user, argument=(user_word, Word(":"), *listed),
                       values={"user": (user_word,), "history": tuple(listed)}, target=target)  # fmt: skip

    def target_words(self, example: Example) -> list[Word]:
        return [Word.item(int(example.target))]

    def _hits(self, predictions: npt.ArrayLike, examples: Sequence[Example], depth: int) -> np.ndarray:
        if self._category is None:
            raise RuntimeError("next-category: metrics need the categories; call examples(data, part) first")
        ranked = np.asarray(predictions, dtype=np.int64)
        if ranked.ndim != 2 or ranked.shape[1] < depth:
            raise ValueError(f"next-category reads {depth} ranked items per example, got shape {ranked.shape}")
        targets = np.fromiter((int(ex.target) for ex in examples), dtype=np.int64, count=len(examples))
        return category_hits(ranked[:, :depth], targets, self._category)

    def per_example(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        hits = self._hits(predictions, examples, DEPTH)
        first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, DEPTH + 1)
        out = {f"CatHR@{k}": np.asarray(hits[:, :k].any(axis=1), dtype=np.float64) for k in (1, 5, 10)}
        out["CatRank"] = np.asarray(first, dtype=np.float64)
        return out

    def metrics(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> dict[str, float]:
        per = self.per_example(predictions, examples)
        return {key: float(values.mean()) if values.size else float("nan") for key, values in per.items()}

    def surrogate(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> np.ndarray:
        """CatHR@1 + CatHR@5 per example (in [0, 2], higher is better); reads the top 5 only."""
        hits = self._hits(predictions, examples, self.surrogate_depth)
        return np.asarray(hits[:, 0], dtype=np.float64) + np.asarray(hits.any(axis=1), dtype=np.float64)


@hookimpl
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    register(NextCategoryTask())
