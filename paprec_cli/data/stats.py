"""Dataset statistics: counts, density, sequence lengths, ratings, attributes and provenance of an import.

What `paprec data info` prints (`describe`); reads the stored tables and manifest only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import polars as pl

from paprec_cli.data.store import Dataset


class SequenceLengths(TypedDict):
    """Interactions per user."""

    min: int
    mean: float
    median: float
    max: int


class DatasetInfo(TypedDict):
    """What `paprec data info --json` prints."""

    name: str
    dataset: str
    users: int
    items: int
    interactions: int
    density: float
    sequence_length: SequenceLengths
    repeat_interactions: int
    rating_histogram: dict[str, int] | None
    unrated_interactions: int  # interactions without a rating (all of them on a dataset without ratings)
    with_timestamp: int
    layout: str | None  # the source files' layout (e.g. McAuley 2014/2018/2023), when the loader recorded one
    duplicates_removed: int | None  # exact duplicate records dropped before k-core; None: not counted then
    encodings: dict[str, str]  # source file name -> the text encoding it was read with
    items_with_attributes: int
    distinct_attributes: int
    items_with_title: int
    users_with_name: int
    indexing: str
    tie_break: str
    seed: int | None
    options: dict[str, str]
    extras: list[str]
    fingerprint: str
    sources: list[dict[str, Any]]  # path, sha256 (and size) of each file read
    created: str | None
    folder: str


def describe(dataset: Dataset) -> DatasetInfo:
    """Counts and shape statistics of an imported dataset (what `data info` prints)."""
    table = dataset.interactions
    manifest = dataset.manifest
    lengths = table.group_by("user_idx").len()["len"].to_numpy()
    users, items, n = dataset.n_users, dataset.n_items, table.height
    histogram: dict[str, int] | None = None
    if dataset.has_ratings:
        counts = table.filter(pl.col("rating").is_not_null()).group_by("rating").len().sort("rating")
        histogram = {_rating_key(r): int(c) for r, c in zip(counts["rating"], counts["len"], strict=True)}
    repeats = n - table.select("user_idx", "item_idx").unique().height
    attrs = dataset.items["attributes"]
    return {
        "name": dataset.name,
        "dataset": manifest.get("dataset", dataset.name),
        "users": users,
        "items": items,
        "interactions": n,
        "density": n / (users * items) if users and items else 0.0,
        "sequence_length": {
            "min": int(lengths.min()),
            "mean": round(float(lengths.mean()), 3),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
        "repeat_interactions": repeats,
        "rating_histogram": histogram,
        "unrated_interactions": n - (sum(histogram.values()) if histogram is not None else 0),
        "with_timestamp": int(manifest["counts"].get("with_timestamp", 0)),
        "layout": manifest.get("layout") or manifest.get("notes", {}).get("format"),
        "duplicates_removed": manifest["counts"].get("duplicates_removed"),
        "encodings": {Path(s["path"]).name: s["encoding"] for s in manifest.get("sources", []) if s.get("encoding")},
        "items_with_attributes": int((attrs.list.len() > 0).sum()),
        "distinct_attributes": int(attrs.explode().drop_nulls().n_unique()),
        "items_with_title": int(dataset.items["title"].is_not_null().sum()),
        "users_with_name": len(dataset.user_names),
        "indexing": manifest["indexing"],
        "tie_break": manifest["tie_break"],
        "seed": manifest.get("seed"),
        "options": manifest.get("options", {}),
        "extras": manifest.get("extras", []),
        "fingerprint": dataset.fingerprint,
        "sources": manifest.get("sources", []),
        "created": manifest.get("created"),
        "folder": str(dataset.folder),
    }


def _rating_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
