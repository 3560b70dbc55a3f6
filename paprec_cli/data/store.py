"""Import a dataset into the data home (Parquet + manifest) and load it back.

Layout of `<home>/data/<name>/`: `interactions.parquet` (user, item, rating, timestamp, order,
user_idx, item_idx, pos), `items.parquet` (item_idx, item, title, attributes), `users.parquet`
(user_idx, user[, name]: the user's name where the source has one, e.g. McAuley's reviewerName),
`extra_<name>.parquet` for tables never shown to a model, `manifest.json`.
The whole folder is written to a temporary sibling and renamed, so a failed import leaves nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from paprec_cli import __version__
from paprec_cli.data.dataset_spec import DatasetSpec, ImportOptions
from paprec_cli.data.reimport import reimport_fix
from paprec_cli.data.table import normalise
from paprec_cli.errors import PaprecError, first_line
from paprec_cli.paths import Home, atomic_path, read_json_object

Indexing = Literal["random", "sequential"]
TieBreak = Literal["source", "item"]

MANIFEST_VERSION = 1


def order_interactions(table: pl.DataFrame, tie_break: TieBreak) -> pl.DataFrame:
    """Sort each user's interactions by time with an explicit, recorded tie-break.

    "source": equal (or missing) timestamps keep the order of the source file; "item": ties are
    broken by raw item id, numerically where the id is an integer (so "9" comes before "10"), other
    ids after them, as text; remaining ties keep file order. Adds `pos`, the 0-based position in
    the user's sequence.
    """
    if tie_break == "source":
        ordered = table.sort(["user", "timestamp", "order"], nulls_last=False, maintain_order=True)
    else:
        numeric = pl.col("item").cast(pl.Int64, strict=False).alias("_item_number")
        ordered = (
            table.with_columns(numeric)
            .sort(["user", "timestamp", "_item_number", "item", "order"], nulls_last=[False, False, True, False, False])
            .drop("_item_number")
        )
    return ordered.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("user").alias("pos"))


def assign_indices(
    table: pl.DataFrame, indexing: Indexing, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Map raw ids to 1-based indices (0 stays free for padding).

    Users are numbered by first appearance in the source. Items: "sequential" numbers them in order
    of first appearance when reading users' time-ordered sequences (P5's scheme, which leaks order
    information into ids); "random" is a seeded permutation (leak-free, the default).
    """
    first_user = table.group_by("user").agg(pl.col("order").min().alias("first")).sort("first")
    users = first_user.select(pl.col("user"), pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("user_idx"))
    with_users = table.join(users, on="user", how="left")
    by_sequence = with_users.sort(["user_idx", "pos"])
    item_order = by_sequence.select("item").unique(maintain_order=True)["item"]
    n_items = item_order.len()
    if indexing == "sequential":
        idx = np.arange(1, n_items + 1, dtype=np.int64)
    else:
        idx = np.random.default_rng(seed).permutation(n_items).astype(np.int64) + 1
    items = pl.DataFrame({"item": item_order, "item_idx": idx})
    indexed = with_users.join(items, on="item", how="left")
    return indexed, users, items


