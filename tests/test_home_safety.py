"""Issue #16: nothing a user made is destroyed without --force, locks per home object, OSError and --json errors.

A tiny untrained model (`synthetic-tiny-atomic`, from `test_search_model.make_home`) serves the search and
recommend cases; `train` runs one 1-epoch training. Another process holding a lock is a real subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paprec_cli.cli import app
from paprec_cli.paths import Home

SEARCH = ["--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
          "--batch-size", "64", "--max-rounds", "1", "--n-personal", "0", "--n-suffix", "2", "--device", "cpu"]
TRAIN = ["--dataset", "synthetic", "--size", "tiny", "--tasks", "sequential", "--val-users", "20", "--device", "cpu",
         "--batch-size", "32", "--epochs", "1"]


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    from test_search_model import make_home

    return make_home(tmp_path_factory.mktemp("home"))


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _one_error(err: str) -> str:
    """The error line (progress lines before it are fine): exactly one, the last, no traceback."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err
    return errors[0]


# -- 1. nothing destroyed without --force --------------------------------------------------------------
def test_safetensors_bytes_do_not_depend_on_metadata_order(tmp_path: Path) -> None:
    """safetensors wrote `__metadata__` in hash-map order: identical weights, a different sha256 about half the
    time. Sorted, every save of the same tensors and metadata is byte-identical and still loads."""
    import torch

    from paprec_cli.model.weights import read_state_dict, save_safetensors_sorted
    from paprec_cli.paths import sha256_file

    state = {"b.weight": torch.randn(3, 5), "a.bias": torch.arange(7)}
    digests = set()
    for i in range(8):
        path = tmp_path / f"w{i}.safetensors"
        meta = {"producer": "paprec", "format": "pt"} if i % 2 else {"format": "pt", "producer": "paprec"}
        save_safetensors_sorted(state, path, meta)
        digests.add(sha256_file(path))
    assert len(digests) == 1
    loaded = read_state_dict(tmp_path / "w0.safetensors")
    assert torch.equal(loaded["b.weight"], state["b.weight"]) and torch.equal(loaded["a.bias"], state["a.bias"])
    header_len = int.from_bytes((tmp_path / "w0.safetensors").read_bytes()[:8], "little")
    assert header_len % 8 == 0


def test_nothing_to_do_says_what_to_raise() -> None:
    from dataclasses import replace

    from paprec_cli.training.run import nothing_to_do
    from paprec_cli.training.setup import new_options
    from paprec_cli.training.state import RunState

    opts = new_options(dataset="d", tasks=[], size="tiny", ids="atomic", name=None, seed=0, time_budget=None,
                       init=None, overrides={"epochs": 10, "patience": 2})
    assert nothing_to_do(RunState(opts, epoch=10, best_epoch=10, finished=True), opts) == "raise --epochs to train on"
    early = RunState(opts, epoch=6, best_epoch=4, finished=True)  # stopped early: --epochs 20 alone does not help
    longer = replace(opts, recipe=replace(opts.recipe, epochs=20))
    assert "raise --patience" in str(nothing_to_do(early, longer))
    assert nothing_to_do(early, replace(opts, recipe=replace(opts.recipe, patience=5))) is None
    assert nothing_to_do(RunState(opts, epoch=3, best_epoch=3, finished=True), opts) is None  # budget-stopped
    assert nothing_to_do(RunState(opts, epoch=10, best_epoch=10, finished=False), opts) is None  # no report yet


