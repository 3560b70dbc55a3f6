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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from paprec_cli.errors import PaprecError
from paprec_cli.inputs import PAPREC, InputProtocol, inputs_for
from paprec_cli.paths import Home, atomic_path, write_text_atomic

FORMAT = "paprec-prompts/1"
ExportFormat = Literal["json", "parquet", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("json", "parquet", "csv")
PROMPTS_FILE = "prompts.json"
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
# Locating runs and files
# ---------------------------------------------------------------------------------------------------


#: Run name meaning "the most recently finished run in this home".
LATEST = "latest"


def resolve_run(run: str | Path, home: Home) -> Path:
    """A run directory from a path, a run name under `<home>/runs`, or `latest` (the newest finished run)."""
    path = Path(run).expanduser()
    if path.is_dir():
        return path
    named = home.runs / str(run)
    if named.is_dir():
        return named
    if str(run) == LATEST:
        finished = sorted(p.parent for p in home.runs.glob(f"*/{PROMPTS_FILE}")) if home.runs.is_dir() else []
        if finished:
            return max(finished, key=lambda p: ((p / PROMPTS_FILE).stat().st_mtime, p.name))
    known = sorted(p.name for p in home.runs.glob("*") if p.is_dir()) if home.runs.is_dir() else []
    hint = f"runs in {home.runs}: {', '.join(known)}" if known else f"no runs in {home.runs} yet"
    raise PaprecError(f"run '{run}': not a folder and not a run name ({hint}); pass a run folder or name")


def run_prompts(run: str | Path, home: Home) -> Path:
    """The `prompts.json` of a run (by folder or name); an error if the search has not written it yet."""
    folder = resolve_run(run, home)
    path = folder / PROMPTS_FILE
    if not path.is_file():
        raise PaprecError(
            f"{folder}: no {PROMPTS_FILE} (the search has not finished); "
            f"resume it with `paprec search --resume {folder}`"
        )
    return path


def format_of(path: Path, fmt: str | None = None) -> ExportFormat:
    """The explicit `--format`, else the file suffix."""
    chosen = (fmt or path.suffix.lstrip(".")).lower()
    if chosen not in FORMATS:
        raise PaprecError(f"{path}: unknown prompts format '{chosen}'; use --format json, parquet or csv")
    return chosen  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------


def _tokens(value: Any, where: str, source: Path | str) -> list[Token]:
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


def validate_document(doc: Any, source: Path | str) -> Document:
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
    return doc


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


def export_prompts(doc: Document, path: Path, fmt: str | None = None, *, force: bool = False) -> ExportFormat:
    """Write `doc` to `path` atomically; refuse to overwrite an existing file unless `force`."""
    chosen = format_of(path, fmt)
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


def load_prompts(path: str | Path, home: Home | None = None) -> Document:
    """Read a prompts document from JSON, Parquet or CSV (or a run folder/name) and check its structure.

    Checks against a model or dataset are `check_codec` and `check_fingerprints`.
    """
    source = Path(path).expanduser()
    if source.is_dir() or (home is not None and not source.exists() and (home.runs / str(path)).is_dir()):
        source = run_prompts(path, home or Home.resolve())
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


def _read_json(source: Path) -> Any:
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PaprecError(f"{source}: not a UTF-8 CSV file; pass a file written by `paprec export-prompts`") from None
    first, _, body = text.partition("\n")
    if not first.startswith(CSV_META_PREFIX):
        raise PaprecError(f"{source}: first line is not '{CSV_META_PREFIX.strip()} {{...}}'; {REEXPORT}")
    meta = _meta_json(first[len(CSV_META_PREFIX) :], source)
    reader = csv.reader(io.StringIO(body, newline=""))
    header = next(reader, None)
    if header is None or tuple(header[: len(COLUMNS)]) != COLUMNS:
        raise PaprecError(f"{source}:2: header is {header!r}; expected columns {', '.join(COLUMNS)}")
    rows = []
    for number, cells in enumerate(reader, start=3):
        if not cells:
            continue
        try:
            rows.append(
                {
                    "user_idx": int(cells[0]),
                    "user": cells[1] or None,
                    "token_ids": json.loads(cells[2]) if cells[2] else None,
                    "tokens": json.loads(cells[3]) if cells[3] else None,
                }
            )
        except (ValueError, IndexError) as exc:
            raise PaprecError(f"{source}:{number}: malformed row ({exc}); {REEXPORT}") from None
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
    return _rebuild(_meta_json(file_meta[PARQUET_META_KEY], source), table.iter_rows(named=True), source)


# ---------------------------------------------------------------------------------------------------
# Binding a document to the dataset and model it names
# ---------------------------------------------------------------------------------------------------


@dataclass
class BoundPrompts:
    """A checked document with the dataset and model it was searched on, ready for eval or recommend."""

    doc: Document
    source: Path
    dataset: Any  # paprec_cli.data.store.Dataset
    bundle: Any  # paprec_cli.model.ModelBundle
    split_seed: int
    run: Path | None = None
    #: How prompts are written for this model (P5 checkpoints: P5's protocol, with the run's separator).
    inputs: InputProtocol = PAPREC
    #: The decoding the run's search used ("paprec" for a prompts file): eval's default.
    decoding: str = "paprec"


def open_prompts(
    prompts: str | Path,
    home: Home,
    *,
    model: str | None = None,
    dataset: str | None = None,
    tokenizer: str | None = None,
) -> BoundPrompts:
    """Load a prompts file or run, then the dataset and model it names (or the overrides), and check
    fingerprints and token ids so that a document is never applied to a model it was not searched for.

    The split seed comes from the run's manifest when there is one, else from the model's config (the
    splits the model was trained on), as the search does. `tokenizer` is the T5 tokenizer of a HF/P5
    checkpoint; without it, the one the run's search used (its manifest), else the one beside the weights.
    """
    from paprec_cli.data.store import load_dataset
    from paprec_cli.evaluate import split_seed
    from paprec_cli.model import load_model
    from paprec_cli.search.runner import model_fingerprint

    path = Path(prompts).expanduser()
    if not path.exists() and path.suffix.lstrip(".").lower() in FORMATS:
        raise PaprecError(f"{path}: no such prompts file; pass a file written by `paprec export-prompts` or a run")
    run = None if path.is_file() else resolve_run(prompts, home)
    source = path if run is None else run_prompts(run, home)
    doc = load_prompts(source)
    data = load_dataset(home, dataset or str(doc["dataset"]))
    check_fingerprints(doc, source, dataset_fingerprint=data.fingerprint)
    model_ref = model or str(doc["model"])
    manifest = run / "manifest.json" if run is not None else None
    recorded_config: dict[str, Any] = {}
    if manifest is not None and manifest.is_file():
        recorded_config = json.loads(manifest.read_text(encoding="utf-8")).get("config") or {}
    if tokenizer is None and model is None and recorded_config.get("tokenizer"):
        tokenizer = str(recorded_config["tokenizer"])
    bundle = load_model(model_ref, home, dataset=data, tokenizer=Path(tokenizer) if tokenizer else None)
    check_fingerprints(doc, source, model_fingerprint=model_fingerprint(bundle))
    check_codec(doc, bundle.codec, source, model=model_ref)
    seed = split_seed(bundle)
    recorded = recorded_config.get("split_seed")
    seed = int(recorded) if recorded is not None else seed
    run_seed = int(recorded_config.get("seed") or 0)
    inputs = inputs_for(bundle.config, data.name, recorded_config.get("separator"), run_seed)
    return BoundPrompts(doc, source, data, bundle, seed, run, inputs, str(recorded_config.get("decoding") or "paprec"))
