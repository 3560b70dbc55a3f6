"""One lock per home object (dataset, model, run), so two writers never interleave.

A lock is an advisory `fcntl.flock` on a small file beside the object (`.<name>.lock` next to a model or
dataset folder, `.lock` inside a run folder). Writers take it exclusively, readers that must not see a
half-written object take it shared. Acquisition never waits: a held lock is a one-line `PaprecError` naming
the process that holds it (its pid and command, written into the lock file) and what to do.

Locks live as long as the command: `acquire` registers the release with the enclosing `command_scope`
(opened by the CLI's error boundary), so core functions take locks without threading a context through
every call. The operating system drops a lock when its process dies, so a `kill -9` never leaves a stale
lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from paprec_cli.errors import PaprecError

_SCOPE: ContextVar[contextlib.ExitStack | None] = ContextVar("paprec_lock_scope", default=None)
#: Lock files held by this process: path -> (file descriptor, shared?).
_HELD: dict[Path, tuple[int, bool]] = {}

#: errno values meaning "this file system cannot hold a lock file here" (a reader goes on without one).
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def lock_path(obj: Path) -> Path:
    """The lock file of a model or dataset folder (its hidden sibling) or of a run folder (inside it)."""
    obj = Path(obj)
    return obj.parent / f".{obj.name}.lock"


def run_lock_path(run: Path) -> Path:
    return Path(run) / ".lock"


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """Release every lock taken with `acquire` when the block (one CLI command) ends, however it ends."""
    stack = contextlib.ExitStack()
    token = _SCOPE.set(stack)
    try:
        with stack:
            yield
    finally:
        _SCOPE.reset(token)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def acquire(path: Path, what: str, *, shared: bool = False) -> None:
    """Lock `path` (a lock file, created if missing) until the enclosing `command_scope` ends.

    `what` names the object in the refusal, e.g. "model 'beauty-small-atomic'". Raises `PaprecError`
    when another process holds a conflicting lock. A shared (reader) lock that cannot be created because
    the folder is read-only is skipped: nobody can write there either, and a reader never writes. A lock
    this process already holds is kept (a shared one is upgraded in place when `shared` is False).
    Outside a `command_scope` (library use) nothing is locked: the caller coordinates its own writers.
    """
    path = Path(path)
    scope = _SCOPE.get()
    if scope is None:
        return
    if path in _HELD:
        fd, held_shared = _HELD[path]
        if shared or not held_shared:
            return
        _flock(fd, path, what, shared=False)
        _HELD[path] = (fd, False)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if shared and exc.errno in _READ_ONLY:
            return
        raise
    try:
        _flock(fd, path, what, shared=shared)
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):  # who holds it, for the refusal of the next process
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} ({' '.join(['paprec', *sys.argv[1:3]])})\n".encode())
    _HELD[path] = (fd, shared)

    def release_at_end() -> None:
        if _HELD.get(path, (None,))[0] != fd:  # released early (`release`): its descriptor is closed already
            return
        _HELD.pop(path, None)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    scope.callback(release_at_end)


def writer_of(path: Path) -> str | None:
    """Who holds a writer's (exclusive) lock on the lock file `path` in another process ("process 123 (paprec
    train)"), else None. Only looks: the file is not created, nothing stays locked, a reader's shared lock does
    not count."""
    path = Path(path)
    if path in _HELD or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path)
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return None


def release(path: Path) -> None:
    """Drop a lock this process holds before its command ends (a no-op when it holds none): for a name a
    command locked, looked at and then chose not to use."""
    held = _HELD.pop(Path(path), None)
    if held is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(held[0], fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(held[0])


def _flock(fd: int, path: Path, what: str, *, shared: bool) -> None:
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        mode = "reading" if shared else "writing"
        raise PaprecError(
            f"{what} is in use by {_holder(path)} (lock {path}); wait until it ends, or stop it, before {mode} it"
        ) from None
