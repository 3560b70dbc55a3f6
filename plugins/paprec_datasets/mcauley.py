"""McAuley's raw Amazon 2014 files: `reviews_<Category>_5.json.gz` and optional `meta_<Category>.json.gz`.

Reviews: one object per line with reviewerID, asin, overall (1-5) and unixReviewTime; strict JSON lines
or the older Python-dict-literal lines (both are read). Meta: asin, title, brand, categories (a list of
category paths); an item's attributes are its brand and the words of its category paths without the
root (the root is the same for every item, as in P5's attributes). The 5-core filter (every user and
every item with at least `core` interactions) is applied iteratively until nothing changes; the
original 5-core files already satisfy it, so then it removes nothing. Ties in time keep file order.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
import zlib
from pathlib import Path

import polars as pl

from paprec_cli.errors import DataFormatError
from paprec_cli.specs import RawDataset
from paprec_datasets.common import decode, shorten, source_of

REVIEW_SCHEMA = {"reviewerID": pl.String, "asin": pl.String, "overall": pl.Float64, "unixReviewTime": pl.Int64}
REVIEW_EXPECTED = "one JSON object per line with reviewerID, asin, overall and unixReviewTime"
META_EXPECTED = "one JSON (or Python dict) object per line with asin and optionally title, brand, categories"
_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']+)["']""")


def read_gzip_text(path: Path) -> str:
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(path, None, f"cannot decompress ({exc})", "a gzip-compressed file (.json.gz)") from None
    if not data.strip():
        raise DataFormatError(path, None, "the file is empty", "at least one review line")
    return decode(path, data, "utf-8")


def parse_object(text: str) -> object:
    """A strict JSON object, or a Python dict literal (the 2014 files' older format)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def read_reviews(path: Path) -> pl.DataFrame:
    """user, item, rating, timestamp, order; fast path through polars, line-by-line to report errors."""
    text = read_gzip_text(path)
    try:
        frame = pl.read_ndjson(io.BytesIO(text.encode("utf-8")), schema=REVIEW_SCHEMA)
        if frame.null_count().sum_horizontal().item() != 0 or frame.height != _count_lines(text):
            frame = _read_reviews_slowly(path, text)
    except pl.exceptions.PolarsError:
        frame = _read_reviews_slowly(path, text)
    return frame.select(
        pl.col("reviewerID").alias("user"),
        pl.col("asin").alias("item"),
        pl.col("overall").alias("rating"),
        pl.col("unixReviewTime").alias("timestamp"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("order"),
    )


def _count_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.strip())


def _read_reviews_slowly(path: Path, text: str) -> pl.DataFrame:
    rows: list[tuple[str, str, float, int]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj = parse_object(line)
        if not isinstance(obj, dict):
            raise DataFormatError(path, number, f"'{shorten(line.strip())}' is not a JSON object", REVIEW_EXPECTED)
        try:
            rating = float(obj["overall"])
            stamp = int(obj["unixReviewTime"])
            user, item = obj["reviewerID"], obj["asin"]
        except KeyError as exc:
            raise DataFormatError(path, number, f"the review has no {exc.args[0]}", REVIEW_EXPECTED) from None
        except (TypeError, ValueError):
            raise DataFormatError(path, number, "overall/unixReviewTime is not a number", REVIEW_EXPECTED) from None
        if not isinstance(user, str) or not isinstance(item, str) or not user or not item:
            raise DataFormatError(path, number, "reviewerID/asin is not a non-empty string", REVIEW_EXPECTED)
        rows.append((user, item, rating, stamp))
    return pl.DataFrame(rows, schema=REVIEW_SCHEMA, orient="row")


def k_core(table: pl.DataFrame, core: int) -> tuple[pl.DataFrame, int]:
    """Drop users and items with fewer than `core` interactions until none is left; returns rounds."""
    rounds = 0
    while True:
        kept = table.filter((pl.len().over("user") >= core) & (pl.len().over("item") >= core))
        if kept.height == table.height:
            return kept, rounds
        table, rounds = kept, rounds + 1


def read_meta(path: Path, wanted: set[str]) -> pl.DataFrame:
    """item, title, attributes for the items in `wanted` (other lines are skipped without parsing)."""
    text = read_gzip_text(path)
    items, titles, attrs = [], [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        found = _ASIN.search(line)
        if found is None:
            raise DataFormatError(path, number, f"'{shorten(line.strip())}' has no asin", META_EXPECTED)
        if found.group(1) not in wanted:
            continue
        obj = parse_object(line)
        if not isinstance(obj, dict):
            raise DataFormatError(path, number, f"'{shorten(line.strip())}' is not an object", META_EXPECTED)
        words: list[str] = []
        brand = obj.get("brand")
        if isinstance(brand, str) and brand.strip():
            words.append(brand.strip())
        for category_path in obj.get("categories") or []:
            if isinstance(category_path, list):
                for word in category_path[1:]:
                    if isinstance(word, str) and word.strip() and word.strip() not in words:
                        words.append(word.strip())
        title = obj.get("title")
        items.append(str(obj.get("asin")))
        titles.append(title.strip() if isinstance(title, str) and title.strip() else None)
        attrs.append(words)
    return pl.DataFrame(
        {"item": items, "title": titles, "attributes": attrs},
        schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)},
    )


def load_raw(reviews: Path, meta: Path | None, core: int) -> RawDataset:
    table = read_reviews(reviews)
    before = table.height
    table, rounds = k_core(table, core)
    if table.height == 0:
        raise DataFormatError(reviews, None, f"no interactions survive the {core}-core filter", "a 5-core review file")
    sources = [source_of(reviews)]
    items = pl.DataFrame(schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)})
    if meta is not None:
        items = read_meta(meta, set(table["item"].unique().to_list()))
        sources.append(source_of(meta))
    notes = {
        "format": "McAuley raw reviews (+ meta)" if meta else "McAuley raw reviews",
        "core": core,
        "core_rounds": rounds,
        "removed_by_core": before - table.height,
        "attributes": "brand + category path words without the root" if meta else "none (no meta file)",
    }
    return RawDataset(table, items, sources=sources, notes=notes)
