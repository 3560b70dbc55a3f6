"""Issue #16, the review's open points: readers never see a model that `train` is writing, SIGTERM in every
command that writes (train, data import, export-prompts, recommend -o, search) and a full disk while `train`
saves a checkpoint.

SIGTERM is real: a wrapped function sends it to this process (`os.kill`) at a chosen point, and the command's
own handler (`commands.common.sigterm_as_interrupt`, the search's `_interrupts`) turns it into the
interruption. A full disk is a fault-injecting wrapper that raises ENOSPC. Each test asserts the one-line
message, the exit code (130 for an interruption, 2 for an error), the files left (no `.tmp`, nothing
half-written, nothing lost) and that a re-run or resume then succeeds.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from helpers import invoke, last_json, last_line, leftovers

from paprec_cli.paths import Home

SEARCH = ["search", "--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
          "--batch-size", "64", "--max-rounds", "1", "--n-personal", "1", "--n-suffix", "1", "--device", "cpu",
          "--protocol", "paper", "-q"]
TRAIN = ["train", "--dataset", "synthetic", "--size", "tiny", "--tasks", "sequential", "--val-users", "20",
         "--device", "cpu", "--batch-size", "32", "--epochs", "1", "-q"]
MODEL = "synthetic-tiny-atomic"


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (lock files aside) with its bytes."""
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith("lock")}


def sigterm_on(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, call: int = 1,
               before: bool = False) -> None:
    """Send SIGTERM to this process on the `call`-th call of `owner.name` (after it ran, or `before` it)."""
    original: Callable[..., Any] = getattr(owner, name)
    calls = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if before and calls["n"] == call:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        result = original(*args, **kwargs)
        if not before and calls["n"] == call:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        return result

    monkeypatch.setattr(owner, name, wrapped)


@pytest.fixture(scope="module")
def searched(tiny_home: Home) -> Path:
    """One finished search run on the tiny home's model."""
    run = tiny_home.runs / "r1"
    code, _, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(run))
    assert code == 0, err
    return run


# -- readers and a model being trained --------------------------------------------------------------------
def test_readers_refused_while_train_writes_the_model(tiny_home: Home, searched: Path, tmp_path: Path,
                                                      holder) -> None:  # type: ignore[no-untyped-def]
    """`eval`, `recommend` and `search` started while a `train` holds the model for writing refuse in one line
    naming that process (no result on half-written weights); `export-prompts` reads only the run's finished
    prompts.json (written atomically at the end of the search) and works; after the train ends all work."""
    from paprec_cli.locks import lock_path

    model = tiny_home.model_dir(MODEL)
    root = str(tiny_home.root)
    out = tmp_path / "recs.jsonl"
    pid = holder(lock_path(model.resolve()))  # a `paprec train --name synthetic-tiny-atomic --force` running
    readers = {
        "eval": ["eval", str(searched), "--device", "cpu"],
        "recommend": ["recommend", "--dataset", "synthetic", "--all-users", "--device", "cpu", "-o", str(out)],
        "recommend --prompts": ["recommend", "--prompts", str(searched), "--user", "1", "--device", "cpu"],
        "search": [*SEARCH, "--run-dir", str(tmp_path / "run2")],
    }
    before = files(tiny_home.root)
    for args in readers.values():
        code, stdout, err = invoke(*args, "--home", root, "--json")
        line = last_line(err)
        assert code == 2 and line.startswith("Error: model 'synthetic-tiny-atomic' is in use by process "), line
        assert f"process {pid}" in line and len([x for x in err.splitlines() if x.startswith("Error:")]) == 1
        assert last_json(stdout)["exit_code"] == 2
    assert not out.exists() and not (tmp_path / "run2").exists() and files(tiny_home.root) == before
    exported = tmp_path / "prompts.json"
    code, _, err = invoke("export-prompts", str(searched), "-o", str(exported), "--home", root)
    assert code == 0, err
    assert json.loads(exported.read_text())["task"] == "sequential"

    holder.stop()  # the train ended: the same commands work
    code, _, err = invoke(*readers["recommend"], "--home", root)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 40


