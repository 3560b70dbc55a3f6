"""McAuley's raw Amazon review files in the 2014, 2018 and 2023 releases.

Layouts (file names and fields; sources: the release pages
https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html (2014),
https://nijianmo.github.io/amazon/index.html (2018, "Amazon Review Data (2018)", Ni et al. EMNLP 2019),
https://amazon-reviews-2023.github.io/ and the Hugging Face card McAuley-Lab/Amazon-Reviews-2023 (2023)):

* 2014: `reviews_<Category>_5.json.gz` (reviewerID, asin, overall, unixReviewTime in seconds) and
  `meta_<Category>.json.gz` (Python dict literals: asin, title, brand, `categories` = a list of category
  paths, each a list whose first entry is the root).
* 2018: `<Category>_5.json.gz` (same review fields as 2014, strict JSON) and `meta_<Category>.json.gz`
  (strict JSON: asin, title, brand, `category` = one flat path whose first entry is the root, `main_cat`).
* 2023: `<Category>.jsonl[.gz]` (user_id, parent_asin, rating, `timestamp` in milliseconds; the item id
  is `parent_asin`, as the release recommends, not the variant `asin`) and `meta_<Category>.jsonl[.gz]`
  (parent_asin, title, store, `categories` = one flat path whose first entry is the root, `main_category`).

The layout is found from the fields of the first review (2023 when it has user_id / parent_asin) and,
for the shared 2014/2018 fields, from the file name; it is recorded in the manifest. Metadata is read
by its own fields line by line (a 2018 meta file under the 2014 name is read as 2018). An item's
attributes are its brand (2023: store) and the words of its category path(s) without the root (the root
is the same for every item of a category file, as in P5's attributes). Every line may be strict JSON
or a Python dict literal. Exact duplicate reviews (same user, item, rating and time, which occur in the
releases) are removed before the k-core filter; the filter keeps users with at least `core` distinct
items and items with at least `core` distinct users, applied until nothing changes. Millisecond times
become seconds in `timestamp`; the sub-second order is kept as the tie-break (`order`).
"""

from __future__ import annotations

import ast
import gzip
import html
import io
import json
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from paprec_cli.data.table import drop_exact_duplicates
from paprec_cli.errors import DataFormatError
from paprec_cli.specs import RawDataset
from paprec_cli.textio import Decoded, decode_bytes
from paprec_datasets.common import shorten, source_of


@dataclass(frozen=True)
class ReviewLayout:
    """Where a release keeps the review fields; `per_second` is 1000 for millisecond timestamps."""

    name: str
    user: str
    item: str
    rating: str
    time: str
    per_second: int = 1
    #: The reviewer's display name (2014/2018 `reviewerName`; optional per line); None: the release has none.
    reviewer_name: str | None = None

    @property
    def expected(self) -> str:
        return f"one JSON object per line with {self.user}, {self.item}, {self.rating} and {self.time}"

    @property
    def schema(self) -> dict[str, type[pl.DataType]]:
        fields = {self.user: pl.String, self.item: pl.String, self.rating: pl.Float64, self.time: pl.Int64}
        return {**fields, self.reviewer_name: pl.String} if self.reviewer_name else fields

    @property
    def required(self) -> list[str]:
        return [self.user, self.item, self.rating, self.time]