def import_dataset(
    spec: DatasetSpec,
    source: Path | None,
    home: Home,
    *,
    name: str | None = None,
    indexing: Indexing = "random",
    tie_break: TieBreak | None = None,
    options: ImportOptions | None = None,
) -> dict[str, Any]:
    """Load raw files with the dataset's plugin, index, and store. Returns the manifest."""
    options = options or ImportOptions()
    if spec.needs_files and source is None:
        raise PaprecError(f"dataset '{spec.name}' needs --from PATH pointing at {spec.files}")
    if source is not None and not source.exists():
        raise PaprecError(f"--from {source}: no such file or folder; point it at {spec.files}")
    started = time.time()
    raw = normalise(spec.load(source, options), spec.name)
    tie = tie_break or spec.default_tie_break
    ordered = order_interactions(raw.interactions, tie)
    indexed, users, items = assign_indices(ordered, indexing, options.seed)
    if raw.users is not None:  # user attributes (names) of the users that survived the loader's filters
        users = users.join(raw.users, on="user", how="left")
    item_meta = items.join(raw.items, on="item", how="left").with_columns(
        pl.col("attributes").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    ).sort("item_idx")
    indexed = indexed.sort(["user_idx", "pos"])
    target_name = name or spec.name
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "name": target_name,
        "dataset": spec.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "paprec_version": __version__,
        **({"from": str(source.resolve())} if source is not None else {}),  # the fix line's `--from`
        "sources": [
            {"path": str(s.path), "sha256": s.sha256, **({"encoding": s.encoding} if s.encoding else {})}
            for s in raw.sources
        ],
        "indexing": indexing,
        "tie_break": tie,
        "seed": options.seed,
        "options": dict(options.extra),
        "counts": {
            "users": users.height,
            "items": items.height,
            "interactions": indexed.height,
            "with_rating": int(indexed["rating"].is_not_null().sum()),
            "with_timestamp": int(indexed["timestamp"].is_not_null().sum()),
            "duplicates_removed": int(raw.notes.get("duplicates_removed", 0)),
            "with_name": int(users["name"].is_not_null().sum()) if "name" in users.columns else 0,
        },
        "layout": str(raw.notes.get("layout") or raw.notes.get("format") or spec.name),
        "extras": sorted(raw.extras),
        "notes": raw.notes,
        "import_seconds": round(time.time() - started, 3),
    }
    manifest["fingerprint"] = fingerprint(indexed)
    from paprec_cli.locks import acquire, lock_path

    acquire(lock_path(home.dataset_dir(target_name)), f"dataset '{target_name}'")  # one writer; no reader
    with atomic_path(home.dataset_dir(target_name)) as folder:
        folder.mkdir(parents=True)
        indexed.write_parquet(folder / "interactions.parquet")
        item_meta.write_parquet(folder / "items.parquet")
        users.write_parquet(folder / "users.parquet")
        for key, extra in raw.extras.items():
            extra.write_parquet(folder / f"extra_{key}.parquet")
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def fingerprint(indexed: pl.DataFrame) -> str:
    """A short content hash of the indexed interactions (models and runs record it)."""
    import hashlib

    digest = hashlib.sha256()
    for column in ("user_idx", "item_idx", "pos"):
        digest.update(indexed[column].to_numpy().astype(np.int64).tobytes())
    ratings = indexed["rating"].fill_null(-1.0).to_numpy().astype(np.float64)
    digest.update(ratings.tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Dataset:
    """An imported dataset, loaded lazily from the data home."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @cached_property
    def interactions(self) -> pl.DataFrame:
        """user_idx, item_idx, pos, rating (null: unrated), ...; a NaN or infinite rating (an import made before
        imports refused them, or an edited file) is a one-line `PaprecError` naming the file and the fix."""
        table = self._table("interactions.parquet", ("user_idx", "item_idx", "pos", "rating"))
        ratings = table["rating"]
        if ratings.dtype.is_float() and not ratings.drop_nulls().is_finite().all():
            bad = int((~ratings.drop_nulls().is_finite()).sum())
            raise PaprecError(f"{self.folder / 'interactions.parquet'}: {bad} rating(s) are not finite numbers (NaN "
                              f"or infinite); {reimport_fix(self.manifest, self.folder)}")
        return table

    @cached_property
    def items(self) -> pl.DataFrame:
        """item_idx, item (raw id), title, attributes; one row per item, sorted by item_idx."""
        return self._table("items.parquet", ("item_idx", "item"))

    @cached_property
    def users(self) -> pl.DataFrame:
        return self._table("users.parquet", ("user_idx", "user"))

    def _table(self, file: str, columns: tuple[str, ...] = ()) -> pl.DataFrame:
        """One of the dataset's Parquet tables; a missing, truncated or damaged file, or a missing column, is a
        one-line `PaprecError` naming the file and the fix (re-import)."""
        path = self.folder / file
        table = _check_table(path, reimport_fix(self.manifest, self.folder), columns, schema_only=False)
        assert table is not None  # read whole when not schema_only
        return table

    @property
    def n_users(self) -> int:
        return int(self.manifest["counts"]["users"])

    @property
    def n_items(self) -> int:
        return int(self.manifest["counts"]["items"])

    @property
    def has_ratings(self) -> bool:
        return int(self.manifest["counts"]["with_rating"]) > 0

    @property
    def source_name(self) -> str:
        """The registered dataset it was imported from (`beauty` for `--name p5beauty`); its own name for
        manifests written before the field existed. Rules that depend on what the data *is* (P5's history
        length per dataset family) read this, never the user's name for it."""
        return str(self.manifest.get("dataset") or self.name)

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    def extra(self, key: str) -> pl.DataFrame:
        path = self.folder / f"extra_{key}.parquet"
        if not path.exists():
            raise PaprecError(f"dataset '{self.name}' has no '{key}' table (available: {self.manifest['extras']})")
        return self._table(path.name)

    @cached_property
    def sequences(self) -> list[np.ndarray]:
        """Per-user time-ordered item indices; `sequences[u]` for user index u (entry 0 is empty)."""
        table = self.interactions.sort(["user_idx", "pos"])
        lists = table.group_by("user_idx", maintain_order=True).agg(pl.col("item_idx"))
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(self.n_users + 1)]
        for user, items in zip(lists["user_idx"].to_list(), lists["item_idx"].to_list(), strict=True):
            out[user] = np.asarray(items, dtype=np.int64)
        return out

    @cached_property
    def rating_sequences(self) -> list[np.ndarray]:
        """Per-user ratings aligned with `sequences` (float64; NaN where an interaction has no rating)."""
        table = self.interactions.sort(["user_idx", "pos"])
        lists = table.group_by("user_idx", maintain_order=True).agg(pl.col("rating").cast(pl.Float64))
        out: list[np.ndarray] = [np.zeros(0, dtype=np.float64) for _ in range(self.n_users + 1)]
        for user, ratings in zip(lists["user_idx"].to_list(), lists["rating"].to_list(), strict=True):
            out[user] = np.asarray([np.nan if r is None else r for r in ratings], dtype=np.float64)
        return out

    @cached_property
    def has_rating_scale(self) -> bool:
        """Whether the interactions carry ratings of at least two values, so ratings can weigh a history (the
        liked rule: `references.training_weights`, which takes its midpoint from the training ratings)."""
        return self.interactions["rating"].drop_nulls().n_unique() > 1

    @cached_property
    def item_attributes(self) -> list[list[str]]:
        """`item_attributes[i]` for item index i (entry 0 is empty)."""
        out: list[list[str]] = [[] for _ in range(self.n_items + 1)]
        for idx, attrs in zip(self.items["item_idx"].to_list(), self.items["attributes"].to_list(), strict=True):
            out[idx] = list(attrs or [])
        return out

    @cached_property
    def user_names(self) -> dict[int, str]:
        """user_idx -> the user's name, for users whose source gave one (empty without a `name` column)."""
        users = self.users
        if "name" not in users.columns:
            return {}
        named = users.filter(pl.col("name").is_not_null())
        return dict(zip(named["user_idx"].to_list(), named["name"].to_list(), strict=True))

    def user_raw_id(self, user_idx: int) -> str:
        return str(self.users.filter(pl.col("user_idx") == user_idx)["user"][0])

    def user_index(self, raw_or_index: str) -> int:
        """Accept a raw user id, `user_12`, or a plain index; error if unknown."""
        match = self.users.filter(pl.col("user") == raw_or_index)
        if match.height:
            return int(match["user_idx"][0])
        text = raw_or_index.removeprefix("user_")
        if text.isdigit() and 1 <= int(text) <= self.n_users:
            return int(text)
        raise PaprecError(
            f"--user {raw_or_index}: not a user of dataset '{self.name}' (raw ids, user_N or 1..{self.n_users})"
        )