def test_claim_model_name(tmp_path: Path) -> None:
    from paprec_cli.errors import PaprecError
    from paprec_cli.training.recipe import TrainOptions  # noqa: F401 (the type new_options returns)
    from paprec_cli.training.setup import claim_model_name, new_options

    home = Home.resolve(tmp_path)
    opts = new_options(dataset="d", tasks=[], size="tiny", ids="atomic", name=None, seed=0, time_budget=None,
                       init=None, overrides={})
    assert claim_model_name(home, opts, explicit=False, force=False).name == "d-tiny-atomic"
    (home.models / "d-tiny-atomic").mkdir(parents=True)
    (home.models / ".train-state" / "d-tiny-atomic-2").mkdir(parents=True)  # an interrupted run's state ...
    (home.models / ".train-state" / "d-tiny-atomic-2" / "state.json").write_text("{}")  # ... with an epoch saved
    assert claim_model_name(home, opts, explicit=False, force=False).name == "d-tiny-atomic-3"
    with pytest.raises(PaprecError, match="--force to replace it, another --name, or --resume d-tiny-atomic"):
        claim_model_name(home, opts, explicit=True, force=False)
    state = home.models / ".train-state" / "d-tiny-atomic"
    state.mkdir(parents=True)
    assert claim_model_name(home, opts, explicit=True, force=True).name == "d-tiny-atomic"
    assert not state.exists() and (home.models / "d-tiny-atomic").exists()  # the model is replaced atomically later


@pytest.mark.slow
def test_train_twice_keeps_the_first_model_and_resume_keeps_the_fingerprint(tiny_home: Home) -> None:
    root = str(tiny_home.root)
    first = tiny_home.model_dir("synthetic-tiny-atomic")
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    code, out, err = _invoke("train", *TRAIN, "--home", root, "--json")  # the default name is taken
    assert code == 0, err
    assert "A model named 'synthetic-tiny-atomic' exists; training 'synthetic-tiny-atomic-2'" in err
    assert json.loads(out.strip().splitlines()[-1])["name"] == "synthetic-tiny-atomic-2"
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before  # untouched

    second = tiny_home.model_dir("synthetic-tiny-atomic-2")
    sha = json.loads((second / "config.json").read_text())["weights_sha256"]
    code, _, err = _invoke("train", *TRAIN, "--name", "synthetic-tiny-atomic-2", "--home", root)
    line = _one_error(err)
    assert code == 2 and "--force to replace it" in line and "--resume synthetic-tiny-atomic-2" in line
    state = tiny_home.models / ".train-state" / "synthetic-tiny-atomic-2"

    def files() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for folder in (second, state) for p in folder.rglob("*") if p.is_file()}

    finished = files()
    for _ in range(2):  # a resume with nothing to do writes nothing: training.json, weights, state byte for byte
        code, out, err = _invoke("train", "--resume", "synthetic-tiny-atomic-2", "--device", "cpu", "--home", root,
                                 "--json")
        assert code == 0, err
        assert files() == finished
        assert err.strip().splitlines() == ["Model 'synthetic-tiny-atomic-2' is finished (1 epochs, best 1); nothing "
                                            "to do, nothing written (raise --epochs to train on)"]
        result = json.loads(out.strip().splitlines()[-1])
        record = json.loads((second / "training.json").read_text())
        assert result["unchanged"] == "raise --epochs to train on"
        assert result["test"] == record["test"] and result["seconds"] == record["seconds"]
        assert json.loads((second / "config.json").read_text())["weights_sha256"] == sha
    assert not list(tiny_home.models.glob(".*.tmp")) and not list(tiny_home.models.glob(".*.old"))
    code, out, err = _invoke("train", "--resume", "synthetic-tiny-atomic-2", "--epochs", "2", "--device", "cpu",
                             "--home", root, "--json")  # work to do: it trains on and writes
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["epochs"] == 2 and "unchanged" not in out
    assert json.loads((second / "training.json").read_text())["epochs"] == 2
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before


