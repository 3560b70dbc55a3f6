"""The one text reader for every file paprec reads as text (datasets, allow-lists, users files).

Decoding rules, in order:

1. An encoding the user declared (`--option encoding=NAME`) always wins; a leading BOM of that
   encoding is dropped (UTF-8 and UTF-16/32 names decode with their BOM-aware codecs).
2. Otherwise a byte-order mark decides: UTF-8 (EF BB BF), UTF-32 (FF FE 00 00 / 00 00 FE FF) or
   UTF-16 (FF FE / FE FF); the BOM itself never reaches the parser.
3. Otherwise the bytes are read as UTF-8 when they are valid UTF-8.
4. Otherwise a loader-given `fallback` (GroupLens' ISO-8859-1) is used; without one the error names
   the file, line and byte and suggests `--option encoding=NAME`.

No statistical guessing is done (no charset detection library): rules 2-4 decide every file
deterministically, and the encoding used is returned so that it can be recorded in a manifest.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from paprec_cli.errors import DataFormatError, PaprecError

#: (BOM bytes, codec that strips it, name recorded); UTF-32 first: its LE BOM starts like UTF-16's.
BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig", "utf-8 (BOM)"),
    (codecs.BOM_UTF32_LE, "utf-32", "utf-32 (BOM)"),
    (codecs.BOM_UTF32_BE, "utf-32", "utf-32 (BOM)"),
    (codecs.BOM_UTF16_LE, "utf-16", "utf-16 (BOM)"),
    (codecs.BOM_UTF16_BE, "utf-16", "utf-16 (BOM)"),
)
_BOM_AWARE = {"utf-8": "utf-8-sig", "utf-16": "utf-16", "utf-32": "utf-32"}


@dataclass(frozen=True)
class Decoded:
    """A decoded file: `text` (no BOM) and `encoding`, the rule that decided it, e.g. 'utf-8',
    'utf-16 (BOM)', 'iso-8859-1 (declared)' or 'iso-8859-1 (fallback: not UTF-8)'."""

    text: str
    encoding: str


def canonical_encoding(name: str, option: str = "--option encoding") -> str:
    """Python's canonical codec name for `name` ('latin-1' -> 'iso8859-1'); unknown names are errors."""
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        raise PaprecError(f"{option}={name}: unknown encoding; use e.g. utf-8, utf-16, iso-8859-1, cp1252") from None


def decode_bytes(
    path: Path, data: bytes, declared: str | None = None, fallback: str | None = None, option_hint: str = ""
) -> Decoded:
    """Decode a whole file's bytes by the rules in the module docstring.

    `declared`: the user's encoding (wins); `fallback`: used only when the bytes are not UTF-8 and no
    BOM is present. Raises `DataFormatError` naming `path:line` and the offending byte.
    """
    if declared:
        name = canonical_encoding(declared)
        codec = _BOM_AWARE.get(name.replace("_", "-"), name)
        text = _decode(path, data, codec, name, option_hint)
        return Decoded(text.removeprefix("\ufeff"), f"{name} (declared)")
    for bom, codec, label in BOMS:
        if data.startswith(bom):
            return Decoded(_decode(path, data, codec, label, option_hint), label)
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        if fallback is None:
            _decode(path, data, "utf-8", "utf-8", option_hint)  # raises with the line
        assert fallback is not None
        name = canonical_encoding(fallback)
        return Decoded(_decode(path, data, name, name, option_hint), f"{name} (fallback: not UTF-8)")


def _decode(path: Path, data: bytes, codec: str, label: str, option_hint: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        if option_hint:  # the reader takes another encoding: say how
            expected = f"{label} text (if the file uses another encoding, e.g. ISO-8859-1; pass {option_hint})"
        else:  # this reader takes UTF-8 (or a BOM) only: the fix is a re-encoded copy
            copy = path.with_name(f"{path.stem}-utf8{path.suffix}")
            expected = (f"{label} text; save it as UTF-8 (e.g. `iconv -f ISO-8859-1 -t UTF-8 {path} > {copy}`) and "
                        "pass that file")
        raise DataFormatError(path, line, f"byte 0x{data[exc.start]:02x} is not valid {label}", expected) from None


def read_text_file(
    path: Path, declared: str | None = None, fallback: str | None = None, option_hint: str = "", what: str = ""
) -> Decoded:
    """Read and decode `path` (see `decode_bytes`); unreadable or missing files are one-line errors.

    `what` names the option the path came from (e.g. '--allow-list') for those errors.
    """
    label = f"{what} {path}" if what else str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PaprecError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise PaprecError(f"{label}: is a folder; expected a text file") from None
    except OSError as exc:
        raise PaprecError(f"{label}: cannot read ({exc.strerror or exc})") from None
    return decode_bytes(path, data, declared, fallback, option_hint)
