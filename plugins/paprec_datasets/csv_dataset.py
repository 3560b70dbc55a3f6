"""`csv`: bring your own interactions as a delimited text file with a header.

Columns user and item are required; rating and timestamp (integer unix time) are optional. Their names
are set with `--option user_col=... item_col=... rating_col=... timestamp_col=...` (defaults: user, item,
rating and timestamp, the last two used when present; set one to '' to ignore it); `sep=` (one
character, or `tab`), `encoding=` (default auto: a BOM decides, else UTF-8; see `paprec_cli.textio`).
Other header columns are not used; they are listed in the manifest (`notes.unused_columns`) and in
the import's output, never dropped without a word. Parsing goes through polars; when anything is
wrong, a line-by-line pass finds the first bad line so the error can name it.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import polars as pl

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset
from paprec_datasets.common import read_text, shorten, source_of, take_options

DEFAULTS = {
    "user_col": "user",
    "item_col": "item",
    "rating_col": "rating",
    "timestamp_col": "timestamp",
    "sep": ",",
    "encoding": "auto",
}
SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def load(path: Path | None, options: ImportOptions) -> RawDataset:
    assert path is not None
    values = take_options(options, "csv", DEFAULTS)
    if path.is_dir():
        found = sorted(path.glob("*.csv")) + sorted(path.glob("*.tsv"))
        if len(found) != 1:
            raise PaprecError(f"--from {path}: expected exactly one .csv/.tsv file in this folder, found {len(found)}")
        path = found[0]
    sep = SEPARATORS.get(values["sep"], values["sep"])
    if len(sep) != 1:
        raise PaprecError(f"--option sep={values['sep']}: expected one character (or tab)")
    declared = None if values["encoding"] in ("", "auto") else values["encoding"]
    decoded = read_text(path, declared, "--option encoding=NAME")
    text = decoded.text
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0].rstrip("\r")), delimiter=sep), [])
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataFormatError(path, 1, f"column '{name}' appears twice in the header", "unique column names")
        seen.add(name)
    cols = _columns(values, header, path, sep)
    table = _parse(path, text, sep, header, cols)
    unused = [name for name in header if name not in cols.values()]
    notes: dict[str, Any] = {"format": "csv", "columns": cols, "sep": sep, "encoding": decoded.encoding}
    if unused:
        notes["unused_columns"] = unused
        notes["reports"] = [f"{path.name}: columns not used: {', '.join(unused)} (name them with --option *_col=)"]
    items = pl.DataFrame(schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)})
    return RawDataset(table, items, sources=[source_of(path, decoded.encoding)], notes=notes)


def _columns(values: dict[str, str], header: list[str], path: Path, sep: str) -> dict[str, str]:
    """Role -> column name; required ones must exist, optional defaults are used only when present."""
    cols: dict[str, str] = {}
    expected = f"a header naming the columns (separator {sep!r}); found: {', '.join(header) or 'nothing'}"
    for role in ("user", "item", "rating", "timestamp"):
        name = values[f"{role}_col"].strip()
        given = f"{role}_col" in {k for k, v in values.items() if v != DEFAULTS.get(k)}
        if not name:
            continue
        if name in header:
            cols[role] = name
        elif role in ("user", "item") or given:
            raise DataFormatError(path, 1, f"no column '{name}' (--option {role}_col)", expected)
    return cols


def _parse(path: Path, text: str, sep: str, header: list[str], cols: dict[str, str]) -> pl.DataFrame:
    problem = None
    try:
        raw = pl.read_csv(io.StringIO(text), separator=sep, infer_schema=False, has_header=True,
                          new_columns=header, columns=list(cols.values()))  # fmt: skip
    except pl.exceptions.PolarsError as exc:
        raw, problem = None, str(exc).splitlines()[0]
    if raw is not None:
        raw = raw.rename({v: k for k, v in cols.items()})
        raw = raw.with_columns(pl.col(c).str.strip_chars() for c in cols)
        typed = raw.with_columns(
            *([pl.col("rating").cast(pl.Float64, strict=False)] if "rating" in cols else []),
            *([pl.col("timestamp").cast(pl.Int64, strict=False)] if "timestamp" in cols else []),
        )
        repeated_header = (raw["user"] == cols["user"]) & (raw["item"] == cols["item"])
        infinite = "rating" in cols and not typed["rating"].drop_nulls().is_finite().all()
        suspicious = (typed.null_count().sum_horizontal().item() or (raw["user"] == "").any() or repeated_header.any()
                      or infinite)
        if not suspicious:
            return typed.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("order"))
    _locate_error(path, text, sep, header, cols)
    # Only blank lines were odd: drop them.
    if raw is None:
        raise DataFormatError(path, None, problem or "unreadable", "a delimited text file with a header")
    typed = typed.filter(~pl.all_horizontal(pl.all().is_null()))
    return typed.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("order"))


def _locate_error(path: Path, text: str, sep: str, header: list[str], cols: dict[str, str]) -> None:
    """Walk the file with the csv module and raise at the first bad line (returns if none is bad)."""
    where = {role: header.index(name) for role, name in cols.items()}
    expected = f"{len(header)} fields separated by {sep!r} like the header"
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    next(reader, None)
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        shown = shorten(sep.join(row))
        if [c.strip() for c in row] == header:
            raise DataFormatError(path, line, "the header appears again", "one header line at the top")
        if len(row) != len(header):
            raise DataFormatError(path, line, f"'{shown}' has {len(row)} fields", expected)
        for role in ("user", "item"):
            if not row[where[role]].strip():
                raise DataFormatError(path, line, f"'{shown}' has an empty {cols[role]}", f"a {role} id")
        if "rating" in cols:
            _number(path, line, row[where["rating"]], cols["rating"], float, "a number (rating)")
        if "timestamp" in cols:
            _number(path, line, row[where["timestamp"]], cols["timestamp"], int, "an integer unix timestamp")


def _number(path: Path, line: int, text: str, column: str, kind: type, expected: str) -> None:
    if not text.strip():
        return  # an empty optional value is allowed (null)
    try:
        value = kind(text.strip())
    except ValueError:
        raise DataFormatError(path, line, f"{column} '{shorten(text)}' is not a number", expected) from None
    if not math.isfinite(value):
        raise DataFormatError(path, line, f"{column} '{shorten(text)}' is not a finite number", expected)


SPEC = DatasetSpec(
    name="csv",
    description="Your own interactions: a CSV/TSV with user,item[,rating][,timestamp] columns",
    files="a .csv/.tsv file with a header (column names via --option user_col=... item_col=... sep=...)",
    load=load,
)
