"""Issue #16, a fresh review's findings (branch issue-16d): each reproduced the way it happens for a user, with
the one-line error, the exit code, the files left and a re-run that works."""

from __future__ import annotations

import json
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke, last_json, last_line, leftovers

TRAIN = ["train", "--dataset", "synthetic", "--size", "tiny", "--tasks", "sequential", "--val-users", "20",
         "--device", "cpu", "--batch-size", "32", "--epochs", "1", "-q"]


@pytest.fixture
def small_files() -> Iterator[Any]:
    """`limit(owner, name)`: the next call of `owner.name` runs with files capped at 4 KiB (RLIMIT_FSIZE), so its
    real writer fails as on a full disk (torch's zip writer: `RuntimeError: [enforce fail at inline_container.cc
    ...] . unexpected pos ...`); the cap is lifted as soon as the call returns."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a kill
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    patches = pytest.MonkeyPatch()

    def limit(owner: object, name: str) -> None:
        original = getattr(owner, name)
        calls = {"n": 0}

        def capped(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] > 1:
                return original(*args, **kwargs)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
            try:
                return original(*args, **kwargs)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

        patches.setattr(owner, name, capped)

    yield limit
    patches.undo()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, old_handler)


# -- 1. a library writer's own error type on a full disk ----------------------------------------------------
def test_library_write_turns_writer_errors_into_a_named_os_error(tmp_path: Path) -> None:
    """torch's zip writer (RuntimeError), safetensors (SafetensorError) and an errno in the text: each an
    OSError naming the file; other errors (bugs) pass unchanged."""
    import errno

    from safetensors import SafetensorError

    from paprec_cli.errors import WriteFailed, user_message
    from paprec_cli.paths import library_write

    target = tmp_path / "x.pt"
    for raised in (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 772480 vs 772368"),
                   SafetensorError("Error while serializing: short write")):
        with pytest.raises(WriteFailed) as caught, library_write(target):
            raise raised
        assert caught.value.filename == str(target)
        message, code = user_message(caught.value) or ("", 0)
        assert code == 2 and message == (f"{target}: could not be written ({type(raised).__name__}: {raised}), "
                                         "the disk may be full; free some space or point --home (or the output) "
                                         "elsewhere, then run the command again")
    with pytest.raises(OSError) as os_caught, library_write(target):
        raise SafetensorError("IoError: No space left on device (os error 28)")
    assert os_caught.value.errno == errno.ENOSPC and os_caught.value.filename == str(target)
    with pytest.raises(OSError) as os_caught, library_write(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert os_caught.value.errno == errno.ENOSPC and os_caught.value.filename == str(target)
    with pytest.raises(TypeError), library_write(target):
        raise TypeError("a bug")


def test_real_torch_zip_writer_failure_is_a_write_failed(tmp_path: Path, small_files: Any) -> None:
    """The real torch.save on a file capped at 4 KiB raises the zip writer's RuntimeError; the wrapper names it."""
    import torch

    from paprec_cli.errors import WriteFailed
    from paprec_cli.paths import library_write

    small_files(torch, "save")
    with pytest.raises(WriteFailed) as caught, library_write(tmp_path / "o.pt"):
        torch.save({"a": torch.zeros(100_000)}, tmp_path / "o.pt")
    assert "RuntimeError: [enforce fail at inline_container.cc" in str(caught.value.strerror)


