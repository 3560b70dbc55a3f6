"""Typed spec objects that plugins register, and the small value types they exchange with the core.

Data flows one way: a `DatasetSpec` yields a `RawDataset`; the core stores and splits it; a `TaskSpec`
turns splits into `Example`s made of `Word`s; the model encodes words; the search core edits the
trigger tokens around the task's fixed *argument* words.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from paprec_cli.data.dataset_spec import (
    INTERACTION_SCHEMA,
    ITEM_SCHEMA,
    DatasetSpec,
    ImportOptions,
    RawDataset,
    SourceFile,
)

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData

#: Dataset-side specs live one layer down, in `paprec_cli.data.dataset_spec`; re-exported here for plugins.
__all__ = ["INTERACTION_SCHEMA", "ITEM_SCHEMA", "DatasetSpec", "Example", "ImportOptions", "MetricSpec", "RawDataset",
           "SourceFile",
           "TaskNeeds", "TaskSpec", "Template", "Word"]

# ---------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------

WordKind = Literal["text", "user", "item", "rating"]


@dataclass(frozen=True)
class Word:
    """One whitespace-separated unit of a prompt. Ids are indices (user 1..U, item 1..I), not text,
    so that each model id scheme (atomic tokens or digit sub-words) can encode them its own way."""

    text: str
    kind: WordKind = "text"
    index: int = 0  # user or item index for kind "user"/"item"

    @staticmethod
    def user(index: int) -> Word:
        return Word(f"user_{index}", "user", index)

    @staticmethod
    def item(index: int) -> Word:
        return Word(str(index), "item", index)


_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    """A manual prompt. `source` uses {slots} the task fills; `family` groups P5-style templates."""

    id: str  # e.g. "2-3" (P5 numbering where the wording is P5's)
    source: str
    target: str = "{target}"
    family: str = ""
    #: True for the template held out of training (P5's unseen-prompt evaluation).
    held_out: bool = False
    #: True where P5 writes the user's *name* (its `user_desc`: 2-4 to 2-6, 2-13, 5-5, 5-6, 1-6): the {user}
    #: slot takes the example's `user_name` words when it has them (the P5 input protocol on a dataset with
    #: names), else the user id word `user_N`.
    user_name: bool = False

    def slots(self) -> list[str]:
        return _SLOT.findall(self.source)

    def render(self, values: Mapping[str, Sequence[Word]]) -> list[Word]:
        """Fill the slots with word lists; plain text becomes text words (split on whitespace).

        An item value written with its label (`item_873`, P5's wording) replaces the template's label
        word before the slot: "give item {item}" -> "give item_873", as P5 writes it. A `user_name`
        template fills {user} with `values["user_name"]` when that is given and not empty."""
        words: list[Word] = []
        pos = 0
        for match in _SLOT.finditer(self.source):
            words.extend(Word(t) for t in self.source[pos : match.start()].split())
            slot = match.group(1)
            named = self.user_name and slot == "user" and bool(values.get("user_name"))
            filled = values["user_name" if named else slot]
            first = filled[0] if filled else None
            if first is not None and first.kind == "item" and words and first.text == f"{words[-1].text}_{first.index}":
                words.pop()
            words.extend(filled)
            pos = match.end()
        words.extend(Word(t) for t in self.source[pos:].split())
        return words


@dataclass(frozen=True)
class Example:
    """One (source, target) pair of a task.

    `argument` is the part PAP-REC keeps fixed (user id, history or candidates); `values` fills a
    manual template's slots. `target` is an item index (ranking) or a rating (rating task).
    """

    user: int
    argument: tuple[Word, ...]
    values: dict[str, tuple[Word, ...]]
    target: float | int
    candidates: tuple[int, ...] | None = None  # direct task: the items to choose from


Part = Literal["train", "validation", "test"]
#: The form of a task's predictions (what the core's predictor computes): ranked item indices or ratings.
TaskKind = Literal["ranking", "rating"]
#: The key of the search's surrogate among per-example values; always higher-is-better.
SURROGATE = "surrogate"


@dataclass(frozen=True)
class MetricSpec:
    """A metric a task declares: its key and its direction (RecBole's `smaller`).

    `smaller=True` means lower values are better (errors, ranks); verdicts and model selection read
    this, never a list of names kept in the core.
    """

    name: str
    smaller: bool = False
    help: str = ""


@dataclass(frozen=True)
class TaskNeeds:
    """What a task needs a dataset to offer; the core checks it before any work
    (`paprec_cli.data.needs`), so a task the data cannot support is refused or left out in one line.

    `ratings`: rated interactions. `negatives`: every evaluated user must have the protocol's number of
    never-seen negative items (99 unless `-o negatives=N`), i.e. the catalogue holds at least that many
    items plus the user's distinct items: at least 100 items for the direct task by default.
    """

    ratings: bool = False
    negatives: bool = False


class TaskSpec(ABC):
    """A recommendation task plugin (sequential, direct, rating, or a third party's).

    Subclasses set the class attributes and implement the abstract methods. A task owns its metrics:
    `metric_specs` declares what `metrics()` returns and `example_metric_specs` what `per_example()`
    returns (per-example values whose means are metrics, for paired bootstrap intervals), each with its
    direction; the core looks directions up with `metric()` and never branches on a task's name or kind
    to score it. The built-in keys: HR@1, HR@5, HR@10, NDCG@5, NDCG@10, RMSE, MAE.
    """

    name: str
    description: str
    #: The form of the predictions the core computes for this task (see `TaskKind`).
    kind: TaskKind
    #: The template used as "the manual prompt" in search/eval comparisons.
    default_template: str
    #: What the fixed argument looks like; an automatic prompt is `[prefix] {argument} [suffix] [personal]`.
    argument_help: str = "the user id and the task's inputs"
    #: What the dataset must offer (checked before any work); the default needs nothing.
    needs: TaskNeeds = TaskNeeds()
    #: Ranking tasks: how many ranked items `surrogate` reads. The search ranks only that deep, which
    #: sets the beam width for subword ids (half the decoding work at 5 instead of 10).
    surrogate_depth: int = 10
    #: What `metrics()` returns, in report order.
    metric_specs: ClassVar[tuple[MetricSpec, ...]] = ()
    #: What `per_example()` returns, in report order.
    example_metric_specs: ClassVar[tuple[MetricSpec, ...]] = ()
    #: The key of `metric_specs` that selects the best training epoch (its direction applies).
    primary_metric: ClassVar[str] = ""

    @property
    @abstractmethod
    def templates(self) -> list[Template]:
        """Manual templates; exactly one per family has `held_out=True`."""

    @abstractmethod
    def examples(self, data: TaskData, part: Part) -> list[Example]:
        """Build examples for a split part; validation/test targets never appear in train examples."""

    @abstractmethod
    def target_words(self, example: Example) -> list[Word]:
        """The words the model is trained to generate for this example."""

    @abstractmethod
    def metrics(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> dict[str, float]:
        """Full test metrics, keyed as `metric_specs`. Ranking: `predictions` is a [N, K] int tensor/array
        of ranked item indices (best first, K >= 10); rating: a [N] float array of predicted ratings."""

    @abstractmethod
    def per_example(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        """Per-example values keyed as `example_metric_specs`: each a float64 array of length N (same
        `predictions` as `metrics`), whose mean is the matching metric (for paired bootstrap CIs)."""

    @abstractmethod
    def surrogate(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> np.ndarray:
        """Per-example surrogate values (higher is better) as a float array of length N; the search
        averages them. Ranking: NDCG@5 + HR@5; rating: negative squared error."""

    def metric(self, key: str) -> MetricSpec:
        """The declared spec of `key` (a metric, a per-example value, or "surrogate").

        Raises KeyError naming the task and the declared keys when the task does not declare `key`.
        """
        if key == SURROGATE:
            return MetricSpec(SURROGATE, smaller=False, help="the search's per-example surrogate")
        for spec in (*self.metric_specs, *self.example_metric_specs):
            if spec.name == key:
                return spec
        declared = [s.name for s in (*self.metric_specs, *self.example_metric_specs)]
        raise KeyError(f"task {self.name!r} declares no metric {key!r} (declared: {', '.join(declared) or 'none'})")

    def selection_metric(self) -> MetricSpec:
        """The metric that selects the best training epoch: `primary_metric`, else the first declared.

        Raises KeyError when the task declares no metric at all."""
        if self.primary_metric:
            return self.metric(self.primary_metric)
        if not self.metric_specs:
            raise KeyError(f"task {self.name!r} declares no metric_specs")
        return self.metric_specs[0]

    def manual(self, template_id: str | None = None) -> Template:
        wanted = template_id or self.default_template
        for template in self.templates:
            if template.id == wanted:
                return template
        from paprec_cli.errors import unknown_name

        raise unknown_name(f"template of task {self.name}", wanted, [t.id for t in self.templates], "--template")