#: The tables every import writes, with the columns paprec reads from each.
TABLES: dict[str, tuple[str, ...]] = {
    "interactions.parquet": ("user_idx", "item_idx", "pos", "rating"),
    "items.parquet": ("item_idx", "item"),
    "users.parquet": ("user_idx", "user"),
}


def _check_table(path: Path, fix: str, columns: tuple[str, ...], *,
                 schema_only: bool = True) -> pl.DataFrame | None:
    """Raise a one-line `PaprecError` naming `path` and `fix` (the re-import command, `reimport.reimport_fix`)
    when the Parquet file is missing, truncated or damaged, or lacks one of `columns`. With `schema_only` only
    the footer is read (a few kilobytes: cheap enough for `data list`) and None returned; else the whole table
    is read, checked and returned."""
    if not path.is_file():
        raise PaprecError(f"{path}: missing; {fix}")
    try:
        table = None if schema_only else pl.read_parquet(path)
        present = list(pl.read_parquet_schema(path)) if table is None else table.columns
    except OSError:
        raise  # permissions and the like: the error boundary names the path and the fix
    except Exception as err:  # polars raises several error types for a truncated or damaged file
        first = first_line(err)
        raise PaprecError(f"{path}: not a readable Parquet file, truncated or damaged ({type(err).__name__}: "
                          f"{first}); {fix}") from None
    missing = [column for column in columns if column not in present]
    if missing:
        raise PaprecError(f"{path}: missing column(s) {', '.join(missing)}; {fix}")
    return table


