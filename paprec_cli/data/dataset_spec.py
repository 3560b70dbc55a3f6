"""What a dataset plugin registers and returns: `DatasetSpec`, `ImportOptions`, `RawDataset` and the
canonical table schemas.

The lowest layer of the data path (it imports nothing from paprec): the data layer (`table`, `store`)
and `paprec_cli.specs` (which re-exports these names for plugins) both build on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

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
    #: How a text file was decoded (`paprec_cli.textio.Decoded.encoding`); None for binary files.
    encoding: str | None = None


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
    #: User attributes, one row per raw user id: `user` (str) and `name` (str or null; e.g. McAuley's
    #: `reviewerName`). None: the source has none. Stored in `users.parquet`; the P5 input protocol writes
    #: the name in the templates where P5 wrote it (`paprec_cli.specs.Template.user_name`).
    users: pl.DataFrame | None = None


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
