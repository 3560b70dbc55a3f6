"""The run directory: one folder per search, written so that any interruption can be resumed.

`manifest.json` (resolved config, fingerprints, protocol; written once), `trajectory.jsonl` (one line per
step, appended and fsynced *before* the state that counts it), `state.json` (atomic, after every step),
`prompts.json` (the result; atomic). After a crash, the trajectory may hold a line the state does not
count yet: `open_for_resume` trims it, and the resumed search redoes that step identically.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home, read_json_object, write_json_atomic, write_text_atomic
from paprec_cli.search.state import SearchState

if TYPE_CHECKING:
    from paprec_cli.export import Document

MANIFEST = "manifest.json"
STATE = "state.json"
TRAJECTORY = "trajectory.jsonl"
PROMPTS = "prompts.json"
#: Every file a search writes into its run folder (the lock file `.lock` aside).
RUN_FILES = (MANIFEST, STATE, TRAJECTORY, PROMPTS)


class RunManifest(TypedDict):
    """`manifest.json` (format `paprec-run/1`, docs/RUNS.md): what the run was started with."""

    format: str
    created: str
    config: dict[str, Any]  # SearchConfig.to_json()
    seed: int
    device: str
    batch_sizes: dict[str, int]
    libraries: dict[str, str]
    dataset: dict[str, str]  # name, fingerprint
    model: dict[str, Any]  # path, fingerprint, id_scheme, size
    protocol: dict[str, Any]
    task: dict[str, Any]  # name, kind, manual_template
    sizes: dict[str, int]
    initial: dict[str, Any]  # tokens_to_json of the initial prompt
    history_rule: str | None  # the history words' ranking rule (count, liked; None: none); older runs lack it


def new_run_path(home: Home, task: str, dataset: str) -> Path:
    """`<home>/runs/<UTC timestamp>-<task>-<dataset>`, with a counter if that name is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = home.runs / f"{stamp}-{task}-{dataset}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def holds_run(path: Path) -> bool:
    """Whether the folder `path`, which has a `manifest.json`, is a run's (to resume, even damaged): it has a
    `state.json` or `trajectory.jsonl`, or its manifest is a run's (`holds_run_manifest`)."""
    path = Path(path)
    return (path / STATE).exists() or (path / TRAJECTORY).exists() or holds_run_manifest(path)


def holds_run_manifest(path: Path) -> bool:
    """Whether `path/manifest.json` is a run's: one that cannot be read as a JSON object (a damaged run
    manifest: `--resume` names what is wrong with it), or an object with a `paprec-run/...` format or a
    `config` object. False for another program's manifest, such as a dataset's (`paprec data import`)."""
    try:
        data = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True
    if not isinstance(data, dict):
        return True
    return str(data.get("format", "")).startswith("paprec-run/") or isinstance(data.get("config"), dict)


#: A folder with `config.json` and one of these is a model's (paprec's or a Hugging Face T5 folder).
MODEL_CONFIG = "config.json"
MODEL_FILES = ("model.safetensors", "pytorch_model.bin", "codec.json", "tokenizer.json")


def other_folder(path: Path) -> str | None:
    """Why the folder `path` belongs to something other than a run, or None: a dataset's or another program's
    folder (a `manifest.json` that is not a run's: `holds_run_manifest`) or a model folder (a `config.json`
    beside weights, `codec.json` or `tokenizer.json`: paprec's or a Hugging Face T5 folder). A run written
    into it would mix its files with theirs (or, for a model, make `paprec models list` read a run)."""
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / MANIFEST).is_file() and not holds_run(path):
        others = sorted(p.name for p in path.iterdir() if p.name != MANIFEST and not p.name.startswith("."))
        listing = f"; it holds other files: {_few(others)}" if others else ""
        return f"its {MANIFEST} is not a paprec run's{listing}"
    found = [name for name in MODEL_FILES if (path / name).is_file()]
    if (path / MODEL_CONFIG).is_file() and found:
        return f"it is a model folder: it holds {MODEL_CONFIG}, {', '.join(found)}"
    return None


