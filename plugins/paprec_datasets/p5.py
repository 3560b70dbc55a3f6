"""The P5 / S3-Rec sequence format shared by the Amazon sets and Yelp.

`sequential_data.txt` (S3-Rec: `<Name>.txt`): one user per line, `user item item ...`, space-separated
1-based integer ids, items oldest first. Optional `datamaps.json` (P5) maps the integers back to raw ids
(`id2user`, `id2item`). Optional `item2attributes.json` (S3-Rec: `<Name>_item2attributes.json`) lists
attribute ids per item; with `item2attributes_names.tsv` (columns s3rec_attribute_id, name) they become
words. Without a names table the attribute ids are anonymous: by default they are skipped, because an
id such as `attr_17` is not a word a prompt can use; `--option anonymous_attributes=keep` stores them as
`attr_<id>`. There are no ratings or timestamps: the order inside a line is the time order (`order`).
Sequences may repeat an item (Yelp, Toys); nothing here assumes otherwise: a repeated item, even on
adjacent positions, is a separate visit and is kept (these files carry no timestamps or ratings, so
an exact duplicate record cannot be told from a revisit). Every file goes through the shared reader
(BOM stripped, UTF-8 or a BOM's UTF-16; `paprec_cli.textio`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.specs import RawDataset, SourceFile
from paprec_datasets.common import first_line, lines_frame, optional_file, read_text, shorten, text_source

SEQUENCE_EXPECTED = "'USER ITEM ITEM ...': space-separated integer ids, one user per line"


def read_sequences(path: Path, encoding: str | None = None) -> pl.DataFrame:
    """Parse `sequential_data.txt` into user, item (integer ids as strings), line and order."""
    frame = lines_frame(read_text(path, encoding).text)
    frame = frame.with_columns(pl.col("text").str.extract_all(r"\S+").alias("tokens"))
    tabbed = first_line(frame, pl.col("text").str.contains("\t"))
    if tabbed is not None:
        line, text = tabbed
        raise DataFormatError(path, line, f"'{shorten(text)}' is tab-separated", SEQUENCE_EXPECTED)
    bad = first_line(frame, ~pl.col("text").str.contains(r"^ *\d+( +\d+)* *$"))
    if bad is not None:
        line, text = bad
        raise DataFormatError(path, line, f"'{shorten(text)}' has a token that is not an integer id", SEQUENCE_EXPECTED)
    short = first_line(frame, pl.col("tokens").list.len() < 2)
    if short is not None:
        raise DataFormatError(path, short[0], f"user '{short[1].strip()}' has no items", SEQUENCE_EXPECTED)
    frame = frame.with_columns(pl.col("tokens").list.first().alias("user"))
    dup = frame.filter(pl.col("user").is_duplicated())
    if dup.height:
        first, second = dup.row(0, named=True), dup.row(1, named=True)
        raise DataFormatError(
            path, int(second["line"]), f"user {second['user']} already has a line (line {first['line']})",
            SEQUENCE_EXPECTED,
        )  # fmt: skip
    table = (
        frame.select("line", "user", pl.col("tokens").list.slice(1).alias("item"))
        .explode("item")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("order"))
    )
    return table


def read_json(path: Path, encoding: str | None = None) -> object:
    text = read_text(path, encoding).text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"invalid JSON ({exc.msg})", "a JSON document") from None


def apply_datamaps(
    table: pl.DataFrame, path: Path, seq_path: Path, encoding: str | None = None
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Replace integer ids by the raw ids of P5's `datamaps.json` (ids it lacks are errors).

    Returns the table and `id2item`, so item metadata can be mapped the same way."""
    maps = read_json(path, encoding)
    if not isinstance(maps, dict) or not all(isinstance(maps.get(k), dict) for k in ("id2user", "id2item")):
        raise DataFormatError(path, None, "no 'id2user'/'id2item' objects", "P5's datamaps.json")
    for column, key in (("user", "id2user"), ("item", "id2item")):
        mapping = pl.DataFrame(
            {column: list(maps[key].keys()), "raw": [str(v) for v in maps[key].values()]},
            schema={column: pl.String, "raw": pl.String},
        )
        table = table.join(mapping, on=column, how="left", maintain_order="left")
        missing = table.filter(pl.col("raw").is_null())
        if missing.height:
            row = missing.row(0, named=True)
            raise DataFormatError(
                seq_path, int(row["line"]), f"{column} id {row[column]} is not in {path.name} ({key})",
                f"the datamaps.json that belongs to {seq_path.name}",
            )  # fmt: skip
        table = table.drop(column).rename({"raw": column})
    return table, {str(k): str(v) for k, v in maps["id2item"].items()}