def test_load_model_locks_a_model_folder_for_reading(tiny_home: Home) -> None:
    from paprec_cli.locks import _HELD, command_scope, lock_path
    from paprec_cli.model import load_model

    path = lock_path(tiny_home.model_dir(MODEL).resolve())
    with command_scope():
        load_model(MODEL, tiny_home)
        assert _HELD[path][1] is True  # shared: many readers, no writer
    assert path not in _HELD


# -- SIGTERM in every command that writes ------------------------------------------------------------------
def test_sigterm_during_data_import_keeps_the_old_import_and_leaves_no_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "home"
    base = ["data", "import", "synthetic", "--home", str(root), "-q", "-o", "users=30", "-o", "items=40"]
    code, _, err = invoke(*base)
    assert code == 0, err
    folder = root / "data" / "synthetic"
    before = files(folder)
    with monkeypatch.context() as patch:
        sigterm_on(patch, pl.DataFrame, "write_parquet", call=2)  # inside the staged folder, items written
        code, _, err = invoke(*base, "--seed", "3", "--force")
    assert code == 130
    assert last_line(err) == f"Interrupted; nothing was written to {folder} (it is as it was); run the command again"
    assert files(folder) == before and leftovers(root) == []
    code, _, err = invoke(*base, "--seed", "3", "--force")  # the re-run succeeds
    assert code == 0, err
    assert json.loads((folder / "manifest.json").read_text())["seed"] == 3


