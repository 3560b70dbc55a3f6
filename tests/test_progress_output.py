"""Progress in batch logs, tables at 80 columns, clean --json streams (issue 19)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from paprec_cli.cli import app
from paprec_cli.output import Output
from paprec_cli.paths import Home
from paprec_cli.progress import EpochLog, SearchLog, duration, heartbeat, search_progress
from paprec_cli.tables import fit

SMALL = ["--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
         "--batch-size", "64", "--max-rounds", "1", "--n-suffix", "2", "--top-k", "2", "--seed", "1",
         "--device", "cpu"]
STEP_LINE = re.compile(r"^search: round 1/1 (shared suffix\[\d\]|personal\[0\]) surrogate \d\.\d{4} "
                       r"(accepted .+|changed \d+ user\(s\)) \(kept \d+ shared, \d+ personal\) "
                       r"elapsed [\dhms.]+ ETA [\dhms.]+$")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    from test_search_model import make_home

    return make_home(tmp_path_factory.mktemp("home"))


def _paprec(args: list[str], stderr_file: Path, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": str(columns)}
    with open(stderr_file, "w", encoding="utf-8") as err:
        return subprocess.run([sys.executable, "-m", "paprec_cli", *args], env=env, stdout=subprocess.PIPE,
                              stderr=err, text=True, timeout=300)


@pytest.mark.slow
def test_search_logs_one_line_per_step_to_a_file_and_tables_fit_80_columns(tiny_home: Home, tmp_path: Path) -> None:
    log = tmp_path / "search.log"
    proc = _paprec(["search", *SMALL, "--protocol", "paper", "--home", str(tiny_home.root),
                    "--run-dir", str(tmp_path / "run")], log)
    assert proc.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    steps = [line for line in lines if line.startswith("search: ")]
    assert len(steps) == 3, lines  # two shared slots and one personal step
    assert all(STEP_LINE.match(line) for line in steps), steps
    assert "\x1b[" not in log.read_text()  # no terminal escapes in a log file
    assert "…" not in proc.stdout and "..." not in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    assert "+---" in proc.stdout  # plain ASCII box off a terminal


@pytest.mark.slow
def test_search_json_stdout_is_one_object_and_stderr_has_no_table(tiny_home: Home, tmp_path: Path) -> None:
    log = tmp_path / "search.log"
    proc = _paprec(["search", *SMALL, "--home", str(tiny_home.root), "--run-dir", str(tmp_path / "run"), "--json"],
                   log)
    assert proc.returncode == 0, log.read_text()
    assert len(proc.stdout.strip().splitlines()) == 1
    assert set(json.loads(proc.stdout)) == {"run", "results", "surrogate", "stop_reason", "seconds", "warning",
                                            "history_start", "evaluation"}
    err = log.read_text()
    assert "search: round 1/1" in err
    assert "manual vs automatic" not in err and "+---" not in err and "│" not in err


def test_quiet_search_logs_nothing() -> None:
    stream = io.StringIO()
    out = Output(quiet=True)
    out.err = Console(file=stream, quiet=True)
    with search_progress(out, 3, 2) as observe:
        observe(type("S", (), {"accepted_shared": 0, "personal_changes": 0})(),
                {"round": 1, "kind": "shared", "position": "suffix[0]", "slot": 0, "surrogate": 0.5,
                 "accepted": None})
    assert stream.getvalue() == ""


@pytest.mark.parametrize("command", [["plugins", "--json"], ["data", "list", "--json"], ["models", "list", "--json"]])
def test_json_commands_print_no_table_on_stderr(home: Path, command: list[str]) -> None:
    result = CliRunner().invoke(app, command, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    json.loads(result.stdout)
    for box_piece in ("│", "┃", "━", "+---", "| "):
        assert box_piece not in result.stderr


def test_plugins_table_at_80_columns_has_no_ellipsis(home: Path) -> None:
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "…" not in result.stdout
    assert "paprec_tasks" in result.stdout and "sequential" in result.stdout


@pytest.mark.parametrize("width", [80, 60])
def test_train_report_keeps_every_number_and_name_whole(width: int) -> None:
    from paprec_cli.views.train import results_table

    metrics = {"HR@1": 0.0312, "HR@5": 0.1021, "HR@10": 0.1923, "NDCG@5": 0.0654, "NDCG@10": 0.0921}
    result = {"test": {"sequential": metrics}, "baselines": {"popularity": {"sequential": metrics}}}
    table = results_table(result)
    stream = io.StringIO()
    console = Console(file=stream, width=width)
    console.print(table, width=fit(table, width, plain=True), crop=False)
    text = stream.getvalue()
    assert "…" not in text
    for word in ("sequential", "popularity", "NDCG@10", "0.0312", "0.1923", "0.0921"):
        assert word in text, (word, text)
    if width == 80:
        assert max(len(line) for line in text.splitlines()) <= 80


def test_fit_wraps_long_text_at_words_within_the_width() -> None:
    table = Table(title="t")
    table.add_column("label")
    table.add_column("value", justify="right")
    table.add_row("taste word ranks held-out item higher than an unrelated word does", "0.6123")
    stream = io.StringIO()
    console = Console(file=stream, width=30)
    console.print(table, width=fit(table, 30, plain=True), crop=False)
    text = stream.getvalue()
    assert "…" not in text and "0.6123" in text and "held-out" in text
    assert max(len(line) for line in text.splitlines()) <= 30


def test_search_log_eta_and_budget_cap() -> None:
    clock = Clock()
    log = SearchLog(per_round=3, max_rounds=2, time_budget=None, clock=clock)
    state = type("S", (), {"accepted_shared": 1, "personal_changes": 0})()
    clock.now += 10
    line = log.line(state, {"round": 1, "kind": "shared", "position": "suffix[1]", "slot": 1, "surrogate": 0.25,
                            "accepted": {"id": 3, "text": "tent"}})
    # one step took 10 s; 5 of 6 steps are left
    assert line == ("search: round 1/2 shared suffix[1] surrogate 0.2500 accepted 'tent' (kept 1 shared, "
                    "0 personal) elapsed 10.0s ETA 50.0s")
    clock.now += 10  # slots come in a shuffled order: the second step of the round, whatever its slot
    assert log.line(state, {"round": 1, "kind": "shared", "position": "suffix[0]", "slot": 0, "surrogate": 0.25,
                            "accepted": None}).endswith("elapsed 20.0s ETA 40.0s")
    capped = SearchLog(per_round=3, max_rounds=2, time_budget=30.0, clock=clock)
    clock.now += 10
    assert capped.line(state, {"round": 1, "kind": "personal", "position": "personal[0]", "slot": 0,
                               "surrogate": 0.3, "changed": 2}).endswith("changed 2 user(s) (kept 1 shared, "
                                                                          "0 personal) elapsed 10.0s ETA 20.0s")


def test_epoch_log_writes_at_most_once_a_minute() -> None:
    clock, stream = Clock(), io.StringIO()
    log = EpochLog(Console(file=stream, width=200), epoch=2, epochs=4, steps=100, clock=clock)
    clock.now += 30
    log(10, 3.5, 640)
    assert stream.getvalue() == ""
    clock.now += 30
    log(20, 3.25, 1280)
    assert stream.getvalue() == ("epoch 2/4: step 20/100, loss 3.2500, 21 ex/s, elapsed 1m00s, ETA 4m00s\n")
    clock.now += 10
    log(25, 3.2, 1600)
    assert stream.getvalue().count("\n") == 1


def test_heartbeat_logs_while_a_long_operation_runs() -> None:
    stream = io.StringIO()
    with heartbeat(Console(file=stream, width=200), "evaluating test", every=0.05):
        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2 and all(line.startswith("evaluating test: still running, elapsed ") for line in lines)


def test_duration_formats() -> None:
    assert [duration(4.25), duration(75.2), duration(3725), duration(None), duration(float("nan"))] == [
        "4.2s", "1m15s", "1h02m05s", "?", "?"]