@pytest.mark.slow
def test_full_disk_in_torch_save_of_the_first_checkpoint_leaves_nothing(train_home: Path, small_files: Any) -> None:
    """`paprec train` whose optimiser state write fails in torch's zip writer (a RuntimeError, not an OSError):
    one line naming `optimizer.pt` and saying the disk may be full, exit 2, JSON error, no training state
    (`.train-state/m/codec/`) and no model left; the same command then trains."""
    import torch

    args = [*TRAIN, "--name", "m", "--home", str(train_home), "--json"]
    small_files(torch, "save")
    code, stdout, err = invoke(*args)
    state = train_home / "models" / ".train-state" / "m"
    line = last_line(err)
    assert code == 2
    assert line.startswith(f"Error: {state / 'optimizer.pt'}: could not be written (RuntimeError: [enforce fail at "
                           "inline_container.cc:")
    assert line.endswith("the disk may be full; free some space or point --home (or the output) elsewhere, then "
                         "run the command again")
    assert last_json(stdout) == {"error": line.removeprefix("Error: "), "exit_code": 2}
    assert not state.exists() and not (train_home / "models" / "m").exists() and leftovers(train_home) == []
    code, _, err = invoke(*args)
    assert code == 0, err
    assert json.loads((train_home / "models" / "m" / "training.json").read_text())["epochs"] == 1
    assert leftovers(train_home) == []


# -- 2. a default-name train locks only the name it writes ---------------------------------------------------
def _lock_free(lock: Path) -> bool:
    """Whether another process can take `lock` shared right now, as `eval`, `recommend` and `search` do."""
    import subprocess
    import sys

    code = ("import fcntl, os, sys\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(1)\n")
    return subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.slow