def home_folder(path: Path, home: Home) -> str | None:
    """Why `path` is one of the paprec home's own folders, or None: the home itself, its `runs` folder, or
    `data` / `models` or anything under them (datasets, models and training states live there; a run
    written there would be listed as, or mixed into, one of them). Runs belong in `<home>/runs/<name>`
    or outside the home."""
    path = Path(path).expanduser().resolve()
    root = home.root.resolve()
    if path == root:
        return f"it is the paprec home ({path})"
    if path == home.runs.resolve():
        return f"it is the paprec home's runs folder ({path}); a run gets a folder of its own in it"
    for folder in (home.data, home.models):
        inside = folder.resolve()
        if path == inside or inside in path.parents:
            return f"it is inside the paprec home's {folder.name} folder ({inside})"
    return None


def _few(names: list[str], n: int = 4) -> str:
    shown = ", ".join(names[:n])
    return f"{shown} and {len(names) - n} more" if len(names) > n else shown


class RunDir:
    """Read and write one run folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.read_only = False  # a finished run opened by --resume: every write is skipped

    @staticmethod
    def check_new(path: Path, force: bool = False, home: Home | None = None) -> None:
        """Refuse a run folder that holds a run (resume it instead), a file the run writes (`RUN_FILES`, even
        with `force`: nothing of the user's is replaced) or, without `force`, any other files; with `home`,
        also the home's own folders (`home_folder`), even with `force`.

        Raises `PaprecError`; a file at `path` (not a folder) is refused too. Nothing is written.
        """
        path = Path(path)
        other = other_folder(path) or (home_folder(path, home) if home is not None else None)
        if other is not None:  # even with --force: a run would mix its files into a dataset's or a model's
            raise PaprecError(f"--run-dir {path}: not a run folder ({other}); choose a new or empty folder for "
                              "--run-dir")
        if (path / MANIFEST).exists():
            raise PaprecError(f"--run-dir {path} already holds a run; continue it with --resume {path}")
        if (path / STATE).exists():
            raise PaprecError(f"--run-dir {path}: holds a {STATE} but no {MANIFEST}, so it is not a run paprec can "
                              "resume; choose a new or empty folder for --run-dir")
        if path.exists() and not path.is_dir():
            raise PaprecError(f"--run-dir {path}: is a file; expected a folder (new or empty)")
        clash = [name for name in RUN_FILES if (path / name).exists()] if path.is_dir() else []
        if clash:  # even with --force: the run would replace them, and "its files are kept" must stay true
            raise PaprecError(f"--run-dir {path}: holds {', '.join(clash)}, which the run writes (not a paprec run "
                              "to resume: no state.json or manifest.json); choose a new or empty folder, or move "
                              "those files away")
        if not force and path.is_dir() and any(path.iterdir()):
            raise PaprecError(f"--run-dir {path}: the folder is not empty and holds no run; choose a new or empty "
                              "folder, or pass --force to write the run into it (its files are kept)")

    @classmethod
    def create(cls, path: Path, manifest: RunManifest, force: bool = False) -> RunDir:
        """A new run folder, locked for writing until the command ends (see `check_new` for refusals)."""
        path = Path(path)
        cls.check_new(path, force)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.lock()
        write_json_atomic(path / MANIFEST, manifest)
        (path / TRAJECTORY).write_text("", encoding="utf-8")
        return run

    @classmethod
    def open_for_resume(cls, path: Path) -> tuple[RunDir, RunManifest, SearchState | None]:
        """The run, its manifest, and its last saved state (None if it died before the first save)."""
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise PaprecError(f"--resume {path}: not a paprec run directory (no {MANIFEST})")
        if not holds_run(path):
            raise PaprecError(f"--resume {path}: not a paprec run directory (its {MANIFEST} is not a paprec run's); "
                              "give a run folder (a search's --run-dir, or one under the home's runs/)")
        run = cls(path)
        if run.finished():  # nothing left to write: read it under a shared lock and never write (read-only homes)
            run.read_only = True
            run.lock(shared=True)
            return run, run.manifest(), run.load_state()
        run.lock()
        manifest = run.manifest()
        state = run.load_state()
        run.trim_trajectory(state.steps if state else 0)
        return run, manifest, state

    def finished(self) -> bool:
        """The search ended and its prompts are written: a resume only reports it."""
        if not (self.path / PROMPTS).is_file():
            return False
        state = self.load_state()
        return state is not None and state.done

    def lock(self, shared: bool = False) -> None:
        """Lock the run for writing (or, `shared`, for reading) until the command ends; another process
        writing it is refused by pid."""
        from paprec_cli.locks import acquire, run_lock_path

        acquire(run_lock_path(self.path), f"run {self.path}", shared=shared)

    def manifest(self) -> RunManifest:
        """The run's manifest, checked: a JSON object with a `config` object (the fingerprints a resume compares
        are checked by `runner.check_resumable`). Raises `PaprecError` naming the file and field."""
        path = self.path / MANIFEST
        data = read_json_object(path, "the run cannot be resumed; start a new run")
        if not isinstance(data.get("config"), dict):
            raise PaprecError(f"{path}: field 'config' is missing or not an object; the run cannot be resumed; "
                              "start a new run")
        return cast(RunManifest, data)

    def extend(self, changes: Mapping[str, int | float | None], reopened: SearchState | None = None) -> None:
        """Record option values changed on resume (the stopping rules, `search.resume.BUDGETS`) in the
        manifest's `config`, atomically, so that a later resume continues under them; with `reopened` (a
        finished run that goes on: `schedule.reopen`), lock the run for writing and save that state first, so
        that an interruption before its first new step still resumes it."""
        if reopened is not None:
            self.read_only = False
            self.lock()  # the shared lock of a finished run becomes the writer's
            self.save_state(reopened)
        manifest = self.manifest()
        manifest["config"] = {**manifest["config"], **changes}
        with self._saving(self.path / MANIFEST):
            write_json_atomic(self.path / MANIFEST, manifest)

    def load_state(self) -> SearchState | None:
        path = self.path / STATE
        if not path.exists():
            return None
        data = read_json_object(path, "start a new run")
        try:
            return SearchState.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PaprecError(f"{path}: unreadable search state ({type(exc).__name__}: {exc}); start a new run") \
                from None

    @contextlib.contextmanager
    def _saving(self, path: Path) -> Iterator[None]:
        """A write of the run's `path` during the search: an OS error (a full disk) becomes a one-line
        `PaprecError` naming the file, saying the steps saved so far are kept and giving the resume command."""
        from paprec_cli.errors import os_error_message

        try:
            yield
        except OSError as exc:
            if exc.filename is None:  # a failed write() names no file
                exc = OSError(exc.errno, exc.strerror or str(exc), str(path))
            problem = os_error_message(exc).split("; ")[0]
            raise PaprecError(f"{problem}; the steps saved so far are kept: free some space (or fix the folder's "
                              f"permissions), then continue with: paprec search --resume {self.path}") from None

    def save_state(self, state: SearchState) -> None:
        if self.read_only:
            return
        with self._saving(self.path / STATE):
            write_json_atomic(self.path / STATE, state.to_json())

    def record(self, state: SearchState, record: dict[str, Any]) -> None:
        """The per-step sink: the trajectory line first, then the state that counts it."""
        if record:
            self.append_step({"step": state.steps, **record})
        self.save_state(state)

    def append_step(self, record: dict[str, Any]) -> None:
        if self.read_only:
            return
        with self._saving(self.path / TRAJECTORY), open(self.path / TRAJECTORY, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def trajectory(self) -> list[dict[str, Any]]:
        path = self.path / TRAJECTORY
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").split("\n")
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a crash
        return out

    def trim_trajectory(self, n_steps: int) -> None:
        kept = self.trajectory()[:n_steps]
        write_text_atomic(self.path / TRAJECTORY, "".join(json.dumps(r) + "\n" for r in kept))

    def write_prompts(self, doc: Document) -> None:
        if self.read_only:
            return
        with self._saving(self.path / PROMPTS):
            write_json_atomic(self.path / PROMPTS, doc)

    def prompts(self) -> Document | None:
        path = self.path / PROMPTS
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

