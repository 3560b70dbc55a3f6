"""Helpers every loader shares: options, file lookup, decoding and line-numbered parsing.

Parsing is vectorised with polars; when something is wrong we locate the first offending line so the
error can name `file:line` and what was expected there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.paths import sha256_file
from paprec_cli.specs import ImportOptions, SourceFile
from paprec_cli.textio import Decoded, read_text_file


def take_options(options: ImportOptions, dataset: str, defaults: Mapping[str, str]) -> dict[str, str]:
    """The loader's settings: `defaults` overridden by `--option KEY=VALUE`; unknown keys are errors."""
    unknown = sorted(set(options.extra) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "(none)"
        raise PaprecError(f"dataset '{dataset}' has no option {', '.join(unknown)}; known options: {known}")
    return {**defaults, **options.extra}


def int_option(values: Mapping[str, str], key: str, minimum: int, maximum: int | None = None) -> int:
    text = values[key]
    try:
        value = int(text)
    except ValueError:
        raise PaprecError(f"--option {key}={text}: expected an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        wanted = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise PaprecError(f"--option {key}={text}: expected a value {wanted}; pass --option {key}=N with N {wanted}")
    return value


def float_option(values: Mapping[str, str], key: str, minimum: float, maximum: float) -> float:
    text = values[key]
    try:
        value = float(text)
    except ValueError:
        raise PaprecError(f"--option {key}={text}: expected a number") from None
    if not minimum <= value <= maximum:
        raise PaprecError(f"--option {key}={text}: expected a number between {minimum} and {maximum}")
    return value


def find_file(path: Path, names: Sequence[str], dataset: str, what: str) -> Path:
    """`path` itself when it is a file, else the first of `names` inside the folder `path`."""
    if path.is_file():
        return path
    for name in names:
        candidate = path / name
        if candidate.is_file():
            return candidate
    raise PaprecError(f"--from {path}: no {' or '.join(names)} in this folder; dataset '{dataset}' needs {what}")


def optional_file(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def source_of(path: Path, encoding: str | None = None) -> SourceFile:
    """The manifest's record of a file read: path, checksum and (text files) the encoding used."""
    return SourceFile(path=path.resolve(), sha256=sha256_file(path), encoding=encoding)


def text_source(path: Path, declared: str | None = None) -> SourceFile:
    """`source_of` for a text file read with the shared reader: the same rules give the same answer."""
    return source_of(path, read_text_file(path, declared).encoding)


def read_text(path: Path, encoding: str | None = None, option_hint: str = "", fallback: str | None = None) -> Decoded:
    """Decode a data file with the shared reader (`paprec_cli.textio`); an empty file is an error.

    `encoding`: declared by the user (always wins); `fallback`: the format's encoding for bytes that
    are not UTF-8 (GroupLens: ISO-8859-1)."""
    decoded = read_text_file(path, encoding, fallback, option_hint)
    if not decoded.text.strip():
        raise DataFormatError(path, None, "the file is empty", "at least one data line")
    return decoded


def lines_frame(text: str) -> pl.DataFrame:
    """One row per non-blank line: `line` (1-based line number) and `text` (without CR/LF)."""
    lines = pl.Series("text", text.split("\n"), dtype=pl.String)
    frame = pl.DataFrame({"line": pl.int_range(1, lines.len() + 1, dtype=pl.Int64, eager=True), "text": lines})
    frame = frame.with_columns(pl.col("text").str.strip_chars_end("\r"))
    return frame.filter(pl.col("text").str.strip_chars() != "")


def first_line(frame: pl.DataFrame, mask: pl.Expr) -> tuple[int, str] | None:
    """(line number, text) of the first row where `mask` holds, else None."""
    bad = frame.filter(mask)
    if bad.height == 0:
        return None
    row = bad.row(0, named=True)
    return int(row["line"]), str(row.get("text", ""))


def shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def read_delimited(
    path: Path,
    sep: str,
    columns: Mapping[str, pl.DataType | type[pl.DataType]],
    expected: str,
    encoding: str | None = None,
    min_fields: int | None = None,
    option_hint: str = "",
    fallback: str | None = None,
    max_fields: int | None = None,
) -> tuple[pl.DataFrame, str]:
    """Split each line on `sep` (no quoting) into typed `columns` plus `line`.

    Lines have at least `min_fields` fields (default: all) and at most `max_fields` (default: no limit;
    formats with a fixed field count pass it, so that an extra column is an error, never dropped silently).
    Any line with too few fields or a value that does not parse raises with its line number.
    Returns the table and the encoding used (see `read_text`).
    """
    decoded = read_text(path, encoding, option_hint, fallback)
    frame = lines_frame(decoded.text)
    names = list(columns)
    need = len(names) if min_fields is None else min_fields
    frame = frame.with_columns(pl.col("text").str.split(sep).alias("fields"))
    short = first_line(frame, pl.col("fields").list.len() < need)
    if short is not None:
        line, text = short
        raise DataFormatError(path, line, f"'{shorten(text)}' has too few fields", expected)
    if max_fields is not None:
        extra = first_line(frame, pl.col("fields").list.len() > max_fields)
        if extra is not None:
            line, text = extra
            raise DataFormatError(path, line, f"'{shorten(text)}' has more than {max_fields} fields", expected)
    parsed = frame.select(
        "line",
        "text",
        *[pl.col("fields").list.get(i, null_on_oob=True).str.strip_chars().alias(n) for i, n in enumerate(names)],
    )
    out = [pl.col("line")]
    for index, (name, dtype) in enumerate(columns.items()):
        if dtype == pl.String:
            out.append(pl.col(name))
            continue
        cast = pl.col(name).cast(dtype, strict=False)
        present = pl.col(name).is_not_null() & ((pl.col(name) != "") | pl.lit(index < need))
        bad = first_line(parsed, cast.is_null() & present)
        if bad is not None:
            line, text = bad
            raise DataFormatError(path, line, f"'{shorten(text)}' has a missing or non-numeric {name}", expected)
        if dtype in (pl.Float32, pl.Float64):  # "nan" and "inf" parse as floats
            bad = first_line(parsed, cast.is_not_null() & ~cast.is_finite())
            if bad is not None:
                line, text = bad
                raise DataFormatError(path, line, f"'{shorten(text)}' has a {name} that is not a finite number",
                                      expected)
        out.append(cast.alias(name))
    return parsed.select(out), decoded.encoding