def test_quick_start_twice_leaves_the_base_model_free_and_a_reader_does_not_stop_it(
    train_home: Path, holder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick start run twice trains `synthetic-tiny-atomic-2`: while it runs, the base model's lock is free
    (eval / recommend / search may read it) and the new name's is held; and a reader holding the base model
    (a search's shared lock, another process) does not make the re-run fail with "in use"."""
    from paprec_cli.training import state as run_state

    args = [*TRAIN[:-1], "--home", str(train_home)]  # not -q: the name it picks is said on stderr
    code, _, err = invoke(*args)
    assert code == 0, err
    models = train_home / "models"
    base, second = models / ".synthetic-tiny-atomic.lock", models / ".synthetic-tiny-atomic-2.lock"
    seen: dict[str, bool] = {}
    original = run_state.save_state

    def probing(*a: Any, **k: Any) -> None:
        seen.setdefault("base", _lock_free(base))
        seen.setdefault("second", _lock_free(second))
        original(*a, **k)

    monkeypatch.setattr(run_state, "save_state", probing)
    holder(base, shared=True)  # a search reading the base model
    code, _, err = invoke(*args)
    assert code == 0, err
    assert "training 'synthetic-tiny-atomic-2'" in err
    assert seen == {"base": True, "second": False}
    assert (models / "synthetic-tiny-atomic-2" / "training.json").is_file() and leftovers(train_home) == []


@pytest.mark.slow
def test_explicit_name_still_refuses_a_model_in_use(train_home: Path, holder: Any) -> None:
    """`--name m` where a reader holds `m`: refused, one line, exit 2, nothing written; runs once it is free."""
    (train_home / "models").mkdir(exist_ok=True)
    holder(train_home / "models" / ".m.lock", shared=True)
    code, _, err = invoke(*TRAIN, "--name", "m", "--home", str(train_home))
    assert code == 2 and "model 'm' is in use by process" in last_line(err)
    assert not (train_home / "models" / "m").exists()
    holder.stop()
    code, _, err = invoke(*TRAIN, "--name", "m", "--home", str(train_home))
    assert code == 0, err


# -- 3. a full disk while the search appends its trajectory ---------------------------------------------------
SEARCH = ["search", "--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
          "--batch-size", "64", "--max-rounds", "1", "--n-personal", "1", "--n-suffix", "1", "--device", "cpu",
          "--protocol", "paper", "-q"]


@pytest.fixture(scope="module")
def tiny_home_16d(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from helpers import make_home

    return make_home(tmp_path_factory.mktemp("home16d"))


def test_full_disk_appending_the_trajectory_names_it_and_the_resume(tiny_home_16d: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC from the trajectory's write() (it names no file): one line naming `trajectory.jsonl` and giving
    `paprec search --resume DIR`, in the `--json` error too, exit 2; the resume then finishes the run."""
    import errno
    import io

    from paprec_cli.search import rundir

    run = tmp_path / "run"
    real_open = open
    calls = {"n": 0}

    class FullFile(io.TextIOWrapper):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("trajectory.jsonl") and mode == "a":
            calls["n"] += 1
            return FullFile(real_open(file, "ab"), encoding="utf-8")
        return real_open(file, mode, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(rundir, "open", full_open, raising=False)
        code, stdout, err = invoke(*SEARCH, "--home", str(tiny_home_16d.root), "--run-dir", str(run), "--json")
    line = last_line(err)
    assert calls["n"] >= 1, "the fault was never injected"
    assert code == 2 and line == (f"Error: {run / 'trajectory.jsonl'}: no space left on the device; the steps saved "
                                  "so far are kept: free some space (or fix the folder's permissions), then "
                                  f"continue with: paprec search --resume {run}")
    assert last_json(stdout) == {"error": line.removeprefix("Error: "), "exit_code": 2}
    assert not (run / "prompts.json").exists() and leftovers(run) == []
    code, _, err = invoke("search", "--resume", str(run), "--device", "cpu", "--home", str(tiny_home_16d.root), "-q")
    assert code == 0, err
    assert (run / "prompts.json").is_file()


# -- 4. a damaged checkpoint on --resume: a fix that runs and destroys nothing ---------------------------------
@pytest.mark.slow
def test_damaged_optimizer_on_resume_suggests_a_command_that_runs_and_keeps_the_model(train_home: Path) -> None:
    """`optimizer.pt` truncated, `train --resume m`: one line, exit 2, nothing changed; the suggested command has
    `--dataset` (it runs), the run's options and the resume's `--epochs 2`, and a new name (the finished model `m`
    is kept byte for byte)."""
    import re
    import shlex

    code, _, err = invoke(*TRAIN, "--name", "m", "--home", str(train_home))
    assert code == 0, err
    state = train_home / "models" / ".train-state" / "m"
    optimizer = state / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    model = {p.name: p.read_bytes() for p in (train_home / "models" / "m").iterdir()}
    code, _, err = invoke("train", "--resume", "m", "--epochs", "2", "--device", "cpu", "--home", str(train_home))
    line = last_line(err)
    assert code == 2 and line.startswith(f"Error: {optimizer}: not readable, truncated or damaged"), line
    assert "--force" not in line and f"or delete the resume state {state} to stop resuming it" in line
    found = re.search(r"`(paprec train [^`]*)`", line)
    # the run's own options and the resume's --epochs 2 are kept (issue-16e), and --home, which this test passes
    assert found and found.group(1) == ("paprec train --dataset synthetic --tasks sequential --size tiny --ids atomic "
                                        f"--seed 0 --batch-size 32 --epochs 2 --val-users 20 --name m-2 --home "
                                        f"{train_home}")
    code, _, err = invoke(*shlex.split(found.group(1))[1:], "--device", "cpu", "-q")
    assert code == 0, err
    assert {p.name: p.read_bytes() for p in (train_home / "models" / "m").iterdir()} == model
    assert (train_home / "models" / "m-2" / "training.json").is_file()


# -- 5. search --run-dir DIR --force never replaces a file in DIR ---------------------------------------------
def test_force_into_a_folder_holding_run_files_is_refused_and_keeps_them(tiny_home_16d: Any, tmp_path: Path) -> None:
    """DIR holds `prompts.json` and `trajectory.jsonl` (say, copied from another run) and a note: `--force` is
    refused naming both, exit 2, every file byte for byte; with them moved away, `--force` runs and keeps the
    note ("its files are kept" is true)."""
    run = tmp_path / "dir"
    run.mkdir()
    (run / "prompts.json").write_text('{"mine": 1}\n')
    (run / "trajectory.jsonl").write_text('{"step": 9}\n')
    (run / "notes.txt").write_text("keep me\n")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    args = [*SEARCH, "--home", str(tiny_home_16d.root), "--run-dir", str(run), "--force"]
    code, _, err = invoke(*args)
    assert code == 2 and last_line(err) == (
        f"Error: --run-dir {run}: holds trajectory.jsonl, prompts.json, which the run writes (not a paprec run to "
        "resume: no state.json or manifest.json); choose a new or empty folder, or move those files away")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    (run / "prompts.json").rename(tmp_path / "prompts.json")
    (run / "trajectory.jsonl").rename(tmp_path / "trajectory.jsonl")
    code, _, err = invoke(*args)
    assert code == 0, err
    assert (run / "notes.txt").read_text() == "keep me\n" and (run / "prompts.json").is_file()


# -- 6. readers with --home at a file -------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["models", "list"], ["data", "list", "--json"], ["models", "list", "--json"]])
def test_reader_with_home_at_a_file_is_the_writers_one_line_error(tmp_path: Path, args: list[str]) -> None:
    """`--home f` where f is a file: the readers give the one-line error writers give (exit 2, JSON error with
    --json), not an empty home; the file is untouched; with --home at a folder the same command works."""
    home = tmp_path / "f"
    home.write_text("a file\n")
    expected = (f"{home}: a part of this path is a file, not a folder; check --home / PAPREC_HOME, --run-dir and "
                "the output path")
    code, stdout, err = invoke(*args, "--home", str(home))
    assert code == 2 and last_line(err) == f"Error: {expected}"
    if "--json" in args:
        assert last_json(stdout) == {"error": expected, "exit_code": 2}
    code, _, err = invoke("data", "import", "synthetic", "-o", "users=20", "-q", "--home", str(home))
    assert code == 2 and last_line(err) == f"Error: {expected}"  # the writer's error is the same line
    assert home.read_text() == "a file\n"
    code, _, err = invoke(*args, "--home", str(tmp_path / "h"))
    assert code == 0, err


def test_home_whose_models_folder_is_a_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "models").write_text("x")
    monkeypatch.setenv("PAPREC_HOME", str(tmp_path / "h"))
    code, _, err = invoke("models", "list")
    assert code == 2 and last_line(err) == (f"Error: {tmp_path / 'h' / 'models'}: a part of this path is a file, "
                                            "not a folder; check --home / PAPREC_HOME, --run-dir and the output path")


# -- 7. export-prompts never writes into the run it reads -----------------------------------------------------
@pytest.fixture(scope="module")
def searched_16d(tiny_home_16d: Any) -> Path:
    run = tiny_home_16d.runs / "r16d"
    code, _, err = invoke(*SEARCH, "--home", str(tiny_home_16d.root), "--run-dir", str(run))
    assert code == 0, err
    return Path(run)


@pytest.mark.parametrize("inside", ["manifest.json", "prompts.json", "exports/p.csv"])
def test_export_into_the_run_it_reads_is_refused(tiny_home_16d: Any, searched_16d: Path, tmp_path: Path,
                                                 inside: str) -> None:
    """`export-prompts RUN -o RUN/...  --force`: one line, exit 2, the run byte for byte (so `eval RUN` still
    works); a path outside the run exports."""
    run, home = searched_16d, str(tiny_home_16d.root)
    before = {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    code, _, err = invoke("export-prompts", str(run), "-o", str(run / inside), "--force", "--home", home)
    line = last_line(err)
    if inside == "prompts.json":
        assert code == 2 and line == f"Error: -o {run / inside}: is the file this command reads; choose another " \
                                     "output path"
    else:
        assert code == 2 and line == (f"Error: -o {run / inside}: is inside the run {run} that this command reads "
                                      "(writing there changes the run); choose a path outside it")
    assert {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == before
    code, _, err = invoke("export-prompts", "r16d", "-o", str(run / inside), "--force", "--home", home)
    assert code == 2, err  # the run given by name: the same refusal
    code, _, err = invoke("export-prompts", str(run), "-o", str(tmp_path / "p.json"), "--home", home, "-q")
    assert code == 0, err
    code, _, err = invoke("eval", str(run), "--device", "cpu", "--home", home, "-q")
    assert code == 0, err


# -- 8. messages that said the wrong thing or no fix ----------------------------------------------------------
@pytest.mark.parametrize(("option", "expected"), [
    ("users=0", "--option users=0: expected a value at least 10; pass --option users=N with N at least 10"),
    ("users=x", "--option users=x: expected an integer"),
])
def test_import_option_below_its_minimum_says_at_least(tmp_path: Path, option: str, expected: str) -> None:
    code, _, err = invoke("data", "import", "synthetic", "-o", option, "--home", str(tmp_path / "h"), "-q")
    assert code == 2 and last_line(err) == f"Error: {expected}"
    assert not (tmp_path / "h" / "data" / "synthetic").exists()
    code, _, err = invoke("data", "import", "synthetic", "-o", "users=10", "--home", str(tmp_path / "h"), "-q")
    assert code == 0, err


def test_non_utf8_allow_list_error_ends_with_a_fix_that_works(tiny_home_16d: Any, tmp_path: Path) -> None:
    """A Latin-1 `--allow-list`: one line naming file:line and the byte, ending with how to re-encode it; the
    re-encoded file is then read (its word decoded right)."""
    allow = tmp_path / "allow.txt"
    allow.write_bytes("tent\ncaf\xe9\n".encode("latin-1"))
    run = tmp_path / "run"
    args = [*SEARCH, "--home", str(tiny_home_16d.root), "--run-dir", str(run)]
    code, _, err = invoke(*args, "--allow-list", str(allow))
    fixed = tmp_path / "allow-utf8.txt"
    assert code == 2 and last_line(err) == (
        f"Error: {allow}:2: byte 0xe9 is not valid utf-8; expected utf-8 text; save it as UTF-8 (e.g. `iconv -f "
        f"ISO-8859-1 -t UTF-8 {allow} > {fixed}`) and pass that file")
    assert not run.exists()
    fixed.write_text(allow.read_bytes().decode("latin-1"), encoding="utf-8")  # what the iconv line does
    code, _, err = invoke(*args, "--allow-list", str(fixed))  # read now: 'café' decoded (the tiny model lacks it)
    assert code == 2 and last_line(err) == (f"Error: {fixed}:2: word 'café' is not in the model's vocabulary; "
                                            "expected one known whole word per line")


# -- 9. --json usage errors print the JSON error too ----------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["train", "--seed", "abc"], "Invalid value for '--seed': "),
    (["models", "list", "--bogus"], "No such option: --bogus"),
    (["--bogus"], "No such option: --bogus"),
])
def test_usage_error_with_json_prints_the_json_error(tmp_path: Path, args: list[str], message: str) -> None:
    """click's usage error (stderr) and, with --json, `{"error": ..., "exit_code": 2}` on stdout; without --json
    stdout stays empty; the corrected command runs."""
    code, stdout, err = invoke(*args, "--json", "--home", str(tmp_path / "h"))
    assert code == 2 and message in err
    found = last_json(stdout)
    assert found["exit_code"] == 2 and found["error"].startswith(message) and "\n" not in found["error"]
    code, stdout, _ = invoke(*args, "--home", str(tmp_path / "h"))
    assert code == 2 and stdout.strip() == ""
    code, stdout, err = invoke("models", "list", "--json", "--home", str(tmp_path / "h"))
    assert code == 0 and "error" not in last_json(stdout), err


@pytest.mark.parametrize("name", [".train-state", "../evil", "a/b", "-x", " ", "a\\b"])
def test_train_name_must_be_a_plain_name(tmp_path: Path, name: str) -> None:
    """`train --name .train-state --force` used to replace every model's resume state; `../evil` wrote outside
    models/. Both are refused before any work, nothing is created."""
    home = tmp_path / "home"
    code, _out, err = invoke("train", "--dataset", "synthetic", "--size", "tiny", "--epochs", "1",
                             "--name", name, "--force", "--home", str(home))
    assert code == 2, err
    assert "expected a plain name" in err and len(err.strip().splitlines()) == 1
    models = home / "models"
    assert not models.exists() or not any(p.name not in {".train-state"} for p in models.iterdir())
    assert not (home / "evil").exists() and not (models / ".train-state" / ".train-state").exists()