def read_attributes(
    path: Path, names_path: Path | None, keep_anonymous: bool, encoding: str | None = None
) -> tuple[pl.DataFrame, str]:
    """item (integer id) -> attribute words; returns the table and a note on what was used."""
    data = read_json(path, encoding)
    if not isinstance(data, dict):
        raise DataFormatError(path, None, "not a JSON object", "{item_id: [attribute_id, ...]}")
    names: dict[str, str] = {}
    unused: list[str] = []
    if names_path is not None:
        table, unused = _read_names(names_path, encoding)
        names = dict(zip(table["s3rec_attribute_id"], table["name"], strict=True))
    items, attrs = [], []
    for item, ids in data.items():
        if not isinstance(ids, list):
            raise DataFormatError(path, None, f"item {item} maps to {type(ids).__name__}", "a list of attribute ids")
        words: list[str] = []
        for attr in ids:
            key = str(attr)
            word = names.get(key) if names else (f"attr_{key}" if keep_anonymous else None)
            if word is not None and word not in words:
                words.append(word)
        items.append(str(item))
        attrs.append(words)
    if names:
        note = f"attribute names from {names_path.name if names_path else ''}"
        if unused:
            note += f" (columns not used: {', '.join(unused)})"
    elif keep_anonymous:
        note = "anonymous attribute ids stored as attr_<id> (no names table)"
    else:
        note = "attribute ids skipped: no names table (use --option anonymous_attributes=keep for attr_<id>)"
    schema: dict[str, Any] = {"item": pl.String, "attributes": pl.List(pl.String)}
    frame = pl.DataFrame({"item": items, "attributes": attrs}, schema=schema)
    return frame, note


def _read_names(path: Path, encoding: str | None = None) -> tuple[pl.DataFrame, list[str]]:
    """s3rec_attribute_id -> name, and the header's other columns (reported in the note, not used)."""
    frame = lines_frame(read_text(path, encoding).text)
    header = frame.row(0, named=True)
    columns = header["text"].split("\t")
    expected = "a TSV with a header including s3rec_attribute_id and name"
    if "s3rec_attribute_id" not in columns or "name" not in columns:
        raise DataFormatError(path, int(header["line"]), "header lacks s3rec_attribute_id/name", expected)
    id_pos, name_pos = columns.index("s3rec_attribute_id"), columns.index("name")
    body = frame.slice(1).with_columns(pl.col("text").str.split("\t").alias("fields"))
    short = first_line(body, pl.col("fields").list.len() != len(columns))
    if short is not None:
        raise DataFormatError(path, short[0], f"'{shorten(short[1])}' has the wrong number of fields", expected)
    table = body.select(
        pl.col("fields").list.get(id_pos).str.strip_chars().alias("s3rec_attribute_id"),
        pl.col("fields").list.get(name_pos).str.strip_chars().alias("name"),
    )
    return table, [c.strip() for c in columns if c.strip() not in ("s3rec_attribute_id", "name")]


def load_p5(folder: Path, seq_path: Path, stem: str, options: dict[str, str]) -> RawDataset:
    """Read a P5/S3-Rec folder (`stem` is S3-Rec's file prefix, e.g. 'Beauty')."""
    keep = options.get("anonymous_attributes", "skip")
    if keep not in ("skip", "keep"):
        raise PaprecError(f"--option anonymous_attributes={keep}: expected skip or keep")
    declared = options.get("encoding", "auto")
    encoding = None if declared in ("", "auto") else declared
    table = read_sequences(seq_path, encoding)
    sources: list[SourceFile] = [text_source(seq_path, encoding)]
    notes: dict[str, Any] = {"format": "P5/S3-Rec sequential_data.txt", "ratings": "none", "timestamps": "none"}
    datamaps = optional_file(folder, ["datamaps.json"])
    attr_path = optional_file(folder, ["item2attributes.json", f"{stem}_item2attributes.json"])
    items = pl.DataFrame(schema={"item": pl.String, "attributes": pl.List(pl.String)})
    if attr_path is not None:
        names_path = optional_file(folder, ["item2attributes_names.tsv", f"{stem}_item2attributes_names.tsv"])
        items, notes["attributes"] = read_attributes(attr_path, names_path, keep == "keep", encoding)
        sources.append(text_source(attr_path, encoding))
        if names_path is not None:
            sources.append(text_source(names_path, encoding))
    if datamaps is not None:
        sources.append(text_source(datamaps, encoding))
        table, id2item = apply_datamaps(table, datamaps, seq_path, encoding)
        items = items.with_columns(pl.col("item").replace_strict(id2item, default=None, return_dtype=pl.String))
        items = items.drop_nulls("item")
        notes["ids"] = "raw ids from datamaps.json"
    else:
        notes["ids"] = "integer ids from the sequence file (no datamaps.json)"
    items = items.with_columns(pl.lit(None, dtype=pl.String).alias("title"))
    return RawDataset(table.select("user", "item", "order"), items, sources=sources, notes=notes)