def test_sigterm_during_a_first_import_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "home"
    with monkeypatch.context() as patch:
        sigterm_on(patch, pl.DataFrame, "write_parquet", call=1)
        code, _, err = invoke("data", "import", "synthetic", "--home", str(root), "-q", "-o", "users=30")
    assert code == 130 and last_line(err).startswith("Interrupted; nothing was written to ")
    assert [p.name for p in (root / "data").iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize(("fmt", "owner", "name"), [("json", Path, "write_text"),
                                                    ("parquet", pl.DataFrame, "write_parquet")])
def test_sigterm_during_export_prompts(tiny_home: Home, searched: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, fmt: str, owner: object, name: str) -> None:
    out = tmp_path / "out" / f"prompts.{fmt}"
    args = ["export-prompts", str(searched), "-o", str(out), "--home", str(tiny_home.root)]
    with monkeypatch.context() as patch:
        sigterm_on(patch, owner, name)
        code, _, err = invoke(*args)
    assert code == 130
    assert last_line(err) == f"Interrupted; nothing was written to {out} (it is as it was); run the command again"
    assert list(out.parent.iterdir()) == []
    code, _, err = invoke(*args)
    assert code == 0, err
    assert out.is_file()


@pytest.mark.parametrize("where", ["writing", "ranking"])
def test_sigterm_during_recommend_output(tiny_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         where: str) -> None:
    from paprec_cli import serving

    out = tmp_path / "out" / "recs.jsonl"
    out.parent.mkdir()
    args = ["recommend", "--dataset", "synthetic", "--all-users", "--device", "cpu", "-o", str(out),
            "--home", str(tiny_home.root)]
    with monkeypatch.context() as patch:
        if where == "writing":
            sigterm_on(patch, Path, "write_text")
        else:
            sigterm_on(patch, serving, "serve", before=True)
        code, _, err = invoke(*args)
    assert code == 130
    expected = f"Interrupted; nothing was written to {out} (it is as it was); run the command again" \
        if where == "writing" else "Interrupted."
    assert last_line(err) == expected
    assert list(out.parent.iterdir()) == []
    code, _, err = invoke(*args)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 40


@pytest.mark.parametrize("where", ["step", "prompts"])
def test_sigterm_during_search_prints_the_resume_command(tiny_home: Home, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """SIGTERM after the first trajectory step, or while the closing evaluation writes prompts.json: exit 130,
    the resume command, no temporary file; the resume then finishes the run."""
    from paprec_cli.search.rundir import RunDir

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        sigterm_on(patch, RunDir, "append_step" if where == "step" else "write_prompts", before=where == "prompts")
        code, _, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(run))
    assert code == 130, err
    assert last_line(err) == f"Interrupted; the run is saved. Continue with: paprec search --resume {run}"
    assert not (run / "prompts.json").exists() and leftovers(run) == []
    code, _, err = invoke("search", "--resume", str(run), "--device", "cpu", "--home", str(tiny_home.root), "-q")
    assert code == 0, err
    assert (run / "prompts.json").is_file()


# -- train: SIGTERM and a full disk while saving -----------------------------------------------------------
def _trained_ok(root: Path, name: str, epochs: int) -> None:
    model = root / "models" / name
    record = json.loads((model / "training.json").read_text())
    assert record["epochs"] == epochs and (model / "model.safetensors").is_file()
    assert leftovers(root) == []


@pytest.mark.slow
def test_sigterm_in_the_first_epoch_leaves_nothing_and_the_command_runs_again(
    train_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paprec_cli.training.loop import Trainer

    args = [*TRAIN, "--name", "m", "--home", str(train_home)]
    with monkeypatch.context() as patch:
        sigterm_on(patch, Trainer, "run_epoch", before=True)
        code, _, err = invoke(*args)
    assert code == 130
    assert last_line(err) == ("Interrupted; no epoch was finished, nothing is saved; run the same command again to "
                              "start m afresh")
    assert not (train_home / "models" / "m").exists() and not (train_home / "models" / ".train-state" / "m").exists()
    assert leftovers(train_home) == []
    code, _, err = invoke(*args)
    assert code == 0, err
    _trained_ok(train_home, "m", 1)


@pytest.mark.slow
def test_sigterm_while_saving_epoch_2_resumes_from_epoch_1(train_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM inside the second epoch's checkpoint write: epoch 1's checkpoint is intact (the swap is atomic),
    the message says epoch 1 is saved (not 2) and gives `--resume`; the resume trains epoch 2 and finishes."""
    from paprec_cli.training import state as run_state

    args = [*TRAIN, "--epochs", "2", "--name", "m", "--home", str(train_home)]
    with monkeypatch.context() as patch:
        sigterm_on(patch, run_state, "save_model", call=3)  # epoch 1: last + best; epoch 2: last
        code, _, err = invoke(*args)
    assert code == 130
    assert last_line(err) == ("Interrupted; epochs 1-1 are saved (the test report is not written yet); continue "
                              "with: paprec train --resume m")
    saved = json.loads((train_home / "models" / ".train-state" / "m" / "state.json").read_text())
    assert saved["epoch"] == 1 and leftovers(train_home) == []
    code, _, err = invoke("train", "--resume", "m", "--device", "cpu", "--home", str(train_home), "-q")
    assert code == 0, err
    _trained_ok(train_home, "m", 2)


@pytest.mark.slow
def test_full_disk_saving_the_first_checkpoint_leaves_nothing_and_the_command_runs_again(
    train_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while the first epoch's resume state is written: one line naming the state folder and the fix,
    exit 2, no model and no training state left (so no epoch-1 model without resume state); the same command
    then trains the model."""
    from paprec_cli.training import state as run_state

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write() reports it: no file name

    args = [*TRAIN, "--name", "m", "--home", str(train_home), "--json"]
    with monkeypatch.context() as patch:
        patch.setattr(run_state, "save_model", full)
        code, stdout, err = invoke(*args)
    state = train_home / "models" / ".train-state" / "m"
    line = last_line(err)
    assert code == 2 and line == (f"Error: {state / 'last.safetensors'}: no space left on the device; free some "
                                  "space or point --home "
                                  "(or the output) elsewhere, then run the command again")
    assert last_json(stdout) == {"error": line.removeprefix("Error: "), "exit_code": 2}
    assert not (train_home / "models" / "m").exists() and not state.exists() and leftovers(train_home) == []
    code, _, err = invoke(*args)
    assert code == 0, err
    _trained_ok(train_home, "m", 1)


@pytest.mark.slow
def test_full_disk_saving_the_model_after_its_checkpoint_says_how_to_resume(
    train_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while the model folder is written, after the epoch's resume state was saved: one line naming the
    model path, that epoch 1 is saved and `paprec train --resume m`; no half-written model folder; the resume
    then writes the model."""
    from paprec_cli.model import checkpoint

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint, "save_safetensors_sorted", full)
        code, _, err = invoke(*TRAIN, "--name", "m", "--home", str(train_home))
    model = train_home / "models" / "m"
    line = last_line(err)
    assert code == 2 and line == (f"Error: {model / 'model.safetensors'}: no space left on the device; epochs 1-1 "
                                  "are saved (the test "
                                  "report is not written yet): free some space (or fix the folder's permissions), "
                                  "then continue with: paprec train --resume m")
    assert not model.exists() and leftovers(train_home) == []
    assert (train_home / "models" / ".train-state" / "m" / "state.json").is_file()
    code, _, err = invoke(*TRAIN, "--name", "m", "--home", str(train_home))  # not "run it again": refused
    assert code == 2 and "--resume m" in last_line(err)
    code, _, err = invoke("train", "--resume", "m", "--device", "cpu", "--home", str(train_home), "-q")
    assert code == 0, err
    _trained_ok(train_home, "m", 1)


# -- examples of the issue that had no end-to-end test -----------------------------------------------------
def _polars_full_disk(*args: object, **kwargs: object) -> None:
    """polars reports ENOSPC as its own error type, with the OS error number in the text."""
    raise pl.exceptions.ComputeError("parquet: I/O error: No space left on device (os error 28)")


def test_full_disk_during_import_is_one_line_and_keeps_the_old_import(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "home"
    base = ["data", "import", "synthetic", "--home", str(root), "-q", "-o", "users=30", "-o", "items=40"]
    code, _, err = invoke(*base)
    assert code == 0, err
    folder = root / "data" / "synthetic"
    before = files(folder)
    with monkeypatch.context() as patch:
        patch.setattr(pl.DataFrame, "write_parquet", _polars_full_disk)
        code, stdout, err = invoke(*base, "--seed", "4", "--force", "--json")
    line = last_line(err)
    assert code == 2 and line == (f"Error: {folder}: no space left on the device; free some space or point --home "
                                  "(or the output) elsewhere, then run the command again")
    assert last_json(stdout)["exit_code"] == 2
    assert files(folder) == before and leftovers(root) == []
    code, _, err = invoke(*base, "--seed", "4", "--force")
    assert code == 0, err


def test_full_disk_during_export_is_one_line_and_writes_nothing(tiny_home: Home, searched: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out" / "prompts.parquet"
    with monkeypatch.context() as patch:
        patch.setattr(pl.DataFrame, "write_parquet", _polars_full_disk)
        code, _, err = invoke("export-prompts", str(searched), "-o", str(out), "--home", str(tiny_home.root))
    line = last_line(err)
    assert code == 2 and line.startswith(f"Error: {out}: no space left on the device; free some space")
    assert list(out.parent.iterdir()) == []


def test_full_disk_during_search_is_one_line_and_the_resume_finishes(tiny_home: Home, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC when the search writes its state after a step: one line naming the file, exit 2, the saved
    trajectory and state stay consistent, and `search --resume` then finishes the run."""
    run = tmp_path / "run"
    real_write = Path.write_text
    calls = {"n": 0}

    def full_write(self: Path, *args: Any, **kwargs: Any) -> int:
        if self.name == "state.json" and str(self).startswith(str(run)):
            calls["n"] += 1
            if calls["n"] == 2:  # the state after the first step; a failed write() names no file
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", full_write)
        code, _, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(run))
    line = last_line(err)
    assert calls["n"] >= 2, "the fault was never injected: the state is written another way"
    assert code == 2 and line.startswith(f"Error: {run / 'state.json'}: no space left on the device"), err
    assert not (run / "prompts.json").exists() and leftovers(run) == []
    code, _, err = invoke("search", "--resume", str(run), "--device", "cpu", "--home", str(tiny_home.root), "-q")
    assert code == 0, err
    assert (run / "prompts.json").is_file()


def test_unwritable_platform_data_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --home and no PAPREC_HOME: the platform's data folder is used; when it cannot be made (a file
    sits where a folder belongs) the command says so in one line naming the path and --home / PAPREC_HOME."""
    import platformdirs

    blocker = tmp_path / "share"
    blocker.write_text("a file, not a folder")
    monkeypatch.delenv("PAPREC_HOME", raising=False)
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(blocker / "paprec"))
    code, stdout, err = invoke("data", "import", "synthetic", "-o", "users=20", "--json")
    line = last_line(err)
    # the exact line: tests/test_review_16e.py::test_unwritable_platform_folder_names_it_and_how_to_choose
    assert code == 2 and line.startswith(f"Error: {blocker / 'paprec'}") and "--home PATH or PAPREC_HOME=PATH" in line
    assert last_json(stdout)["exit_code"] == 2 and blocker.read_text() == "a file, not a folder"


def test_non_utf8_allow_list_is_one_line_naming_file_and_line(tiny_home: Home, tmp_path: Path) -> None:
    allow = tmp_path / "allow.txt"
    allow.write_bytes("tent\ncaf\xe9\n".encode("latin-1"))
    run = tmp_path / "run"
    code, _, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--allow-list", str(allow), "--run-dir", str(run))
    line = last_line(err)
    assert code == 2 and line.startswith(f"Error: {allow}:2") and "utf-8" in line.lower(), line
    assert not run.exists()


def test_raw_user_id_with_markup_end_to_end(tmp_path: Path) -> None:
    """A raw user id such as `[/x]` crashed `recommend` on rich markup, even with `--json`: now it is printed
    literally in the table and the JSON object."""
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import build_codec, create_model, save_model
    from paprec_cli.plugins import load_registry

    source = tmp_path / "ratings.csv"
    rows = [f"{user},i{(u * 3 + k) % 12},{k}" for u, user in enumerate(["[/x]", "[bold]b", "c", "d"])
            for k in range(6)]
    source.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    root = tmp_path / "home"
    code, _, err = invoke("data", "import", "csv", "--from", str(source), "--home", str(root), "-q")
    assert code == 0, err
    home = Home.resolve(root)
    dataset = load_dataset(home, "csv")
    texts = [t.source for entry in load_registry().tasks.values() for t in entry.spec.templates]
    codec = build_codec(dataset, "atomic", texts, vocab_size=300)
    bundle = create_model({"d_model": 32, "num_layers": 1, "num_heads": 2, "d_ff": 64}, codec, seed=0)
    save_model(bundle, home.model_dir("csv-tiny-atomic"))
    base = ["recommend", "--dataset", "csv", "--user", "[/x]", "-k", "3", "--device", "cpu", "--home", str(root)]
    code, out, err = invoke(*base, "--json")
    assert code == 0, err
    assert last_json(out)["user"] == "[/x]"
    code, out, err = invoke(*base)
    assert code == 0 and "Traceback" not in err and "[/x]" in out, err


def test_read_only_home_import_by_fault_injection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only home, simulated (root ignores chmod, so `test_read_only_home_is_one_line` skips as root):
    every folder made under the home raises EROFS. One line naming the path and the fix, exit 2, nothing
    written; the same import into a writable home works."""
    root = tmp_path / "ro"
    root.mkdir()
    real_mkdir = os.mkdir

    def read_only(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real_mkdir(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "mkdir", read_only)
        code, _, err = invoke("data", "import", "synthetic", "--home", str(root), "-o", "users=20")
    line = last_line(err)
    assert code == 2 and line.startswith(f"Error: {root}") and "read-only file system; choose a writable --home" \
        in line, line
    assert list(root.iterdir()) == []
    code, _, err = invoke("data", "import", "synthetic", "--home", str(root), "-o", "users=20", "-q")
    assert code == 0, err
