"""Issue #16, a second fresh review's findings (branch issue-16e): each reproduced the way it happens for a user,
with the one-line error, the exit code and the files left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import invoke, last_json, last_line, parsed_train_options

from paprec_cli.paths import Home

SEARCH = ["search", "--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
          "--batch-size", "64", "--max-rounds", "1", "--n-personal", "1", "--n-suffix", "1", "--device", "cpu",
          "--protocol", "paper", "-q"]


# -- 1. --run-dir at a dataset folder ----------------------------------------------------------------------
def test_run_dir_at_a_dataset_folder_is_not_a_run(tiny_home: Home, tmp_path: Path) -> None:
    """`--run-dir $HOME/data/synthetic` (a manifest.json that is a dataset's): not a run folder, naming its
    files and asking for a new folder (not `--resume`, which would fail), with or without --force; `--resume`
    of it says it is not a run and creates no lock file there; nothing in the folder changes."""
    folder = tiny_home.dataset_dir("synthetic")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for force in ([], ["--force"]):
        code, stdout, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(folder), *force, "--json")
        line = last_line(err)
        assert code == 2 and line == (
            f"Error: --run-dir {folder}: not a run folder (its manifest.json is not a paprec run's; it holds other "
            "files: extra_truth.parquet, interactions.parquet, items.parquet, users.parquet); choose a new or empty "
            "folder for --run-dir"), line
        assert last_json(stdout)["exit_code"] == 2
    code, _, err = invoke("search", "--resume", str(folder), "--home", str(tiny_home.root), "--device", "cpu")
    assert code == 2 and last_line(err) == (
        f"Error: --resume {folder}: not a paprec run directory (its manifest.json is not a paprec run's); give a "
        "run folder (a search's --run-dir, or one under the home's runs/)")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    code, _, err = invoke(*SEARCH, "--home", str(tiny_home.root), "--run-dir", str(tmp_path / "fresh"))
    assert code == 0, err


def test_a_run_manifest_still_holds_a_run(tmp_path: Path) -> None:
    """A run's manifest (its format, or a config object), a damaged one, or any manifest beside a trajectory
    still mean "a run: --resume it"."""
    from paprec_cli.errors import PaprecError
    from paprec_cli.search.rundir import RunDir, holds_run, holds_run_manifest

    for text in ('{"format": "paprec-run/1"}', '{"config": {}}', '{"format": "paprec-r', "[]"):
        folder = tmp_path / str(abs(hash(text)))
        folder.mkdir()
        (folder / "manifest.json").write_text(text)
        assert holds_run_manifest(folder)
        with pytest.raises(PaprecError, match="already holds a run; continue it with --resume"):
            RunDir.check_new(folder)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.json").write_text('{"manifest_version": 1, "name": "x"}')
    assert not holds_run_manifest(tmp_path / "d") and not holds_run(tmp_path / "d")
    (tmp_path / "d" / "trajectory.jsonl").write_text("")  # a run whose manifest was edited: still a run
    assert holds_run(tmp_path / "d")
    with pytest.raises(PaprecError, match="already holds a run; continue it with --resume"):
        RunDir.check_new(tmp_path / "d", force=True)


# -- 2. models list and a truncated model.safetensors ---------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "extended", "header", "missing"])
def test_models_list_shows_damaged_weights_as_broken(tiny_home: Home, tmp_path: Path, damage: str) -> None:
    """A copy of the tiny model whose `model.safetensors` is cut short, has bytes appended, has a garbled
    header or is gone: `models list` shows it broken (naming the file and the fix) and the intact model ok."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(tiny_home.root, home)
    good, bad = home / "models" / "synthetic-tiny-atomic", home / "models" / "copy"
    shutil.copytree(good, bad)
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncated":
        weights.write_bytes(data[: len(data) - 1000])
    elif damage == "extended":
        weights.write_bytes(data + b"\0" * 8)
    elif damage == "header":
        weights.write_bytes(data[:8] + b"{" * 16 + data[24:])
    else:
        weights.unlink()
    code, stdout, err = invoke("models", "list", "--home", str(home), "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in last_json(stdout)["models"]}
    assert rows["synthetic-tiny-atomic"]["broken"] is None
    fix = ("restore the file, or retrain the model (`paprec train --dataset DATASET --size SIZE --name copy --force` "
           "with the dataset, size and options it was trained with)")
    expected = {"truncated": "not a readable safetensors file, truncated or damaged (Error while deserializing "
                             "header: incomplete metadata, file not fully covered)",
                "extended": "not a readable safetensors file, truncated or damaged (Error while deserializing "
                            "header: incomplete metadata, file not fully covered)",
                "header": "not a readable safetensors file, truncated or damaged (Error while deserializing header: "
                          "invalid JSON in header: key must be a string at line 1 column 2)",
                "missing": "missing"}[damage]
    assert rows["copy"]["broken"] == f"{weights}: {expected}; {fix}"
    code, stdout, _ = invoke("models", "list", "--home", str(home))
    assert code == 0 and "broken:" in stdout and "| ok" in stdout


# -- 3. recommend -o FILE into a read-only folder ---------------------------------------------------------------
def test_read_only_output_folder_names_the_output_not_the_temp_file(tiny_home: Home, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`recommend -o ro/out.jsonl` where `ro` is read-only (simulated: root ignores chmod; every folder made in
    `ro` raises EACCES naming itself, as os.mkdir does): the one line names `ro/out.jsonl`, not the temporary
    `.out.jsonl.XXXX.tmp` atomic_path tried; nothing is written; the same command into a writable folder works."""
    import errno
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    out = ro / "out.jsonl"
    real_mkdir = os.mkdir

    def read_only(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).startswith(str(ro)):
            raise OSError(errno.EACCES, "Permission denied", str(path))
        real_mkdir(path, *args, **kwargs)

    args = ["recommend", "--dataset", "synthetic", "--all-users", "--device", "cpu", "--home", str(tiny_home.root)]
    with monkeypatch.context() as patch:
        patch.setattr(os, "mkdir", read_only)
        code, stdout, err = invoke(*args, "-o", str(out), "--json")
    line = last_line(err)
    assert code == 2 and line == (f"Error: {out}: permission denied; fix the permissions or choose a writable --home "
                                  "/ PAPREC_HOME or output path"), line
    assert last_json(stdout) == {"error": line.removeprefix("Error: "), "exit_code": 2}
    assert list(ro.iterdir()) == []
    code, _, err = invoke(*args, "-o", str(tmp_path / "out.jsonl"), "-q")
    assert code == 0, err


def test_atomic_path_names_the_output_for_a_staged_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OS error naming a file inside the staged folder names the same file in the output (a folder
    target), and a failed rename names the output alone."""
    import errno
    import os

    from paprec_cli.paths import atomic_path

    target = tmp_path / "dataset"
    with pytest.raises(OSError) as caught, atomic_path(target) as staged:
        staged.mkdir()
        raise OSError(errno.ENOSPC, "No space left on device", str(staged / "items.parquet"))
    assert caught.value.filename == str(target / "items.parquet") and caught.value.filename2 is None

    def failing(src: Any, dst: Any) -> None:
        raise OSError(errno.EACCES, "Permission denied", str(src), None, str(dst))

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", failing)
        with pytest.raises(OSError) as caught, atomic_path(tmp_path / "f.txt") as staged:
            staged.write_text("x")
    assert caught.value.filename == str(tmp_path / "f.txt") and caught.value.filename2 is None
    assert list(tmp_path.iterdir()) == []


# -- 4. doubled words in messages -------------------------------------------------------------------------------
def test_truncated_manifest_message_says_at_once(tiny_home: Home, tmp_path: Path) -> None:
    """A dataset manifest cut inside a string: json says "Unterminated string starting at"; the message gives
    the place once ("... starting at line 5 column 12"), in `data list` and on use."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(tiny_home.root, home)
    manifest = home / "data" / "synthetic" / "manifest.json"
    text = manifest.read_text()
    cut = text.index('"dataset"') + 4
    manifest.write_text(text[:cut])
    line_no = text[:cut].count("\n") + 1
    code, stdout, err = invoke("data", "list", "--home", str(home), "--json")
    assert code == 0, err
    broken = {row["name"]: row for row in last_json(stdout)["imported"]}["synthetic"]["broken"]
    assert broken.startswith(f"{manifest}: not valid JSON (Unterminated string starting at line {line_no} column 3); ")
    code, _, err = invoke("data", "info", "synthetic", "--home", str(home))
    assert code == 2 and "Unterminated string starting at line" in last_line(err)


def test_json_error_text_and_the_personal_step_line() -> None:
    """Other json messages keep their "at"; a personal step's line says "personal[0]" once."""
    import json

    from paprec_cli.paths import json_error_text
    from paprec_cli.progress import SearchLog

    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads('{"a": 1 "b"}')
    assert json_error_text(caught.value) == "Expecting ',' delimiter at line 1 column 9"
    log = SearchLog(per_round=2, max_rounds=1, clock=lambda: 0.0)
    state = type("S", (), {"accepted_shared": 0, "personal_changes": 2})()
    line = log.line(state, {"round": 1, "kind": "personal", "position": "personal[0]", "surrogate": 0.5, "changed": 2})
    assert line.startswith("search: round 1/1 personal[0] surrogate 0.5000 changed 2 user(s)"), line


def test_no_doubled_words_in_message_literals() -> None:
    """Every string literal and f-string text (docstrings aside) of paprec_cli and its plugins: no word twice in
    a row ("at at", "the the"); placeholders count as a word of their own."""
    import ast
    import re

    from helpers import REPO

    doubled = re.compile(r"\b([a-z]{2,}) \1\b")  # lower case: "USER ITEM ITEM ..." describes a file format
    found = []
    for path in [*(REPO / "paprec_cli").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            found += [f"{path.relative_to(REPO)}:{node.lineno}: {m.group(0)!r}" for m in doubled.finditer(text)]
    assert found == []


# -- 5. the damaged-checkpoint message: whole words, a command that keeps the user's options ---------------------
def test_damaged_checkpoint_message_cuts_between_words(tmp_path: Path) -> None:
    """A long torch error is shortened between words ("... central ..."), never mid-word as at 120 characters."""
    from paprec_cli.training import state as run_state

    said = "PytorchStreamReader failed reading zip archive: failed finding central directory " * 3
    message = str(run_state._damaged(tmp_path / "optimizer.pt", RuntimeError(said)))
    inner = message.split("(RuntimeError: ", 1)[1].split(");", 1)[0]
    assert inner.endswith(" ...") and len(inner) <= 160
    assert all(word in said.split() for word in inner.removesuffix(" ...").split()), inner


@pytest.mark.parametrize("given", [
    ["--dataset", "synthetic"],
    ["--dataset", "synthetic", "--tasks", "sequential,direct", "--epochs", "3", "--lr", "0.001", "--batch-size", "16",
     "--val-users", "20", "--patience", "2", "--dropout", "0.2", "--weight-decay", "0.05", "--item-init", "random",
     "--time-budget", "100", "--seed", "3", "-o", "history=10", "-o", "share=0.5", "-o", "negatives=49", "-o",
     "warmup=0.1", "-o", "seen_penalty=0.5", "-o", "recent=3", "-o", "hint=0.1", "-o", "item_next=0.2"],
    ["--dataset", "ml-100k", "--size", "small", "--ids", "subword", "--tasks", "sequential"],
    ["--dataset", "ml-100k", "--tasks", "sequential", "--time-budget", "50", "--init", "/somewhere/model"],
])
def test_train_command_gives_back_the_options(given: list[str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`train_command(options)` parsed again by `paprec train` gives the same options (name aside), for the
    defaults (tiny's time cap kept), every option changed, another size and dataset, --init."""
    from dataclasses import replace

    from paprec_cli.training.command import train_command

    home = ["--home", str(tmp_path / "h")]
    options = parsed_train_options(["train", *given, *home], monkeypatch)
    command = train_command(options, "new", tmp_path / "h")
    import shlex

    again = parsed_train_options(shlex.split(command)[1:], monkeypatch)
    assert replace(again, name=options.name) == options, command
    assert again.name == "new" and f"--home {tmp_path / 'h'}" in command


def test_train_command_of_a_resume_keeps_its_changes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A resumed run's options (saved with tiny's cap, resumed with --epochs 6 --patience 5): the fresh command
    trains 6 epochs with patience 5 and no cap, as the resume would have."""
    import shlex

    from paprec_cli.training.command import train_command
    from paprec_cli.training.setup import new_options, resumed_options

    saved = new_options(dataset="synthetic", tasks=["sequential"], size="tiny", ids="atomic", name="m", seed=0,
                        time_budget=None, init=None, overrides={})
    assert saved.time_budget == 150.0 and not saved.anneal_to_budget
    resumed = resumed_options(saved, {}, {"epochs": 6, "patience": 5, "time_budget": None})
    monkeypatch.setenv("PAPREC_HOME", str(tmp_path / "h"))
    command = train_command(resumed, "m-2", tmp_path / "h")
    assert command == ("paprec train --dataset synthetic --tasks sequential --size tiny --ids atomic --seed 0 "
                       "--epochs 6 --patience 5 --name m-2")  # PAPREC_HOME is this home: no --home
    again = parsed_train_options(shlex.split(command)[1:], monkeypatch)
    assert again.recipe.epochs == 6 and again.recipe.patience == 5 and again.time_budget is None
    from dataclasses import replace

    assert replace(again, name="m") == resumed


# -- 6. train --resume NAME while NAME trains its first epoch ----------------------------------------------------
def test_resume_during_the_first_epoch_names_the_training_process(train_home: Path, holder: Any) -> None:
    """NAME's first epoch is running (another process holds its model lock for writing; its state folder holds
    only the codec): `train --resume NAME` says NAME is being trained by that process, not "no training state";
    nothing is written. A reader's shared lock does not count; with the lock free it is "no training state"."""
    models = train_home / "models"
    (models / ".train-state" / "m" / "codec").mkdir(parents=True)
    lock = models / ".m.lock"
    pid = holder(lock)
    before = sorted(str(p) for p in train_home.rglob("*"))
    args = ["train", "--resume", "m", "--device", "cpu", "--home", str(train_home)]
    code, stdout, err = invoke(*args, "--json")
    line = last_line(err)
    assert code == 2 and line == (f"Error: --resume m: model 'm' is being trained by process {pid} (paprec test) "
                                  f"(lock {lock}) and has no finished epoch yet; wait until it ends (resume it if it "
                                  "stops after saving an epoch), or stop it"), line
    assert last_json(stdout)["exit_code"] == 2
    assert sorted(str(p) for p in train_home.rglob("*")) == before
    holder.stop()
    holder(lock, shared=True)
    code, _, err = invoke(*args)
    assert code == 2 and "no training state at" in last_line(err)
    holder.stop()
    code, _, err = invoke(*args)
    assert code == 2 and last_line(err) == (f"Error: --resume m: no training state at {models / '.train-state' / 'm'}; "
                                            "start it with `paprec train --dataset DATASET --name m`")


# -- 7. an unwritable platform folder ------------------------------------------------------------------------------
def test_unwritable_platform_folder_names_it_and_how_to_choose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --home, PAPREC_HOME unset: a file in the way of the platform folder, or the folder read-only (EACCES
    on every folder made under it, simulated as root ignores chmod): the line names the folder paprec chose,
    says it is the platform's default, and how to choose another; nothing is written. With --home at the same
    place the user chose it, and the line is the plain one."""
    import errno
    import os

    import platformdirs

    monkeypatch.delenv("PAPREC_HOME", raising=False)
    blocker = tmp_path / "share"
    blocker.write_text("a file, not a folder")
    chosen = blocker / "paprec"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(chosen))
    how = "or choose another home with --home PATH or PAPREC_HOME=PATH"
    code, stdout, err = invoke("data", "import", "synthetic", "-o", "users=20", "--json")
    line = last_line(err)
    assert code == 2 and line == (f"Error: {chosen}: a part of this path is a file, not a folder; {chosen} is "
                                  "paprec's home by default, the platform's user data folder (neither --home nor "
                                  f"PAPREC_HOME is set): move the file that is in the way, {how}"), line
    assert last_json(stdout)["exit_code"] == 2 and blocker.read_text() == "a file, not a folder"
    code, _, err = invoke("data", "import", "synthetic", "-o", "users=20", "--home", str(chosen))
    assert code == 2 and last_line(err) == (f"Error: {chosen}: a part of this path is a file, not a folder; check "
                                            "--home / PAPREC_HOME, --run-dir and the output path")

    chosen = tmp_path / "ro" / "paprec"
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(chosen))
    real_mkdir = os.mkdir

    def read_only(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EACCES, "Permission denied", str(path))
        real_mkdir(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "mkdir", read_only)
        code, _, err = invoke("data", "import", "synthetic", "-o", "users=20")
    line = last_line(err)
    assert code == 2 and line.startswith(f"Error: {chosen}") and line.endswith(
        f"permission denied; {chosen} is paprec's home by default, the platform's user data folder (neither --home "
        f"nor PAPREC_HOME is set): make it writable, {how}"), line
    assert list((tmp_path / "ro").iterdir()) == []
    code, _, err = invoke("data", "import", "synthetic", "-o", "users=20", "-q")
    assert code == 0, err
    assert (chosen / "data" / "synthetic" / "manifest.json").is_file()


# -- 8. the dataset fix line: the exact re-import command ---------------------------------------------------------
def _broken_reason(home: Path, name: str) -> str:
    code, stdout, err = invoke("data", "list", "--home", str(home), "--json")
    assert code == 0, err
    return str({row["name"]: row for row in last_json(stdout)["imported"]}[name]["broken"])


def test_reimport_fix_is_the_exact_command_and_it_repairs(tmp_path: Path) -> None:
    """A CSV imported with `--name mine`, its own columns, sequential ids, item tie-break and seed 3; its
    interactions table truncated: `data list` (and use) give the exact command (dataset, --from, --name,
    options, --force, --home) and, run as printed, it repairs the import (same fingerprint)."""
    import json
    import shlex

    home = tmp_path / "h"
    csv = tmp_path / "my file.csv"
    rows = [f"u{u};i{(u * 7 + k) % 13};{1 + (u + k) % 5};{1000 + k}" for u in range(12) for k in range(6)]
    csv.write_text("uid;iid;stars;when\n" + "\n".join(rows) + "\n")
    code, _, err = invoke("data", "import", "csv", "--from", str(csv), "--name", "mine", "-o", "user_col=uid", "-o",
                          "item_col=iid", "-o", "rating_col=stars", "-o", "timestamp_col=when", "-o", "sep=;",
                          "--indexing", "sequential", "--tie-break", "item", "--seed", "3", "--home", str(home), "-q")
    assert code == 0, err
    folder = home / "data" / "mine"
    fingerprint = json.loads((folder / "manifest.json").read_text())["fingerprint"]
    table = folder / "interactions.parquet"
    table.write_bytes(table.read_bytes()[:200])
    command = ("paprec data import csv --from " + shlex.quote(str(csv)) + " --name mine --indexing sequential "
               "--tie-break item --seed 3 -o user_col=uid -o item_col=iid -o rating_col=stars -o timestamp_col=when "
               f"-o 'sep=;' --force --home {home}")
    assert _broken_reason(home, "mine").endswith(f"; re-import dataset 'mine' with `{command}`")
    code, _, err = invoke("data", "info", "mine", "--home", str(home))
    assert code == 2 and last_line(err).endswith(f"; re-import dataset 'mine' with `{command}`")
    code, _, err = invoke(*shlex.split(command)[1:], "-q")
    assert code == 0, err
    assert json.loads((folder / "manifest.json").read_text())["fingerprint"] == fingerprint
    assert "broken" not in json.loads(invoke("data", "list", "--home", str(home), "--json")[1].splitlines()[-1])[
        "imported"][0]


def test_reimport_fix_of_a_generated_dataset_and_a_damaged_manifest(tiny_home: Home, tmp_path: Path) -> None:
    """synthetic (no --from; its -o options and seed kept); a manifest that cannot be read gives the command's
    shape with what to fill in, not `...`."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(tiny_home.root, home)
    folder = home / "data" / "synthetic"
    (folder / "users.parquet").write_bytes(b"PAR1")
    assert _broken_reason(home, "synthetic").endswith(
        "; re-import dataset 'synthetic' with `paprec data import synthetic --indexing random --tie-break source "
        f"--seed 0 -o users=40 -o items=30 -o categories=4 -o length=8 --force --home {home}`")
    (folder / "manifest.json").write_text("[]")
    assert _broken_reason(home, "synthetic") == (
        f"{folder / 'manifest.json'}: expected a JSON object, found list; re-import dataset 'synthetic' with `paprec "
        "data import DATASET [--from PATH] --name synthetic --force` (the dataset, source and options it was "
        "imported with)")


def test_source_path_of_manifests_before_from_was_recorded() -> None:
    """Older manifests have no `from`: the one source file, or the folder holding the sources."""
    from paprec_cli.data.reimport import source_path

    assert source_path({"sources": [{"path": "/d/ml-100k/u.data"}, {"path": "/d/ml-100k/u.item"}]}) == "/d/ml-100k"
    assert source_path({"sources": [{"path": "/d/mine.csv"}]}) == "/d/mine.csv"
    assert source_path({"sources": []}) is None
    assert source_path({"from": "/d/beauty", "sources": [{"path": "/d/beauty/sequential_data.txt"}]}) == "/d/beauty"
