"""Prompt export and import: one `paprec-prompts/1` document, three file formats.

JSON is the document itself. Parquet and CSV hold one row per user (index, raw id, personalized token
ids and texts, the rendered prompt) and carry everything else (task, fingerprints, layout, shared
tokens, metrics) as file-level metadata: the Parquet key-value entry `paprec`, or the CSV's first
line `# paprec-meta: <json>`. One file per export, so metadata can never be separated from its rows.
`docs/EXPORT.md` is the schema reference. Import checks structure here (`load_prompts`); the checks
that need a model or dataset (`check_codec`, `check_fingerprints`) are separate so that commands run
them once they have loaded what the document names.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from paprec_cli.errors import PaprecError
from paprec_cli.paths import atomic_path, write_text_atomic
from paprec_cli.textio import read_text_file

if TYPE_CHECKING:  # the search layout pulls in torch; the CLI imports this module at startup
    from paprec_cli.search.layout import Layout, PromptTokens

FORMAT = "paprec-prompts/1"
ExportFormat = Literal["json", "parquet", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("json", "parquet", "csv")
#: Keys every document must have; the rest (initial, surrogate, results, search, ...) are optional.
REQUIRED_KEYS = ("format", "task", "dataset", "dataset_fingerprint", "model", "model_fingerprint", "layout", "shared")
#: Keys that live in the rows of a Parquet/CSV export rather than in its metadata.
ROW_KEYS = ("personal", "users")
#: Canonical key order when a document is rebuilt from rows (unknown keys keep their order after these).
KEY_ORDER = (
    "format", "task", "dataset", "dataset_fingerprint", "model", "model_fingerprint", "id_scheme", "layout",
    "manual_template", "initial", "shared", "personal", "users", "surrogate", "results", "search",
)  # fmt: skip
COLUMNS = ("user_idx", "user", "token_ids", "tokens", "prompt")
CSV_META_PREFIX = "# paprec-meta: "
PARQUET_META_KEY = "paprec"
REEXPORT = "re-export it with `paprec export-prompts`"
WORD_START = "\u2581"  # the tokenizer's Metaspace word-start marker; stripped for display only

Token = dict[str, Any]
Document = dict[str, Any]


class TokenCodec(Protocol):
    """The part of the model's `PromptCodec` that import validation needs."""

    def token_id(self, text: str) -> int | None: ...


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------


def format_of(path: Path, fmt: str | None = None) -> ExportFormat:
    """The explicit `--format`, else the file suffix."""
    chosen = (fmt or path.suffix.lstrip(".")).lower()
    if chosen not in FORMATS:
        raise PaprecError(f"{path}: unknown prompts format '{chosen}'; use --format json, parquet or csv")
    return chosen  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------


def _tokens(value: object, where: str, source: Path | str) -> list[Token]:
    if not isinstance(value, list):
        raise PaprecError(f"{source}: '{where}' must be a list of {{id, text}} tokens; {REEXPORT}")
    for token in value:
        ok = isinstance(token, dict) and isinstance(token.get("text"), str)
        if not ok or not isinstance(token.get("id"), int) or isinstance(token.get("id"), bool):
            raise PaprecError(f"{source}: '{where}' has a malformed token {token!r}; each needs an int id and a text")
    return value


def token_lists(doc: Document) -> Iterable[tuple[str, list[Token]]]:
    """Every (place, token list) of a document: initial, shared and per-user tokens."""
    for group in ("initial", "shared"):
        for slot, tokens in (doc.get(group) or {}).items():
            yield f"{group}.{slot}", tokens
    for user, tokens in (doc.get("personal") or {}).items():
        yield f"personal.{user}", tokens


def validate_document(doc: object, source: Path | str) -> Document:
    """Structural checks: format tag, required keys, token shapes. Returns the document."""
    if not isinstance(doc, dict):
        raise PaprecError(f"{source}: not a prompts document (expected a JSON object); {REEXPORT}")
    tag = doc.get("format")
    if tag != FORMAT:
        raise PaprecError(f"{source}: format tag is {tag!r}, expected '{FORMAT}'; {REEXPORT} of this version")
    missing = [key for key in REQUIRED_KEYS if key not in doc]
    if missing:
        raise PaprecError(f"{source}: missing required key(s) {', '.join(missing)}; {REEXPORT}")
    for key in ("layout", "shared"):
        if not isinstance(doc[key], dict):
            raise PaprecError(f"{source}: '{key}' must be an object; {REEXPORT}")
    for key in ("personal", "users", "initial"):
        if key in doc and not isinstance(doc[key], dict):
            raise PaprecError(f"{source}: '{key}' must be an object; {REEXPORT}")
    for user in list(doc.get("personal") or {}) + list(doc.get("users") or {}):
        if not str(user).isdigit():
            raise PaprecError(f"{source}: user key {user!r} is not a user index ('1', '2', ...); {REEXPORT}")
    for where, tokens in token_lists(doc):
        _tokens(tokens, where, source)
    from paprec_cli.export_schema import check_parts

    check_parts(doc, source, REEXPORT)  # layout, user indices, token ids >= 0, slot counts = token counts
    return doc