LAYOUTS = {
    "2014": ReviewLayout("McAuley 2014", "reviewerID", "asin", "overall", "unixReviewTime", 1, "reviewerName"),
    "2018": ReviewLayout("McAuley 2018", "reviewerID", "asin", "overall", "unixReviewTime", 1, "reviewerName"),
    "2023": ReviewLayout("McAuley 2023", "user_id", "parent_asin", "rating", "timestamp", per_second=1000),
}
META_EXPECTED = (
    "one JSON (or Python dict) object per line with asin (2023: parent_asin) and optionally title, "
    "brand/store, categories/category"
)
_PARENT = re.compile(r"""["']parent_asin["']\s*:\s*["']([^"']+)["']""")
_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']+)["']""")
#: What each metadata form contributes to the attribute words (recorded in the manifest).
META_FORMS = {
    "2014": "brand + words of the category paths without the root (2014 'categories')",
    "2018": "brand + words of the category list without the root (2018 'category')",
    "2023": "store + words of the category list without the root (2023 'categories')",
}


def read_file_text(path: Path, declared: str | None = None) -> Decoded:
    """The text of a review/meta file, gzip-compressed (by its magic bytes) or not, via the shared reader."""
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif path.name.endswith(".gz"):
            raise OSError("not a gzip file")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(path, None, f"cannot decompress ({exc})", "a gzip-compressed file (.json.gz)") from None
    if not data.strip():
        raise DataFormatError(path, None, "the file is empty", "at least one line")
    return decode_bytes(path, data, declared, None, "--option encoding=NAME")


def read_gzip_text(path: Path) -> str:
    """The decoded text of a (gzip) file; kept for callers of the older name."""
    return read_file_text(path).text


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


def review_layout(path: Path, text: str) -> ReviewLayout:
    """The layout of a review file: 2023 by its fields, else 2014 (`reviews_*`) or 2018 by the file name."""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj = parse_object(line)
        if not isinstance(obj, dict):
            problem = f"'{shorten(line.strip())}' is not a JSON object"
            raise DataFormatError(path, number, problem, LAYOUTS["2014"].expected)
        if "user_id" in obj or "parent_asin" in obj:
            return LAYOUTS["2023"]
        if "reviewerID" in obj or "unixReviewTime" in obj or "overall" in obj:
            return LAYOUTS["2014"] if path.name.startswith("reviews_") else LAYOUTS["2018"]
        fields = ", ".join(sorted(obj)[:8])
        raise DataFormatError(
            path, number, f"the review has none of the known fields (found: {fields})",
            "McAuley 2014/2018 fields (reviewerID, asin, overall, unixReviewTime) or 2023 fields "
            "(user_id, parent_asin, rating, timestamp)",
        )  # fmt: skip
    raise DataFormatError(path, None, "the file is empty", "at least one review line")


def read_reviews(path: Path, declared: str | None = None) -> tuple[pl.DataFrame, ReviewLayout, str]:
    """user, item, rating, timestamp (in the layout's unit), order, name (the reviewer's name, null where a
    line has none or the release has no names); plus the layout and encoding used.

    Fast path through polars, line by line to report errors at file:line."""
    decoded = read_file_text(path, declared)
    text = decoded.text
    layout = review_layout(path, text)
    try:
        frame = pl.read_ndjson(io.BytesIO(text.encode("utf-8")), schema=layout.schema)
        if (frame.select(layout.required).null_count().sum_horizontal().item() != 0
                or frame.height != _count_lines(text) or not frame[layout.rating].is_finite().all()):
            frame = _read_reviews_slowly(path, text, layout)
    except pl.exceptions.PolarsError:
        frame = _read_reviews_slowly(path, text, layout)
    frame = frame.select(
        pl.col(layout.user).alias("user"),
        pl.col(layout.item).alias("item"),
        pl.col(layout.rating).alias("rating"),
        pl.col(layout.time).alias("timestamp"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("order"),
        (pl.col(layout.reviewer_name) if layout.reviewer_name else pl.lit(None, dtype=pl.String)).alias("name"),
    )
    return frame, layout, decoded.encoding


def to_seconds(frame: pl.DataFrame, per_second: int) -> pl.DataFrame:
    """Store fine-grained times as seconds; their order (file order breaks exact ties) becomes `order`."""
    if per_second == 1:
        return frame
    return (
        frame.sort(["timestamp", "order"])
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("order"), pl.col("timestamp").floordiv(per_second))
        .sort("order")
    )


def _count_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.strip())


def _read_reviews_slowly(path: Path, text: str, layout: ReviewLayout) -> pl.DataFrame:
    rows: list[tuple[str, str, float, int, str | None]] = []
    expected = layout.expected
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj = parse_object(line)
        if not isinstance(obj, dict):
            raise DataFormatError(path, number, f"'{shorten(line.strip())}' is not a JSON object", expected)
        try:
            rating = float(obj[layout.rating])
            stamp = int(obj[layout.time])
            user, item = obj[layout.user], obj[layout.item]
        except KeyError as exc:
            raise DataFormatError(path, number, f"the review has no {exc.args[0]}", expected) from None
        except (TypeError, ValueError):
            raise DataFormatError(
                path, number, f"{layout.rating}/{layout.time} is not a number", expected
            ) from None
        if not math.isfinite(rating):
            raise DataFormatError(path, number, f"{layout.rating} {rating} is not a finite number", expected)
        if not isinstance(user, str) or not isinstance(item, str) or not user or not item:
            raise DataFormatError(path, number, f"{layout.user}/{layout.item} is not a non-empty string", expected)
        name = obj.get(layout.reviewer_name) if layout.reviewer_name else None
        rows.append((user, item, rating, stamp, name if isinstance(name, str) else None))
    schema: dict[str, type[pl.DataType]] = {**layout.schema, layout.reviewer_name or "_name": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def k_core(table: pl.DataFrame, core: int) -> tuple[pl.DataFrame, int]:
    """Keep users with >= `core` distinct items and items with >= `core` distinct users, until stable.

    Returns the table and the number of rounds that removed something."""
    rounds = 0
    while True:
        kept = table.filter(
            (pl.col("item").n_unique().over("user") >= core) & (pl.col("user").n_unique().over("item") >= core)
        )
        if kept.height == table.height:
            return kept, rounds
        table, rounds = kept, rounds + 1


def meta_form(obj: dict[str, Any]) -> str | None:
    """Which release's metadata fields `obj` has: '2014', '2018', '2023', or None (no category/brand fields)."""
    categories = obj.get("categories")
    if isinstance(categories, list) and any(isinstance(p, list) for p in categories):
        return "2014"
    if isinstance(obj.get("category"), list) or "main_cat" in obj:
        return "2018"
    if isinstance(categories, list) or "parent_asin" in obj or "store" in obj or "main_category" in obj:
        return "2023"
    return "2014" if "brand" in obj else None


