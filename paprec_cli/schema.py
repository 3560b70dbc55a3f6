"""Checking paprec's own JSON artefacts against a typed schema, with a one-line error naming file and field.

The schemas are pydantic v2 models in strict mode (a string where a number belongs is an error, never
converted) that allow extra keys (newer paprec versions and plugins may record more). `check` validates a
loaded JSON value; `read_checked` reads a file through `paths.read_json_object` first. Either raises a
`PaprecError` such as::

    /home/m/config.json: field 'dims.num_heads': input should be greater than 0 (found 0); <fix>

Only the first problem is reported (one line); fixing it and reading again shows the next.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from paprec_cli.errors import PaprecError

#: How many characters of a wrong value an error shows.
MAX_SHOWN = 60


class Record(BaseModel):
    """Base of every artefact schema: strict types, unknown keys kept, field names as written in the file."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


RecordT = TypeVar("RecordT", bound=Record)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def describe_error(err: ValidationError) -> str:
    """The first problem of a validation error as `field 'a.b': what is wrong (found X)`."""
    first = err.errors(include_url=False)[0]
    parts = [str(part) for part in first["loc"]]
    message = str(first["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if parts and parts[-1] == "[key]":  # a bad key of an object, e.g. a user index "0"
        where = f"key '{'.'.join(parts[:-1])}'"
    else:
        where = f"field '{'.'.join(parts)}'" if parts else "the document"
    if first["type"] == "missing":
        return f"{where} is missing"
    if not parts:  # a rule across fields: its message says it all
        return message
    return f"{where}: {message} (found {_shown(first.get('input'))})"


def check(schema: type[RecordT], data: object, path: Path | str, fix: str) -> RecordT:
    """`data` validated as `schema`; a `PaprecError` `"{path}: field '...': ...; {fix}"` otherwise."""
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise PaprecError(f"{path}: {describe_error(err)}; {fix}") from None


def read_checked(schema: type[RecordT], path: Path, fix: str) -> RecordT:
    """Read the JSON object at `path` and validate it as `schema` (errors name the file, the field and `fix`)."""
    from paprec_cli.paths import read_json_object

    return check(schema, read_json_object(path, fix), path, fix)
