"""Typed spec objects that plugins register, and the small value types they exchange with the core.

Data flows one way: a `DatasetSpec` yields a `RawDataset`; the core stores and splits it; a `TaskSpec`
turns splits into `Example`s made of `Word`s; the model encodes words; the search core edits the
trigger tokens around the task's fixed *argument* words.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData

# ---------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------

#: Columns of the canonical interaction table a loader returns (raw ids as strings).
INTERACTION_SCHEMA: dict[str, type[pl.DataType]] = {
    "user": pl.String,
    "item": pl.String,
    "rating": pl.Float64,  # null when the source has none
    "timestamp": pl.Int64,  # null when the source has none (order then comes from `order`)
    "order": pl.Int64,  # position in the source (file line, then position within the line)
}

#: Columns of the item metadata table (one row per item that has any metadata).
ITEM_SCHEMA: dict[str, Any] = {
    "item": pl.String,
    "title": pl.String,  # null when unknown
    "attributes": pl.List(pl.String),  # brand/category-like words; empty list when unknown
}


@dataclass(frozen=True)
class SourceFile:
    """A file an import read; recorded with its checksum in the dataset manifest."""

    path: Path
    sha256: str


@dataclass
class RawDataset:
    """What a dataset loader returns: the canonical tables plus provenance."""

    interactions: pl.DataFrame
    items: pl.DataFrame
    sources: list[SourceFile] = field(default_factory=list)
    #: Extra tables stored beside the data and never shown to a model (e.g. synthetic ground truth).
    extras: dict[str, pl.DataFrame] = field(default_factory=dict)
    #: Free-form facts recorded in the manifest (generator parameters, filters applied, ...).
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportOptions:
    """Options a loader may honour; a loader rejects (PaprecError) options it cannot apply."""

    seed: int = 0
    #: Loader-specific settings from `--option KEY=VALUE` (e.g. csv column names, synthetic sizes).
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset plugin's registration.

    `load(path, options)` reads the raw files under `path` (a folder or a file) and returns a
    `RawDataset`; it raises `PaprecError`/`DataFormatError` for any bad input, naming file and line.
    `path` is None only for datasets with `needs_files=False` (generated ones).
    """

    name: str
    description: str
    files: str  # human description of what `--from` must point at
    load: Callable[[Path | None, ImportOptions], RawDataset]
    needs_files: bool = True
    #: Timestamp tie-break recorded in the manifest: "source" (file order) or "item" (item id).
    default_tie_break: Literal["source", "item"] = "source"
    homepage: str = ""


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

    def slots(self) -> list[str]:
        return _SLOT.findall(self.source)

    def render(self, values: Mapping[str, Sequence[Word]]) -> list[Word]:
        """Fill the slots with word lists; plain text becomes text words (split on whitespace).

        An item value written with its label (`item_873`, P5's wording) replaces the template's label
        word before the slot: "give item {item}" -> "give item_873", as P5 writes it."""
        words: list[Word] = []
        pos = 0
        for match in _SLOT.finditer(self.source):
            words.extend(Word(t) for t in self.source[pos : match.start()].split())
            filled = values[match.group(1)]
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
TaskKind = Literal["ranking", "rating"]


class TaskSpec(ABC):
    """A recommendation task plugin (sequential, direct, rating, or a third party's).

    Subclasses set the class attributes and implement the abstract methods. Metric names use the
    project's keys: HR@1, HR@5, HR@10, NDCG@5, NDCG@10, RMSE, MAE.
    """

    name: str
    description: str
    kind: TaskKind
    #: The template used as "the manual prompt" in search/eval comparisons.
    default_template: str
    #: What the fixed argument looks like; an automatic prompt is `[prefix] {argument} [suffix] [personal]`.
    argument_help: str = "the user id and the task's inputs"
    #: Ranking tasks: how many ranked items `surrogate` reads. The search ranks only that deep, which
    #: sets the beam width for subword ids (half the decoding work at 5 instead of 10).
    surrogate_depth: int = 10

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
    def metrics(self, predictions: Any, examples: Sequence[Example]) -> dict[str, float]:
        """Full test metrics. Ranking: `predictions` is a [N, K] int tensor/array of ranked item
        indices (best first, K >= 10); rating: a [N] float array of predicted ratings."""

    @abstractmethod
    def surrogate(self, predictions: Any, examples: Sequence[Example]) -> Any:
        """Per-example surrogate values (higher is better) as a float array of length N; the search
        averages them. Ranking: NDCG@5 + HR@5; rating: negative squared error."""

    def manual(self, template_id: str | None = None) -> Template:
        wanted = template_id or self.default_template
        for template in self.templates:
            if template.id == wanted:
                return template
        from paprec_cli.errors import unknown_name

        raise unknown_name(f"template of task {self.name}", wanted, [t.id for t in self.templates], "--template")