def check_ranges(doc: Document, source: Path | str, *, n_users: int, vocab_size: int, dataset: str,
                 model: str) -> None:
    """User indices within the dataset's users (1..`n_users`) and token ids within the model's vocabulary
    (0..`vocab_size` - 1); a `PaprecError` naming the file and field otherwise."""
    from paprec_cli.export_schema import check_bounds, check_parts

    check_bounds(check_parts(doc, source, REEXPORT), source, n_users=n_users, vocab_size=vocab_size,
                 dataset=dataset, model=model, fix=REEXPORT)


def check_codec(doc: Document, codec: TokenCodec, source: Path | str, model: str = "the model") -> None:
    """Every token text must map to its recorded id in this model's tokenizer (same vocabulary)."""
    for where, tokens in token_lists(doc):
        for token in tokens:
            try:
                found_id = codec.token_id(token["text"])
            except (PaprecError, KeyError, ValueError, LookupError):
                found_id = None
            actual = None if found_id is None or int(found_id) < 0 else int(found_id)
            if actual != token["id"]:
                found = "is not in its vocabulary" if actual is None else f"has id {actual}"
                raise PaprecError(
                    f"{source}: token {token['text']!r} ({where}, id {token['id']}) {found} in {model}'s tokenizer; "
                    f"use the model the prompts were searched with ({doc.get('model')}) via --model"
                )


def check_fingerprints(
    doc: Document,
    source: Path | str,
    *,
    dataset_fingerprint: str | None = None,
    model_fingerprint: str | None = None,
) -> None:
    """The dataset and model in use must be the ones the prompts were searched on (None skips a check)."""
    if dataset_fingerprint is not None and doc.get("dataset_fingerprint") != dataset_fingerprint:
        raise PaprecError(
            f"{source}: searched on dataset '{doc.get('dataset')}' with fingerprint {doc.get('dataset_fingerprint')}, "
            f"but the dataset in use has {dataset_fingerprint}; use the same import (same files, --indexing and seed)"
        )
    if model_fingerprint is not None and doc.get("model_fingerprint") != model_fingerprint:
        raise PaprecError(
            f"{source}: searched with model fingerprint {doc.get('model_fingerprint')} ({doc.get('model')}), "
            f"but the model in use has {model_fingerprint}; pass --model with the model the prompts were searched with"
        )


def layout_of(doc: Document) -> Layout:
    """The document's prompt layout (shared prefix/suffix and personal slot counts)."""
    layout = doc["layout"]
    from paprec_cli.search.layout import Layout

    return Layout(int(layout["n_prefix"]), int(layout["n_suffix"]), int(layout["n_personal"]))


def _ids(tokens: list[Token]) -> tuple[int, ...]:
    return tuple(int(t["id"]) for t in tokens)


def tokens_of(doc: Document, personalized: bool) -> PromptTokens:
    """The document's prompt as `PromptTokens` (without per-user tokens unless `personalized`)."""
    from paprec_cli.search.layout import PromptTokens

    shared = doc["shared"]
    personal = {int(u): _ids(t) for u, t in (doc.get("personal") or {}).items()} if personalized else {}
    return PromptTokens(
        shared=_ids(shared.get("prefix", [])) + _ids(shared.get("suffix", [])),
        personal_default=_ids(shared.get("personal_default", [])),
        personal=personal,
    )


# ---------------------------------------------------------------------------------------------------
# Rows: one per user
# ---------------------------------------------------------------------------------------------------


def display(text: str) -> str:
    """A token as a person reads it (without the tokenizer's word-start marker)."""
    return text.removeprefix(WORD_START) or text