def check_tables(folder: Path, manifest: dict[str, Any]) -> None:
    """Every Parquet table of an import (the three core tables and each `extras` table its manifest lists),
    checked from its footer alone: a truncated or damaged file, or a missing column, is a one-line
    `PaprecError` naming the file and the fix (re-import with --force)."""
    fix = reimport_fix(manifest, folder)
    for file, columns in TABLES.items():
        _check_table(folder / file, fix, columns)
    for key in manifest.get("extras", []):
        _check_table(folder / f"extra_{key}.parquet", fix, ())


def dataset_exists(home: Home, name: str) -> bool:
    return (home.dataset_dir(name) / "manifest.json").exists()


def load_dataset(home: Home, name: str) -> Dataset:
    folder = home.dataset_dir(name)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        imported = sorted(p.name for p in home.data.glob("*") if (p / "manifest.json").exists())
        hint = f"imported: {', '.join(imported)}" if imported else "nothing imported yet"
        raise PaprecError(
            f"dataset '{name}' is not imported in {home.data} ({hint}); run `paprec data import {name} --from PATH`"
        )
    from paprec_cli.locks import acquire, lock_path

    acquire(lock_path(folder), f"dataset '{name}'", shared=True)  # no import replaces it while this command reads
    manifest = read_manifest(manifest_path)
    check_tables(folder, manifest)  # a truncated table is an error now, naming the file, not a traceback later
    return Dataset(name=name, folder=folder, manifest=manifest)


#: Fields every dataset manifest has, with their JSON types (the rest is descriptive).
_MANIFEST_FIELDS: dict[str, type] = {"name": str, "fingerprint": str, "counts": dict}
#: Fields every import writes that `data info` and the splits read (checked after the counts).
_IMPORT_FIELDS: dict[str, type] = {"dataset": str, "indexing": str, "tie_break": str, "sources": list, "extras": list}
#: Fields that may be absent (older manifests) but, when present, have these types.
_OPTIONAL_FIELDS: dict[str, type] = {"options": dict, "notes": dict, "from": str}
#: The values an import writes for these fields.
_CHOICES: dict[str, tuple[str, ...]] = {"indexing": ("random", "sequential"), "tie_break": ("source", "item")}
_COUNT_FIELDS = ("users", "items", "with_rating")


def read_manifest(path: Path) -> dict[str, Any]:
    """A dataset's `manifest.json`, checked: a JSON object with `name` and `fingerprint` strings and integer
    `counts.users`, `counts.items`, `counts.with_rating`. Raises `PaprecError` naming the file and field."""
    data = read_json_object(path, reimport_fix(None, path.parent))
    fix = reimport_fix(data, path.parent)
    for key, kind in _MANIFEST_FIELDS.items():
        if not isinstance(data.get(key), kind):
            raise PaprecError(f"{path}: field '{key}' is missing or not a {kind.__name__}; {fix}")
    for key in _COUNT_FIELDS:
        value = data["counts"].get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PaprecError(f"{path}: field 'counts.{key}' is missing or not a non-negative integer; {fix}")
    for key, kind in _IMPORT_FIELDS.items():
        if not isinstance(data.get(key), kind):
            raise PaprecError(f"{path}: field '{key}' is missing or not a {kind.__name__}; {fix}")
    for key, kind in _OPTIONAL_FIELDS.items():
        if key in data and not isinstance(data[key], kind):
            raise PaprecError(f"{path}: field '{key}' is not a {kind.__name__}; {fix}")
    for key, allowed in _CHOICES.items():
        if data[key] not in allowed:
            raise PaprecError(f"{path}: field '{key}' is {data[key]!r}, expected one of {', '.join(allowed)}; {fix}")
    if not all(isinstance(e, str) for e in data["extras"]):
        raise PaprecError(f"{path}: field 'extras' must list table names (strings); {fix}")
    if not all(isinstance(e, dict) for e in data["sources"]):
        raise PaprecError(f"{path}: field 'sources' must list objects (one per source file); {fix}")
    return data


def list_imported(home: Home) -> list[dict[str, Any]]:
    """Each imported dataset's manifest, in name order; a broken one is `{"name": folder, "broken": why}`
    (a readable manifest whose Parquet tables are truncated or damaged keeps its fields and gains `broken`),
    so that one bad folder never hides the others. Tables are checked from their footers only."""
    out: list[dict[str, Any]] = []
    for folder in sorted(home.data.glob("*")):
        path = folder / "manifest.json"
        if path.exists():
            try:
                manifest = read_manifest(path)
            except PaprecError as err:
                out.append({"name": folder.name, "broken": str(err)})
                continue
            try:
                check_tables(folder, manifest)
            except PaprecError as err:  # the manifest is fine: keep its counts, say what is broken
                manifest = {**manifest, "broken": str(err)}
            out.append(manifest)
    return out
