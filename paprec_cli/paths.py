"""Where paprec keeps data, models and runs, and how it writes files safely.

`--home` or `PAPREC_HOME` override the platformdirs location. Every write goes through a temporary
file or folder and an atomic rename, so an interrupted command never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

HOME_ENV = "PAPREC_HOME"


@dataclass(frozen=True)
class Home:
    """The root folder and its fixed layout."""

    root: Path

    @classmethod
    def resolve(cls, home: Path | str | None = None) -> Home:
        """`--home` wins, then `PAPREC_HOME`, then the platform's user data folder (noted for the command's
        errors: `errors.note_default_home`)."""
        from paprec_cli.errors import note_default_home

        given = home or os.environ.get(HOME_ENV)
        chosen = given or platformdirs.user_data_dir("paprec", appauthor=False)
        resolved = cls(Path(chosen).expanduser().resolve())
        note_default_home(None if given else resolved.root)
        resolved.check_folders()
        return resolved

    def check_folders(self) -> None:
        """Refuse a home whose root (or one of its parents, or its `data`/`models`/`runs`) is a file: readers
        would otherwise report an empty home. Raises `PaprecError`, the one-line error a writer gets there."""
        from paprec_cli.errors import PaprecError, os_error_message

        for folder in (self.data, self.models, self.runs):
            if folder.exists() and not folder.is_dir():
                raise PaprecError(os_error_message(OSError(errno.ENOTDIR, "not a folder", str(folder))))
        for folder in (self.root, *self.root.parents):
            if folder.exists():
                if not folder.is_dir():
                    raise PaprecError(os_error_message(OSError(errno.ENOTDIR, "not a folder", str(self.root))))
                return

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def dataset_dir(self, name: str) -> Path:
        return self.data / name

    def model_dir(self, name: str) -> Path:
        return self.models / name

    def train_state_dir(self, name: str) -> Path:
        """Where `paprec train` keeps the resume state of model `name` (`paprec_cli.training.state`)."""
        return train_state_dir(self.model_dir(name))


def train_state_dir(model_folder: Path) -> Path:
    """The resume state folder of the model at `model_folder`: `<models>/.train-state/<name>/`."""
    return Path(model_folder).parent / ".train-state" / Path(model_folder).name


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `target` only if the block succeeds.

    Works for files and folders alike (an existing folder at `target` is replaced). The temporary folder is
    removed however the block ends; an OS error (making the temporary folder in a read-only folder, writing,
    renaming) names `target`, never the temporary name, and Ctrl-C or SIGTERM (KeyboardInterrupt)
    becomes `errors.Interrupted` saying that nothing was written to `target` (exit 130).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:  # a read-only or full folder: name the output, not the temporary name tried
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
    staged = tmp / target.name
    try:
        try:
            yield staged
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM mid-write: the target is untouched; say so
            from paprec_cli.errors import Interrupted

            if isinstance(exc, Interrupted):
                raise
            raise Interrupted(f"nothing was written to {target} (it is as it was); run the command again") from None
        except OSError as exc:
            if exc.filename is None:  # a failed write() names no file: name the output being written
                raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
            if str(exc.filename).startswith(str(tmp)):  # a staged path: name the same path in the output
                named = str(exc.filename).replace(str(staged), str(target), 1)
                raise OSError(exc.errno, exc.strerror or str(exc), named if named.startswith(str(target))
                              else str(target)) from exc
            raise
        except Exception as exc:
            number = os_errno_in(exc)
            if number is None:
                raise
            raise OSError(number, os.strerror(number), str(target)) from exc  # polars/pyarrow wrap OS errors
        try:
            if target.is_dir() and staged.is_dir():
                backup = target.with_name(f".{target.name}.old")
                shutil.rmtree(backup, ignore_errors=True)
                target.rename(backup)
                staged.rename(target)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                os.replace(staged, target)
        except OSError as exc:  # the rename names the staged copy and the target: name the output alone
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def library_write(path: Path | str) -> Iterator[None]:
    """Run one library write of `path` (`torch.save`, a safetensors or tokenizers save): every failure of the
    write becomes an `OSError` naming `path` (the final file, not its staged copy), so the error boundary and
    the callers' cleanup (`atomic_path`, `train`'s full-disk path) treat it as a full disk is treated.

    An `OSError` keeps its errno; a library's own error type that carries one ("... (os error 28)") becomes that
    `OSError`; torch's zip writer's `RuntimeError` and safetensors' `SafetensorError` (they report a short write
    without an errno) become `errors.WriteFailed` ("could not be written (...), the disk may be full")."""
    from paprec_cli.errors import WriteFailed

    try:
        yield
    except OSError as exc:
        if isinstance(exc, WriteFailed):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except Exception as exc:
        number = os_errno_in(exc)
        if number is not None:
            raise OSError(number, os.strerror(number), str(path)) from exc
        if isinstance(exc, RuntimeError) or type(exc).__name__ == "SafetensorError":
            raise WriteFailed(path, exc) from exc
        raise


def os_errno_in(exc: BaseException) -> int | None:
    """The errno of an OS error that a library reported in its own exception type ("... (os error 28)", as
    polars and Rust-backed writers say), else None."""
    import re

    found = re.search(r"\(os error (\d+)\)", str(exc))
    return int(found.group(1)) if found else None


def home_option(home: Path | None) -> list[str]:
    """`["--home", HOME]` for a command line paprec suggests, when the same command without `--home` would use
    another home (PAPREC_HOME, else the platform folder); [] when it would use `home`, or `home` is None."""
    if home is None:
        return []
    default = os.environ.get(HOME_ENV) or platformdirs.user_data_dir("paprec", appauthor=False)
    if Path(default).expanduser().resolve() == Path(home).expanduser().resolve():
        return []
    return ["--home", str(home)]


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, obj: object) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_output(path: Path | None, option: str, force: bool, reads: tuple[Path | str | None, ...] = ()) -> None:
    """Refuse to replace a file the user made: an existing `path` needs `force`; a file this command reads
    (`reads`, e.g. the `--prompts` file) is never an output. Checked before any work; raises `PaprecError`."""
    from paprec_cli.errors import PaprecError

    if path is None:
        return
    target = Path(path).expanduser()
    for source in reads:
        if source is not None and Path(source).expanduser().exists() and target.exists() \
                and target.resolve() == Path(source).expanduser().resolve():
            raise PaprecError(f"{option} {path}: is the file this command reads; choose another output path")
    if target.is_dir():
        raise PaprecError(f"{option} {path}: is a folder; expected a file path")
    if target.exists() and not force:
        raise PaprecError(f"{option} {path}: the file exists; pass --force to replace it, or choose another path")


def json_error_text(err: json.JSONDecodeError) -> str:
    """What is wrong and where: "Expecting ',' delimiter at line 5 column 3"; json's messages that end in
    "at" ("Unterminated string starting at") are not given a second one."""
    where = f"line {err.lineno} column {err.colno}"
    return f"{err.msg} {where}" if err.msg.endswith(" at") else f"{err.msg} at {where}"


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """A JSON object from `path`, or a `PaprecError` naming the file, what is wrong and `fix` (the one reader
    of paprec's own JSON artefacts: manifests, run states)."""
    from paprec_cli.errors import PaprecError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise PaprecError(f"{path}: not UTF-8 text ({err.reason}); {fix}") from None
    except json.JSONDecodeError as err:
        raise PaprecError(f"{path}: not valid JSON ({json_error_text(err)}); {fix}") from None
    if not isinstance(data, dict):
        raise PaprecError(f"{path}: expected a JSON object, found {type(data).__name__}; {fix}")
    return data