@pytest.mark.slow
def test_search_run_dir_with_files_needs_force(tiny_home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    code, _, err = _invoke("search", *SEARCH, "--home", str(tiny_home.root), "--run-dir", str(folder))
    line = _one_error(err)
    assert code == 2 and str(folder) in line and "--force" in line
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    code, _, err = _invoke("search", *SEARCH, "--home", str(tiny_home.root), "--run-dir", str(folder), "--force",
                           "-q")
    assert code == 0, err
    assert (folder / "notes.txt").read_text() == "my notes\n" and (folder / "prompts.json").is_file()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, _, err = _invoke("search", *SEARCH, "--home", str(tiny_home.root), "--run-dir", str(a_file), "--force")
    assert code == 2 and "is a file" in _one_error(err) and a_file.read_text() == "x"


@pytest.mark.slow
def test_recommend_output_refuses_existing_file_and_the_prompts_file(tiny_home: Home, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")
    base = ["recommend", "--dataset", "synthetic", "--all-users", "--device", "cpu", "--home", str(tiny_home.root)]
    code, stdout, err = _invoke(*base, "-o", str(out), "--json")
    line = _one_error(err)
    assert code == 2 and "--force" in line and out.read_text() == "keep me\n"
    assert json.loads(stdout.strip()) == {"error": line.removeprefix("Error: "), "exit_code": 2}
    code, _, err = _invoke(*base, "-o", str(out), "--force")
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 40
    prompts = tmp_path / "prompts.json"
    prompts.write_text("{}")
    code, _, err = _invoke(*base, "--prompts", str(prompts), "-o", str(prompts), "--force")
    assert code == 2 and "is the file this command reads" in _one_error(err) and prompts.read_text() == "{}"


# -- 2. locks -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_second_writer_of_a_run_is_refused_naming_the_process(tiny_home: Home, tmp_path: Path, holder) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "run"
    code, _, err = _invoke("search", *SEARCH, "--home", str(tiny_home.root), "--run-dir", str(run), "-q")
    assert code == 0, err
    before = (run / "trajectory.jsonl").read_bytes()
    pid = holder(run / ".lock")
    code, _, err = _invoke("search", "--resume", str(run), "--device", "cpu", "--home", str(tiny_home.root))
    line = _one_error(err)
    assert code == 2 and f"process {pid}" in line and str(run) in line
    assert (run / "trajectory.jsonl").read_bytes() == before


@pytest.mark.slow
def test_train_refused_while_a_search_reads_the_model_and_search_refused_while_training(
    tiny_home: Home, tmp_path: Path, holder  # type: ignore[no-untyped-def]
) -> None:
    from paprec_cli.locks import lock_path

    model = tiny_home.model_dir("synthetic-tiny-atomic")
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    pid = holder(lock_path(model), shared=True)  # a search reading the model
    code, _, err = _invoke("train", *TRAIN, "--name", "synthetic-tiny-atomic", "--force", "--home",
                           str(tiny_home.root))
    line = _one_error(err)
    assert code == 2 and f"process {pid}" in line and "model 'synthetic-tiny-atomic'" in line
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before

    holder.stop()
    other = tmp_path / "writer"
    other.mkdir()
    pid = holder(lock_path(model.resolve()))  # a train writing it
    code, _, err = _invoke("search", *SEARCH, "--model", "synthetic-tiny-atomic", "--home", str(tiny_home.root),
                           "--run-dir", str(other / "run"))
    line = _one_error(err)
    assert code == 2 and f"process {pid}" in line and not (other / "run").exists()


def test_locks_are_released_when_the_command_ends(tmp_path: Path) -> None:
    from paprec_cli.errors import PaprecError
    from paprec_cli.locks import acquire, command_scope

    path = tmp_path / ".x.lock"
    with command_scope():
        acquire(path, "model 'x'")
        acquire(path, "model 'x'")  # the same process again: fine
        code = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
                "try:\n    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n")
        assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == 3
        assert f"process {os.getpid()}" in path.read_text()
    assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == 0
    with command_scope():
        acquire(path, "model 'x'", shared=True)
    with pytest.raises(PaprecError):  # a lock another process holds
        proc = subprocess.Popen([sys.executable, "-c", "import fcntl,os,sys,time\nfd=os.open(sys.argv[1],os.O_RDWR)\n"
                                 "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)",
                                 str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            with command_scope():
                acquire(path, "model 'x'", shared=True)
        finally:
            proc.kill()
            proc.wait()


# -- 3. OSError in one place ---------------------------------------------------------------------------
@pytest.mark.slow
def test_full_disk_during_recommend_output_is_one_line_and_leaves_nothing(
    tiny_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out" / "recs.jsonl"
    real_replace = os.replace

    def full_disk(src: object, dst: object, *args: object, **kwargs: object) -> None:
        if str(dst) == str(out):
            raise OSError(errno.ENOSPC, "No space left on device", str(out))
        real_replace(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", full_disk)
    code, stdout, err = _invoke("recommend", "--dataset", "synthetic", "--all-users", "--device", "cpu", "-o", str(out),
                                "--home", str(tiny_home.root), "--json")
    line = _one_error(err)
    assert code == 2 and str(out) in line and "no space left" in line and "run the command again" in line
    assert json.loads(stdout.strip())["exit_code"] == 2
    assert list(out.parent.iterdir()) == []  # no half-written file, no .tmp folder


def test_home_pointing_at_a_file_is_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "home-file"
    a_file.write_text("not a folder")
    code, stdout, err = _invoke("data", "import", "synthetic", "--home", str(a_file), "-o", "users=30", "--json")
    line = _one_error(err)
    assert code == 2 and str(a_file) in line and "is a file, not a folder" in line
    assert json.loads(stdout.strip().splitlines()[-1])["error"] == line.removeprefix("Error: ")
    assert a_file.read_text() == "not a folder"


def test_read_only_home_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod cannot make a folder read-only for root (the EACCES case is covered by "
                    "the os_error_message unit test)")
    home = tmp_path / "ro"
    home.mkdir()
    home.chmod(0o500)
    try:
        code, _, err = _invoke("data", "import", "synthetic", "--home", str(home), "-o", "users=30")
        assert code == 2 and "permission denied" in _one_error(err)
        assert list(home.iterdir()) == []
    finally:
        home.chmod(0o700)


@pytest.mark.parametrize(
    ("err", "needles"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/h/x"), ["/h/x:", "no space left", "free some space"]),
        (OSError(errno.EROFS, "Read-only file system", "/h"), ["/h:", "read-only", "writable --home"]),
        (PermissionError(errno.EACCES, "Permission denied", "/h/m"), ["/h/m:", "permission denied"]),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), ["/f/x:", "is a file, not a folder"]),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/d"), ["/d:", "is a folder", "give a file path"]),
        (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"),
         ["/a -> /b:", "Invalid cross-device link"]),
    ],
)
def test_os_error_message_names_path_and_fix(err: OSError, needles: list[str]) -> None:
    from paprec_cli.errors import os_error_message, user_message

    message = os_error_message(err)
    assert "\n" not in message and all(n in message for n in needles), message
    assert user_message(err) == (message, 2)
    assert user_message(ValueError("a bug")) is None


def test_sigterm_is_handled_like_ctrl_c() -> None:
    from paprec_cli.commands.common import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == before


# -- 4. --json errors ------------------------------------------------------------------------------------
def test_json_error_object_on_stdout(tmp_path: Path) -> None:
    code, stdout, err = _invoke("recommend", "--dataset", "synthetic", "--json", "--home", str(tmp_path))
    line = _one_error(err)
    assert code == 2
    assert json.loads(stdout.strip()) == {"error": line.removeprefix("Error: "), "exit_code": 2}
    code, stdout, _ = _invoke("recommend", "--dataset", "synthetic", "--home", str(tmp_path))
    assert code == 2 and stdout == ""  # without --json, stdout stays empty


@pytest.mark.slow
def test_resuming_a_finished_run_on_a_read_only_home_writes_nothing(
    tiny_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only home simulated by a fault-injecting wrapper (root ignores chmod): every write under the home
    or the run raises EROFS. Resuming a finished run only reads, so it succeeds and changes nothing."""
    import builtins

    run = tmp_path / "run"
    code, _, err = _invoke("search", *SEARCH, "--home", str(tiny_home.root), "--run-dir", str(run), "-q")
    assert code == 0, err
    guarded = (str(tiny_home.root), str(run))
    snapshot = {p: p.read_bytes() for root in (tiny_home.root, run) for p in Path(root).rglob("*") if p.is_file()}

    def read_only(path: object) -> None:
        if str(path).startswith(guarded):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(c in mode for c in "wax+"):
            read_only(file)
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    def fake_os_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            read_only(path)
        return real_os_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def fake_mkdir(path: object, *args: object, **kwargs: object) -> None:
        read_only(path)
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    code, out, err = _invoke("search", "--resume", str(run), "--device", "cpu", "--home", str(tiny_home.root),
                             "--json")
    monkeypatch.undo()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["run"] == str(run)
    after = {p: p.read_bytes() for root in (tiny_home.root, run) for p in Path(root).rglob("*") if p.is_file()}
    assert after == snapshot

    # the same fault on a run that still has work to do: one line naming the path, exit 2
    (run / "prompts.json").unlink()
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    code, _, err = _invoke("search", "--resume", str(run), "--device", "cpu", "--home", str(tiny_home.root))
    monkeypatch.undo()
    line = _one_error(err)
    assert code == 2 and "read-only file system" in line and str(run) in line


# -- 5. values checked before any work; user text literal; plugins contained -------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--dataset", "synthetic", "--seed", "-1"], "--seed -1: expected an integer from 0 to 4294967295"),
        (["search", "--task", "sequential", "--dataset", "synthetic", "--seed", "-1"], "--seed -1"),
        (["data", "import", "synthetic", "--seed", "4294967296"], "--seed 4294967296"),
        (["train", "--dataset", "synthetic", "--val-users", "0"], "--val-users"),
        # a fresh-user review found `.nosuch-tiny-atomic.lock` and `.s3.lock` left behind by these two
        (["train", "--dataset", "nosuch"], "no importer of that name (importers: beauty,"),
        (["train", "--dataset", "synthetic", "--tasks", "foo", "--name", "s3"], "unknown task 'foo' for --tasks"),
    ],
)
def test_values_checked_before_any_work(tmp_path: Path, args: list[str], needle: str) -> None:
    home = tmp_path / "home"
    code, stdout, err = _invoke(*args, "--home", str(home), "--json")
    line = _one_error(err)
    assert code == 2 and needle in line
    assert json.loads(stdout.strip())["error"] == line.removeprefix("Error: ")
    assert not home.exists()  # nothing imported, no .train-state, no run folder


@pytest.mark.slow
def test_absurd_n_suffix_is_refused_before_a_run_folder_exists(tiny_home: Home, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = _invoke("search", *SEARCH, "--n-suffix", "100000", "--home", str(tiny_home.root), "--run-dir",
                           str(run))
    line = _one_error(err)
    assert code == 2 and "at most 64 trigger tokens" in line and not run.exists()


def test_raw_user_id_with_markup_is_printed_literally(capsys: pytest.CaptureFixture[str]) -> None:
    from paprec_cli.commands.common import make_ctx
    from paprec_cli.commands.recommend_cmd import show_one

    answer = {"user": "[/x]", "user_idx": 1, "dataset": "d", "task": "sequential", "prompt": {"mode": "manual"},
              "prompt_text": "what next for [/x] [bold]?", "items": [{"rank": 1, "item_idx": 3, "item": "[red]i",
                                                                      "score": -1.0}]}
    show_one(make_ctx(None), "[/x]", answer)
    captured = capsys.readouterr()
    assert "user [/x] (manual prompt)" in captured.out and "[red]i" in captured.out
    assert "prompt: what next for [/x] [bold]?" in captured.err


def test_plugin_calling_sys_exit_is_contained(runner: CliRunner) -> None:
    from test_plugins_core import _manager_with

    from paprec_cli.commands.common import PaprecTyper
    from paprec_cli.hookspecs import hookimpl
    from paprec_cli.plugins import PluginRecord, _register_each, register_plugin_commands

    class Exits:
        @hookimpl
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            sys.exit(3)

        @hookimpl
        def register_commands(self, app):  # type: ignore[no-untyped-def]
            raise SystemExit("bye")

    plugin = Exits()
    registry = _manager_with(plugin)
    record = PluginRecord("fake0", "1", [])
    registry.plugins.append(record)
    _register_each(registry.manager, plugin, record, registry)
    assert record.status == "error in register_datasets: SystemExit: 3"
    app_ = PaprecTyper()

    @app_.command("noop")
    def noop() -> None:
        print("still works")

    @app_.command("other")
    def other() -> None:
        pass

    register_plugin_commands(app_, registry)
    assert record.status == "error in register_commands: SystemExit: bye"
    result = runner.invoke(app_, ["noop"])
    assert result.exit_code == 0 and "still works" in result.stdout


def test_lock_upgrade_in_the_same_command_and_no_lock_outside_a_command(tmp_path: Path) -> None:
    from paprec_cli.locks import _HELD, acquire, command_scope

    path = tmp_path / ".d.lock"
    acquire(path, "dataset 'd'")  # library use, no command: nothing locked, nothing written
    assert not path.exists() and path not in _HELD
    with command_scope():
        acquire(path, "dataset 'd'", shared=True)
        acquire(path, "dataset 'd'")  # the same command then writes it: upgraded in place
        assert _HELD[path][1] is False
    assert path not in _HELD


def test_data_list_shows_a_broken_import_and_keeps_listing(tmp_path: Path) -> None:
    root = tmp_path / "home"
    code, _, err = _invoke("data", "import", "synthetic", "--home", str(root), "-q", "-o", "users=30",
                           "-o", "items=40", "--name", "good")
    assert code == 0, err
    for name, text in (("truncated", '{"name": "x", "coun'), ("a-list", "[]"),
                       ("no-counts", '{"name": "n", "fingerprint": "f"}'),
                       ("bad-count", '{"name": "n", "fingerprint": "f", "counts": {"users": "9", "items": 1, '
                                     '"with_rating": 0}}')):
        (root / "data" / name).mkdir(parents=True)
        (root / "data" / name / "manifest.json").write_text(text)
    code, out, err = _invoke("data", "list", "--home", str(root), "--json")
    assert code == 0, err
    imported = {m["name"]: m for m in json.loads(out.strip().splitlines()[-1])["imported"]}
    assert set(imported) == {"good", "truncated", "a-list", "no-counts", "bad-count"}
    assert "broken" not in imported["good"] and imported["good"]["users"] == 30
    assert "not valid JSON" in imported["truncated"]["broken"]
    assert "expected a JSON object, found list" in imported["a-list"]["broken"]
    assert "field 'counts'" in imported["no-counts"]["broken"]
    assert "field 'counts.users'" in imported["bad-count"]["broken"]
    assert "broken import 'truncated'" in err
    code, _, err = _invoke("train", "--dataset", "a-list", "--home", str(root))
    line = _one_error(err)
    assert code == 2 and str(root / "data" / "a-list" / "manifest.json") in line and "re-import" in line


def test_import_refused_while_another_process_reads_the_dataset(tmp_path: Path, holder) -> None:  # type: ignore[no-untyped-def]
    from paprec_cli.locks import lock_path

    root = tmp_path / "home"
    base = ["data", "import", "synthetic", "--home", str(root), "-q", "-o", "users=30", "-o", "items=40"]
    code, _, err = _invoke(*base)
    assert code == 0, err
    manifest = (root / "data" / "synthetic" / "manifest.json").read_bytes()
    pid = holder(lock_path(Home.resolve(root).dataset_dir("synthetic")), shared=True)
    code, _, err = _invoke(*base, "--seed", "5", "--force")
    line = _one_error(err)
    assert code == 2 and f"process {pid}" in line and "dataset 'synthetic'" in line
    assert (root / "data" / "synthetic" / "manifest.json").read_bytes() == manifest


@pytest.mark.slow
def test_interrupt_during_the_closing_evaluation_prints_the_resume_command(
    tiny_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paprec_cli.search import runner

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(runner, "finalize", interrupted)
        code, _, err = _invoke("search", *SEARCH, "--home", str(tiny_home.root), "--run-dir", str(run), "-q")
    assert code == 130 and f"Continue with: paprec search --resume {run}" in err
    assert not (run / "prompts.json").exists()
    code, _, err = _invoke("search", "--resume", str(run), "--device", "cpu", "--home", str(tiny_home.root), "-q")
    assert code == 0, err
    assert (run / "prompts.json").is_file()


def test_interrupted_with_a_hint_is_one_line_exit_130() -> None:
    from paprec_cli.errors import Interrupted, user_message

    assert user_message(Interrupted("epochs 1-2 are saved; continue with: paprec train --resume m")) == (
        "Interrupted; epochs 1-2 are saved; continue with: paprec train --resume m", 130)
    assert user_message(KeyboardInterrupt()) == ("Interrupted.", 130)


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("state.json", "[]", "state.json: expected a JSON object, found list"),
        ("state.json", '{"phase": "shared"', "state.json: not valid JSON"),
        ("state.json", '{"phase": 3}', "state.json: unreadable search state"),
        ("manifest.json", '{"config": {}, "dataset": {"fingerprint": "x"}, "mod', "manifest.json: not valid JSON"),
        ("manifest.json", "[1]", "manifest.json: expected a JSON object, found list"),
        ("manifest.json", '{"dataset": {"fingerprint": "x"}}', "field 'config' is missing"),
    ],
)
def test_broken_run_files_are_one_line_naming_file_and_field(tmp_path: Path, name: str, text: str,
                                                             needle: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"config": {}, "dataset": {"fingerprint": "x"},
                                                   "model": {"fingerprint": "y"}}))
    (run / "trajectory.jsonl").write_text("")
    (run / name).write_text(text)
    code, stdout, err = _invoke("search", "--resume", str(run), "--device", "cpu", "--home", str(tmp_path / "h"),
                                "--json")
    line = _one_error(err)
    assert code == 2 and needle in line and str(run / name) in line
    assert json.loads(stdout.strip())["exit_code"] == 2
    assert (run / name).read_text() == text


def test_resume_refuses_a_manifest_without_fingerprints() -> None:
    from paprec_cli.errors import PaprecError
    from paprec_cli.search.runner import check_resumable

    for recorded in ({"config": {}}, {"config": {}, "dataset": {"fingerprint": "x"}, "model": {"fingerprint": 3}}):
        with pytest.raises(PaprecError, match="fingerprint' .edited or damaged"):
            check_resumable(None, recorded)  # type: ignore[arg-type]


def test_a_full_disk_inside_a_library_writer_names_the_output(tmp_path: Path) -> None:
    """polars reports ENOSPC as its own ComputeError ("... (os error 28)") and write() errors name no file:
    both become an OSError naming the output, which the CLI prints as one line (exit 2)."""
    import errno

    from paprec_cli.errors import user_message
    from paprec_cli.paths import atomic_path

    target = tmp_path / "out.parquet"

    class ComputeError(Exception):
        pass

    for raised in (ComputeError("parquet: I/O error: No space left on device (os error 28)"),
                   OSError(errno.ENOSPC, "No space left on device")):
        with pytest.raises(OSError) as caught, atomic_path(target):
            raise raised
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
        message, code = user_message(caught.value)  # type: ignore[misc]
        assert code == 2 and message.startswith(f"{target}: ") and "space" in message
        assert not target.exists() and [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize(("edit", "field"), [
    (lambda m: m.update(dataset=[1]), "'dataset'"), (lambda m: m.pop("tie_break"), "'tie_break'"),
    (lambda m: m.pop("indexing"), "'indexing'"), (lambda m: m.update(sources=[1]), "'sources'"),
    (lambda m: m.update(extras=[1]), "'extras'"), (lambda m: m.update(indexing="weird"), "'indexing'"),
])
def test_a_wrong_typed_manifest_field_is_one_broken_entry(tmp_path: Path, edit, field) -> None:  # type: ignore[no-untyped-def]
    """One dataset's bad manifest never breaks `data list` for the others, and `data info` says which field."""
    root = tmp_path / "home"
    for name in ("a", "b"):
        code, _, err = _invoke("data", "import", "synthetic", "--name", name, "--home", str(root), "-q",
                               "-o", "users=20", "-o", "items=40")
        assert code == 0, err
    path = root / "data" / "a" / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    code, out, err = _invoke("data", "list", "--home", str(root), "--json")
    assert code == 0, err
    imported = {d["name"]: d for d in json.loads(out)["imported"]}
    assert "broken" in imported["a"] and field in imported["a"]["broken"] and "broken" not in imported["b"]
    code, _, err = _invoke("data", "info", "a", "--home", str(root))
    line = _one_error(err)
    assert code == 2 and str(path) in line and field in line
