"""User-facing errors: one line, a fix, exit code 2, never a traceback.

Anything a user can cause (a bad path, a malformed line, an unknown name) raises `PaprecError`;
the CLI prints its message on one line and exits 2. Bugs stay ordinary exceptions.
"""

from __future__ import annotations

from pathlib import Path


class PaprecError(Exception):
    """A mistake the user can fix; `str(err)` is the whole one-line message."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class DataFormatError(PaprecError):
    """A data file does not have the expected format; names the file and line."""

    def __init__(self, path: Path | str, line: int | None, problem: str, expected: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}; expected {expected}")


def unknown_name(kind: str, name: str, known: list[str], option: str) -> PaprecError:
    """The error for an unknown task/dataset/model name, listing the known ones."""
    listing = ", ".join(sorted(known)) or "(none installed)"
    return PaprecError(f"unknown {kind} '{name}' for {option}; known: {listing}")
