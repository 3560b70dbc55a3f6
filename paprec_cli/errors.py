"""User-facing errors: one line, a fix, exit code 2, never a traceback.

Anything a user can cause (a bad path, a malformed line, an unknown name) raises `PaprecError`;
the CLI prints its message on one line and exits 2. Bugs stay ordinary exceptions.
"""

from __future__ import annotations

import errno
import json
from contextvars import ContextVar
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


def first_line(err: BaseException, width: int = 160) -> str:
    """The first line of a library's error text for a one-line message, shortened to at most `width`
    characters between words (`textwrap.shorten`: never cut mid-word, "..." marks the cut); the exception's
    type name when it says nothing."""
    import textwrap

    lines = str(err).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    if not text:
        return type(err).__name__
    short = textwrap.shorten(text, width, placeholder=" ...")
    return short if short != "..." else f"{text[:width - 4]} ..."  # one word longer than `width`


class WriteFailed(OSError):
    """A library's file writer (torch.save's zip writer, safetensors) failed with its own exception type, not
    an `OSError` (as a full disk makes torch's writer raise `RuntimeError: [enforce fail at
    inline_container.cc:...] . unexpected pos ...`): `filename` is the file, `strerror` what the library said.
    Shown like a full disk (the likeliest cause), and handled wherever an `OSError` is."""

    def __init__(self, path: Path | str, cause: BaseException) -> None:
        said = first_line(cause).replace(";", ",") if str(cause).strip() else ""
        super().__init__(None, f"could not be written ({type(cause).__name__}: {said}), the disk may be full",
                         str(path))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, re-raised with what was saved and how to continue (`hint`, one line)."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = " ".join(hint.split())


def unknown_name(kind: str, name: str, known: list[str], option: str) -> PaprecError:
    """The error for an unknown task/dataset/model name, listing the known ones."""
    listing = ", ".join(sorted(known)) or "(none installed)"
    return PaprecError(f"unknown {kind} '{name}' for {option}; known: {listing}")


#: errno -> (what happened, the fix), for the OSErrors a user's environment causes.
_OS_FIXES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space or point --home (or the output) elsewhere, "
                   "then run the command again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or point --home (or the output) elsewhere, then run the "
                   "command again"),
    errno.EROFS: ("read-only file system", "choose a writable --home / PAPREC_HOME or output path"),
    errno.EACCES: ("permission denied", "fix the permissions or choose a writable --home / PAPREC_HOME or output "
                   "path"),
    errno.EPERM: ("operation not permitted", "fix the permissions or choose another --home / PAPREC_HOME or output "
                  "path"),
    errno.ENOTDIR: ("a part of this path is a file, not a folder", "check --home / PAPREC_HOME, --run-dir and "
                    "the output path"),
    errno.EISDIR: ("is a folder", "give a file path, not a folder"),
    errno.ENOENT: ("no such file or folder", "check the path"),
}


#: The home paprec chose by itself (the platform's user data folder: no --home, PAPREC_HOME unset) for the
#: command running now, set by `paths.Home.resolve`; None when the user chose the home.
_DEFAULT_HOME: ContextVar[Path | None] = ContextVar("paprec_default_home", default=None)

#: errno -> the fix at the platform folder itself, when paprec chose it (`_DEFAULT_HOME`).
_HOME_FIXES: dict[int, str] = {
    errno.ENOSPC: "free some space there", errno.EDQUOT: "free some space there",
    errno.EROFS: "make it writable", errno.EACCES: "make it writable", errno.EPERM: "make it writable",
    errno.ENOTDIR: "move the file that is in the way",
}


def note_default_home(root: Path | None) -> None:
    """Record the home paprec chose by itself for this command (None: the user chose it, with --home or
    PAPREC_HOME), so that an OS error under it says which folder that is and how to choose another."""
    _DEFAULT_HOME.set(Path(root) if root is not None else None)


def _in_default_home(path: str | None) -> Path | None:
    """The default home when `path` is in it, is it, or is one of its parents (a file in the way); else None."""
    root = _DEFAULT_HOME.get()
    if root is None or path is None:
        return None
    where = Path(path)
    return root if where == root or root in where.parents or where in root.parents else None


def os_error_message(exc: OSError) -> str:
    """The one-line message for an `OSError`: the path, what happened, and the fix. Under the home paprec chose
    by itself (the platform's user data folder), the fix says so and names --home / PAPREC_HOME."""
    where = exc.filename if exc.filename is not None else None
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    problem, fix = _OS_FIXES.get(exc.errno or -1, (exc.strerror or type(exc).__name__, "check the path and retry"))
    if isinstance(exc, WriteFailed):
        problem, fix = exc.strerror or "could not be written, the disk may be full", _OS_FIXES[errno.ENOSPC][1]
    home = _in_default_home(exc.filename) if exc.filename2 is None else None
    if home is not None:
        at_home = "free some space there" if isinstance(exc, WriteFailed) else _HOME_FIXES.get(exc.errno or -1,
                                                                                                "check it")
        fix = (f"{home} is paprec's home by default, the platform's user data folder (neither --home nor "
               f"PAPREC_HOME is set): {at_home}, or choose another home with --home PATH or PAPREC_HOME=PATH")
    prefix = f"{where}: " if where is not None else ""
    return " ".join(f"{prefix}{problem}; {fix}".split())


def user_message(exc: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit code) for an exception the user or their environment caused; None for a bug.

    `PaprecError` -> its message, 2; `OSError` (full disk, read-only or unwritable folder, a file where a
    folder belongs) -> path + fix, 2; Ctrl-C / SIGTERM -> "Interrupted.", 130; torch's out-of-memory
    (matched by name: importing torch here costs seconds) -> a hint to lower --batch-size, 2.
    """
    if isinstance(exc, PaprecError):
        return str(exc), exc.exit_code
    if isinstance(exc, Interrupted):
        return f"Interrupted; {exc.hint}", 130
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted.", 130
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else "out of memory"
        return f"the device ran out of memory ({first}); pass a smaller --batch-size", 2
    if isinstance(exc, OSError):
        return os_error_message(exc), 2
    return None


def json_error(message: str, exit_code: int) -> str:
    """The `--json` form of an error: one JSON object for stdout."""
    return json.dumps({"error": message, "exit_code": exit_code})