def render_prompt(doc: Document, user: str | int | None = None, argument: str = "{argument}") -> str:
    """The automatic prompt as text: layout template with the slots filled (a user's or the default tokens).

    The layout template names slots `[prefix]`, `{argument}`, `[suffix]`, `[personal]`.
    """
    shared = doc.get("shared") or {}
    personal = (doc.get("personal") or {}).get(str(user)) if user is not None else None
    if personal is None:
        personal = shared.get("personal_default") or []
    fill = {
        "[prefix]": shared.get("prefix") or [],
        "[suffix]": shared.get("suffix") or [],
        "[personal]": personal,
    }
    template = (doc.get("layout") or {}).get("template") or "[prefix] {argument} [suffix] [personal]"
    words: list[str] = []
    for part in template.split():
        if part in fill:
            words.extend(display(t["text"]) for t in fill[part])
        elif part == "{argument}":
            words.append(argument)
        else:
            words.append(part)
    return " ".join(words)


def user_rows(doc: Document) -> list[dict[str, Any]]:
    """One row per user that has personalized tokens or a raw id, sorted by user index.

    `token_ids`/`tokens` are None for a user with a raw id but no personalized entry (so the
    document rebuilds exactly); `user` is None when the raw id is not recorded.
    """
    personal = doc.get("personal") or {}
    users = doc.get("users") or {}
    rows = []
    for key in sorted(set(personal) | set(users), key=int):
        tokens = personal.get(key)
        rows.append(
            {
                "user_idx": int(key),
                "user": None if key not in users else str(users[key]),
                "token_ids": None if tokens is None else [t["id"] for t in tokens],
                "tokens": None if tokens is None else [t["text"] for t in tokens],
                "prompt": render_prompt(doc, key),
            }
        )
    return rows


def _rebuild(meta: dict[str, Any], rows: Iterable[dict[str, Any]], source: Path) -> Document:
    """The document from file metadata plus per-user rows (the inverse of `user_rows`)."""
    personal: dict[str, list[Token]] = {}
    users: dict[str, str] = {}
    for row in rows:
        key = str(row["user_idx"])
        if row["user"] is not None:
            users[key] = row["user"]
        ids, texts = row["token_ids"], row["tokens"]
        if ids is None and texts is None:
            continue
        if ids is None or texts is None or len(ids) != len(texts):
            raise PaprecError(f"{source}: user {key} has {ids!r} token ids for texts {texts!r}; {REEXPORT}")
        personal[key] = [{"id": int(i), "text": str(t)} for i, t in zip(ids, texts, strict=True)]
    merged = {**meta, "personal": personal, "users": users}
    ordered = {key: merged[key] for key in KEY_ORDER if key in merged}
    ordered.update((key, value) for key, value in merged.items() if key not in ordered)
    return ordered


def _metadata(doc: Document) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key not in ROW_KEYS}


# ---------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------


def export_prompts(doc: Document, path: Path, fmt: str | None = None, *, force: bool = False,
                   source: Path | None = None) -> ExportFormat:
    """Write `doc` to `path` atomically; refuse to overwrite an existing file unless `force`, and refuse (even
    with `force`) the file `doc` was read from (`source`) or any path inside the run folder holding it: writing
    there would change the run that `eval RUN` and `search --resume` read. Raises `PaprecError`."""
    chosen = format_of(path, fmt)
    if source is not None:
        refuse_inside_source(path, Path(source))
    validate_document(doc, path)
    if path.exists() and not force:
        raise PaprecError(f"{path} already exists; pass --force to overwrite it or choose another -o")
    if path.is_dir():
        raise PaprecError(f"{path} is a folder; pass a file name with -o")
    if chosen == "json":
        write_text_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    elif chosen == "csv":
        write_text_atomic(path, _csv_text(doc))
    else:
        _write_parquet(doc, path)
    return chosen


def refuse_inside_source(path: Path, source: Path) -> None:
    """`PaprecError` when output `path` is the prompts file `source` or lies inside the run folder holding it
    (the folder with `manifest.json` beside `source`)."""
    target = Path(path).expanduser().resolve()
    source = source.expanduser().resolve()
    if target == source:
        raise PaprecError(f"-o {path}: is the file this command reads; choose another output path")
    run = source.parent
    if (run / "manifest.json").is_file() and target.is_relative_to(run):
        raise PaprecError(f"-o {path}: is inside the run {run} that this command reads (writing there changes the "
                          "run); choose a path outside it")