def unescape(text: str) -> str:
    """McAuley's scraped metadata keeps HTML entities (`&amp;`, `&quot;`, `&#39;`): decoded with the stdlib's
    `html.unescape`, so "Bath &amp; Body" is the category "Bath & Body", not the words "amp" and "Body"."""
    return html.unescape(text) if "&" in text else text


def meta_words(obj: dict[str, Any]) -> tuple[list[str], str | None]:
    """An item's attribute words (brand or store first, then category words without the root, HTML entities
    decoded) and its form."""
    form = meta_form(obj)
    words: list[str] = []

    def add(word: object) -> None:
        text = unescape(word).strip() if isinstance(word, str) else ""
        if text and text not in words:
            words.append(text)

    add(obj.get("store") if form == "2023" else obj.get("brand"))
    if form == "2014":
        paths = obj.get("categories") or []
    else:
        paths = [obj.get("category" if form == "2018" else "categories") or []]
    for path in paths if isinstance(paths, list) else []:
        if isinstance(path, list):
            for word in path[1:]:
                add(word)
    return words, form


def read_meta(path: Path, wanted: set[str], declared: str | None = None) -> tuple[pl.DataFrame, list[str], str]:
    """item, title, attributes for the items in `wanted` (other lines are skipped without parsing; HTML
    entities in titles and attribute words decoded, see `unescape`); plus the metadata forms seen (sorted)
    and the encoding used."""
    decoded = read_file_text(path, declared)
    items, titles, attrs = [], [], []
    forms: set[str] = set()
    for number, line in enumerate(decoded.text.split("\n"), start=1):
        if not line.strip():
            continue
        found = _PARENT.search(line) or _ASIN.search(line)
        if found is None:
            raise DataFormatError(path, number, f"'{shorten(line.strip())}' has no asin", META_EXPECTED)
        if found.group(1) not in wanted:
            continue
        obj = parse_object(line)
        if not isinstance(obj, dict):
            raise DataFormatError(path, number, f"'{shorten(line.strip())}' is not an object", META_EXPECTED)
        words, form = meta_words(obj)
        if form is not None:
            forms.add(form)
        title = obj.get("title")
        items.append(found.group(1))
        text = unescape(title).strip() if isinstance(title, str) else ""
        titles.append(text or None)
        attrs.append(words)
    frame = pl.DataFrame(
        {"item": items, "title": titles, "attributes": attrs},
        schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)},
    )
    return frame, sorted(forms), decoded.encoding


def load_raw(reviews: Path, meta: Path | None, core: int, declared: str | None = None) -> RawDataset:
    """Read a review file (+ meta) of any of the three layouts, drop duplicates, apply the k-core filter."""
    table, layout, encoding = read_reviews(reviews, declared)
    table, duplicates = drop_exact_duplicates(table)  # at the release's own time precision
    table = to_seconds(table, layout.per_second)
    before = table.height
    table, rounds = k_core(table, core)
    if table.height == 0:
        raise DataFormatError(reviews, None, f"no interactions survive the {core}-core filter", "a 5-core review file")
    sources = [source_of(reviews, encoding)]
    users = user_names(table)
    table = table.drop("name")
    items = pl.DataFrame(schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)})
    notes: dict[str, Any] = {
        "format": f"{layout.name} raw reviews (+ meta)" if meta else f"{layout.name} raw reviews",
        "layout": layout.name,
        "timestamps": "milliseconds, stored as seconds" if layout.per_second == 1000 else "seconds",
        "encoding": encoding,
        "duplicates_removed": duplicates,
        "core": core,
        "core_rounds": rounds,
        "removed_by_core": before - table.height,
        "attributes": "none (no meta file)",
        "user_names": (f"{layout.reviewer_name} on the user's latest review that has one" if layout.reviewer_name
                       else f"none ({layout.name} reviews carry no reviewer names)"),
    }
    if meta is not None:
        items, forms, meta_encoding = read_meta(meta, set(table["item"].unique().to_list()), declared)
        sources.append(source_of(meta, meta_encoding))
        notes["meta_layout"] = ", ".join(f"McAuley {f}" for f in forms) or "no category fields"
        notes["attributes"] = "; ".join(META_FORMS[f] for f in forms) or "none (meta has no brand/category fields)"
    return RawDataset(table, items, sources=sources, notes=notes, users=users)


def user_names(table: pl.DataFrame) -> pl.DataFrame:
    """user -> name: the name on the user's latest review (by time, then file order) that has a non-blank one;
    null for a user whose reviews have none. P5 kept one name per user the same way (the last one read)."""
    named = table.with_columns(pl.col("name").str.strip_chars()).filter(
        pl.col("name").is_not_null() & (pl.col("name") != "")
    )
    latest = named.sort(["timestamp", "order"]).group_by("user", maintain_order=True).agg(pl.col("name").last())
    everyone = table.select("user").unique(maintain_order=True)
    return everyone.join(latest, on="user", how="left")
