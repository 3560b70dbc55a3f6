"""What the ranking tasks share: word lists built cheaply, target words, metrics and surrogate."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from paprec_cli.metrics import as_numpy, ndcg_hr_at_5_per_example, ranking_metrics, ranking_per_example
from paprec_cli.specs import Example, MetricSpec, Part, TaskSpec, Word

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData

#: P5 separates listed items with a stand-alone comma ("45 , 873 , 22").
COMMA = Word(",")
COLON = Word(":")


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building example lists.

    Examples are acyclic, so collection passes over hundreds of thousands of new objects only cost time
    (about 40% of building Beauty's examples); the previous state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ItemWords:
    """Item words created once per `examples()` call and shared by every example (Words are frozen).

    Building ~150k histories of 20 items would otherwise allocate millions of identical objects.
    """

    def __init__(self, n_items: int) -> None:
        self._words = [Word.item(i) for i in range(n_items + 1)]

    def item(self, index: int) -> Word:
        return self._words[index]

    def listed(self, items: Sequence[int] | np.ndarray, separator: str = ",") -> list[Word]:
        """Items as P5 lists them: item , item , item (a separator word, `,` or `->`, between items)."""
        words = self._words
        chosen = [words[i] for i in (items.tolist() if isinstance(items, np.ndarray) else items)]
        if not chosen:
            return []
        out = [COMMA if separator == "," else Word(separator)] * (2 * len(chosen) - 1)
        out[0::2] = chosen
        return out


def user_values(data: object, user_word: Word) -> dict[str, tuple[Word, ...]]:
    """A template's user slot values: `user` (the id word), plus `user_name` (the user's name words) when
    the data writes names (`TaskData.user_name`: the P5 input protocol on a dataset that keeps them)."""
    values: dict[str, tuple[Word, ...]] = {"user": (user_word,)}
    name_of = getattr(data, "user_name", None)
    name = name_of(user_word.index) if name_of is not None else ()
    if name:
        values["user_name"] = tuple(Word(str(w)) for w in name)
    return values


#: The ranking metrics (higher is better); the per-example values have the same keys.
RANKING_METRICS = (
    MetricSpec("HR@1", help="the target is ranked first"),
    MetricSpec("HR@5", help="the target is in the top 5"),
    MetricSpec("HR@10", help="the target is in the top 10"),
    MetricSpec("NDCG@5", help="1/log2(rank + 1) when the target is in the top 5, else 0"),
    MetricSpec("NDCG@10", help="1/log2(rank + 1) when the target is in the top 10, else 0"),
)


def ranking_predictions(predictions: npt.ArrayLike, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] ranked item indices and [N] targets, checked to belong together."""
    ranked = as_numpy(predictions)
    if ranked.ndim != 2 or ranked.shape[0] != len(examples):
        raise ValueError(f"ranking predictions must be [N={len(examples)}, K] item indices, got shape {ranked.shape}")
    targets = np.fromiter((int(ex.target) for ex in examples), dtype=np.int64, count=len(examples))
    return ranked, targets


class BuiltTask(TaskSpec):
    """Builds examples with the garbage collector paused (`no_gc`); subclasses implement `_build`."""

    def examples(self, data: TaskData, part: Part) -> list[Example]:
        with no_gc():
            return self._build(data, part)

    def _build(self, data: TaskData, part: Part) -> list[Example]:
        raise NotImplementedError


class RankingTask(BuiltTask):
    """Base of the item-ranking tasks: the answer is one item; HR/NDCG metrics; NDCG@5 + HR@5 surrogate."""

    kind = "ranking"
    surrogate_depth = 5  # NDCG@5 + HR@5 read the top 5
    metric_specs = RANKING_METRICS
    example_metric_specs = RANKING_METRICS
    primary_metric = "NDCG@10"

    def target_words(self, example: Example) -> list[Word]:
        return [Word.item(int(example.target))]

    def metrics(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> dict[str, float]:
        ranked, targets = ranking_predictions(predictions, examples)
        return ranking_metrics(ranked, targets)

    def per_example(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        ranked, targets = ranking_predictions(predictions, examples)
        return ranking_per_example(ranked, targets)

    def surrogate(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> np.ndarray:
        ranked, targets = ranking_predictions(predictions, examples)
        return ndcg_hr_at_5_per_example(ranked, targets)
