"""Validation and normalisation of the canonical tables a dataset loader returns."""

from __future__ import annotations

import polars as pl

from paprec_cli.data.dataset_spec import INTERACTION_SCHEMA, ITEM_SCHEMA, RawDataset
from paprec_cli.errors import PaprecError


def empty_items() -> pl.DataFrame:
    return pl.DataFrame(schema=ITEM_SCHEMA)


#: The fields that make two interaction records the same record.
RECORD_KEY = ("user", "item", "rating", "timestamp")


def drop_exact_duplicates(table: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop repeated records (same user, item, rating and timestamp), keeping the first in file order.

    Only timestamped records are compared: without a timestamp (P5 sequence files) a repeated item
    is a revisit, not a duplicate, and stays. Returns the table and how many rows were dropped.
    """
    if "timestamp" not in table.columns:
        return table, 0
    key = [c for c in RECORD_KEY if c in table.columns]
    duplicate = pl.col("timestamp").is_not_null() & ~pl.struct(key).is_first_distinct()
    kept = table.filter(~duplicate)
    return kept, table.height - kept.height


def normalise(raw: RawDataset, dataset: str) -> RawDataset:
    """Cast to the canonical schema, drop exact duplicate records (unless the loader did and recorded
    `notes["duplicates_removed"]`), and reject what no later step could use."""
    table = raw.interactions
    missing = [c for c in ("user", "item") if c not in table.columns]
    if missing:
        raise PaprecError(f"dataset '{dataset}': loader returned no {missing} column(s); this is a plugin bug")
    for column, dtype in INTERACTION_SCHEMA.items():
        if column not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=dtype).alias(column))
    if table["order"].null_count() == table.height:
        table = table.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("order"))
    table = table.select([pl.col(c).cast(t) for c, t in INTERACTION_SCHEMA.items()])
    if table.height == 0:
        raise PaprecError(f"dataset '{dataset}': no interactions were read; check the files given with --from")
    if table["user"].null_count() or table["item"].null_count():
        raise PaprecError(f"dataset '{dataset}': some interactions have no user or item id")
    check_finite_ratings(table, raw, dataset)
    notes = dict(raw.notes)
    if "duplicates_removed" not in notes:  # a loader that deduplicated itself (at its own precision) says so
        table, notes["duplicates_removed"] = drop_exact_duplicates(table)
    items = raw.items if raw.items.height else empty_items()
    for column, dtype in ITEM_SCHEMA.items():
        if column not in items.columns:
            items = items.with_columns(pl.lit(None, dtype=dtype).alias(column))
    items = items.select([pl.col(c).cast(t) for c, t in ITEM_SCHEMA.items()]).unique("item", keep="first")
    return RawDataset(table, items, raw.sources, raw.extras, notes, users=normalise_users(raw.users, dataset))


def check_finite_ratings(table: pl.DataFrame, raw: RawDataset, dataset: str) -> None:
    """Refuse a rating that is NaN or infinite (a text "nan" or "inf" parses as a float): a NaN would be read as
    unrated by some steps and counted as a rating value by others. The built-in loaders refuse it at its line;
    this is the check every loader (plugins too) passes through. Raises `PaprecError` naming the first record."""
    bad = table.filter(pl.col("rating").is_not_null() & ~pl.col("rating").is_finite())
    if bad.height == 0:
        return
    row = bad.row(0, named=True)
    files = ", ".join(str(source.path) for source in raw.sources) or "the files given with --from"
    raise PaprecError(f"dataset '{dataset}': {bad.height} rating(s) are not finite numbers (first: user {row['user']}, "
                      f"item {row['item']}, rating {row['rating']}) in {files}; give each a number or leave it empty "
                      "(an empty rating is an unrated interaction)")


def normalise_users(users: pl.DataFrame | None, dataset: str) -> pl.DataFrame | None:
    """`user` (str) and `name` (str, null when unknown; blank names are null), one row per user; None stays None."""
    if users is None:
        return None
    if "user" not in users.columns or "name" not in users.columns:
        raise PaprecError(f"dataset '{dataset}': loader returned a users table without user/name columns; "
                          "this is a plugin bug")
    name = pl.col("name").cast(pl.String).str.strip_chars()
    return (users.select(pl.col("user").cast(pl.String), pl.when(name == "").then(None).otherwise(name).alias("name"))
            .unique("user", keep="last", maintain_order=True))