def _csv_text(doc: Document) -> str:
    buffer = io.StringIO()
    buffer.write(CSV_META_PREFIX + json.dumps(_metadata(doc), ensure_ascii=False) + "\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in user_rows(doc):
        writer.writerow(
            [
                row["user_idx"],
                "" if row["user"] is None else row["user"],
                "" if row["token_ids"] is None else json.dumps(row["token_ids"]),
                "" if row["tokens"] is None else json.dumps(row["tokens"], ensure_ascii=False),
                row["prompt"],
            ]
        )
    return buffer.getvalue()


def _write_parquet(doc: Document, path: Path) -> None:
    import polars as pl

    schema = pl.Schema(
        {
            "user_idx": pl.Int64(),
            "user": pl.String(),
            "token_ids": pl.List(pl.Int64),
            "tokens": pl.List(pl.String),
            "prompt": pl.String(),
        }
    )
    table = pl.DataFrame(user_rows(doc), schema=schema)
    meta = json.dumps(_metadata(doc), ensure_ascii=False)
    with atomic_path(path) as tmp:
        table.write_parquet(tmp, metadata={PARQUET_META_KEY: meta})


# ---------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------


def read_prompts(path: str | Path) -> Document:
    """Read a prompts document from a JSON, Parquet or CSV file and check its structure.

    A run folder or name is `paprec_cli.runs.load_prompts`. Checks against a model or dataset are
    `check_codec` and `check_fingerprints`.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise PaprecError(f"{source}: no such prompts file; pass a file written by `paprec export-prompts` or a run")
    fmt = format_of(source)
    if fmt == "json":
        doc = _read_json(source)
    elif fmt == "csv":
        doc = _read_csv(source)
    else:
        doc = _read_parquet(source)
    return validate_document(doc, source)


def _read_json(source: Path) -> object:
    try:
        return json.loads(read_text_file(source).text)  # the shared reader: a BOM or UTF-16 from an editor is fine
    except json.JSONDecodeError as exc:
        raise PaprecError(f"{source}: not valid JSON ({exc}); pass a file written by `paprec export-prompts`") from None


def _meta_json(text: str, source: Path) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PaprecError(f"{source}: metadata is not valid JSON ({exc}); {REEXPORT}") from None
    if not isinstance(meta, dict):
        raise PaprecError(f"{source}: metadata is not a JSON object; {REEXPORT}")
    return meta


def _read_csv(source: Path) -> Document:
    text = read_text_file(source).text  # the shared reader: a spreadsheet's BOM is stripped
    first, _, body = text.partition("\n")
    if not first.startswith(CSV_META_PREFIX):
        raise PaprecError(f"{source}: first line is not '{CSV_META_PREFIX.strip()} {{...}}'; {REEXPORT}")
    meta = _meta_json(first[len(CSV_META_PREFIX) :], source)
    reader = csv.reader(io.StringIO(body, newline=""))
    header = next(reader, None)
    if header is None or tuple(header[: len(COLUMNS)]) != COLUMNS:
        raise PaprecError(f"{source}:2: header is {header!r}; expected columns {', '.join(COLUMNS)}")
    from paprec_cli.export_schema import check_row

    rows = []
    for number, cells in enumerate(reader, start=3):
        if not cells:
            continue
        try:
            row = {
                "user_idx": int(cells[0]),
                "user": cells[1] or None,
                "token_ids": json.loads(cells[2]) if cells[2] else None,
                "tokens": json.loads(cells[3]) if cells[3] else None,
            }
        except (ValueError, IndexError) as exc:
            raise PaprecError(f"{source}:{number}: malformed row ({exc}); {REEXPORT}") from None
        check_row(row, f"{source}:{number}", REEXPORT)  # e.g. token_ids ["a"] or [1.5]
        rows.append(row)
    return _rebuild(meta, rows, source)


def _read_parquet(source: Path) -> Document:
    import polars as pl

    try:
        file_meta = pl.read_parquet_metadata(source)
        table = pl.read_parquet(source)
    except Exception as exc:  # polars raises several types for a file that is not Parquet
        raise PaprecError(f"{source}: not a readable Parquet file ({type(exc).__name__}); {REEXPORT}") from None
    if PARQUET_META_KEY not in file_meta:
        raise PaprecError(f"{source}: no '{PARQUET_META_KEY}' metadata entry; export it with `paprec export-prompts`")
    missing = [c for c in COLUMNS[:4] if c not in table.columns]
    if missing:
        raise PaprecError(f"{source}: missing column(s) {', '.join(missing)}; {REEXPORT}")
    from paprec_cli.export_schema import check_row

    rows = list(table.iter_rows(named=True))
    for number, row in enumerate(rows, start=1):
        check_row(row, f"{source}: row {number}", REEXPORT)  # e.g. token ids written as strings
    return _rebuild(_meta_json(file_meta[PARQUET_META_KEY], source), rows, source)
