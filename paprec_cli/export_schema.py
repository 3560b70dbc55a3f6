"""The typed schema of a prompts document's working parts (`paprec-prompts/1`, docs/EXPORT.md).

`export.validate_document` checks the format tag and required keys, then calls `check_parts`: the layout
(non-negative integer slot counts, the one template paprec writes), tokens (`{id: int >= 0, text: str}`),
1-based user indices, and slot counts that match the token lists (an edited `layout.n_suffix` would
otherwise be applied silently to the wrong number of tokens). `check_row` checks one row of a Parquet/CSV
export before the document is rebuilt from it; `check_bounds` checks user indices and token ids against
the dataset and model in use. Every error is one line naming the file, the field and the fix.
Kept apart from `export.py`, which the CLI imports at startup: pydantic loads only when a document is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, NonNegativeInt, PositiveInt

from paprec_cli.errors import PaprecError
from paprec_cli.jsontypes import JSONValue
from paprec_cli.schema import Record, check

#: The only template paprec writes (`search.layout.TEMPLATE`; a test keeps the two equal): the model input is
#: built from the slot counts, so a different template would describe a prompt the model never sees.
TEMPLATE = "[prefix] {argument} [suffix] [personal]"


def _user_index(key: str) -> str:
    if not key.isdigit() or key.startswith("0"):
        raise ValueError("a user index is 1, 2, ... (1-based, as in user_N)")
    return key


UserKey = Annotated[str, AfterValidator(_user_index)]


class TokenRecord(Record):
    id: NonNegativeInt
    text: str


class LayoutRecord(Record):
    n_prefix: NonNegativeInt
    n_suffix: NonNegativeInt
    n_personal: NonNegativeInt
    template: Literal["[prefix] {argument} [suffix] [personal]"] = "[prefix] {argument} [suffix] [personal]"


class SharedTokens(Record):
    prefix: list[TokenRecord] = []
    suffix: list[TokenRecord] = []
    personal_default: list[TokenRecord] = []


class InitialTokens(Record):
    prefix: list[TokenRecord] = []
    suffix: list[TokenRecord] = []
    personal: list[TokenRecord] = []


class DocumentParts(Record):
    """The parts of a prompts document that decide the model's input."""

    layout: LayoutRecord
    shared: SharedTokens
    initial: InitialTokens | None = None
    personal: dict[UserKey, list[TokenRecord]] = {}
    users: dict[UserKey, str] = {}


class PromptRow(Record):
    """One row of a Parquet/CSV export (`prompt` is display only and not checked)."""

    user_idx: PositiveInt
    user: str | None = None
    token_ids: list[NonNegativeInt] | None = None
    tokens: list[str] | None = None


def check_parts(doc: dict[str, JSONValue], source: Path | str, fix: str) -> DocumentParts:
    """The document's layout, tokens and users checked; slot counts must match the token lists."""
    parts = check(DocumentParts, doc, source, fix)
    layout = parts.layout
    counts = {"shared.prefix": (len(parts.shared.prefix), "n_prefix", layout.n_prefix),
              "shared.suffix": (len(parts.shared.suffix), "n_suffix", layout.n_suffix),
              "shared.personal_default": (len(parts.shared.personal_default), "n_personal", layout.n_personal)}
    counts.update({f"personal.{user}": (len(tokens), "n_personal", layout.n_personal)
                   for user, tokens in parts.personal.items()})  # fmt: skip
    for field, (found, slot, expected) in counts.items():
        if found != expected:
            raise PaprecError(f"{source}: field '{field}' has {found} token(s) but layout.{slot} is {expected}; {fix}")
    return parts


def check_row(row: dict[str, JSONValue], where: str, fix: str) -> PromptRow:
    """One Parquet/CSV row (`where`: the file and line or row number)."""
    return check(PromptRow, row, where, fix)


def check_bounds(parts: DocumentParts, source: Path | str, *, n_users: int, vocab_size: int, dataset: str,
                 model: str, fix: str) -> None:
    """User indices within the dataset's 1..n_users and token ids within the model's vocabulary."""
    for group in ("personal", "users"):
        for user in getattr(parts, group):
            if int(user) > n_users:
                raise PaprecError(f"{source}: field '{group}.{user}': user index {user} is out of range for dataset "
                                  f"'{dataset}' (users 1..{n_users}); {fix}")
    places: list[tuple[str, list[TokenRecord]]] = [
        ("shared.prefix", parts.shared.prefix), ("shared.suffix", parts.shared.suffix),
        ("shared.personal_default", parts.shared.personal_default),
        *((f"personal.{user}", tokens) for user, tokens in parts.personal.items()),
    ]  # fmt: skip
    if parts.initial is not None:
        places += [("initial.prefix", parts.initial.prefix), ("initial.suffix", parts.initial.suffix),
                   ("initial.personal", parts.initial.personal)]  # fmt: skip
    for where, tokens in places:
        for i, token in enumerate(tokens):
            if token.id >= vocab_size:
                raise PaprecError(f"{source}: field '{where}.{i}.id': token id {token.id} is outside the vocabulary "
                                  f"of {model} (ids 0..{vocab_size - 1}); {fix}")
