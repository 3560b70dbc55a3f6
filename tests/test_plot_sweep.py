"""`paprec plot` and `paprec sweep` on a tiny synthetic model: PNGs, tables, resume after interruption."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from paprec_cli.cli import app
from paprec_cli.paths import Home
from paprec_cli.plots import is_png

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SEARCH = ["--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
          "--batch-size", "64", "--max-rounds", "1", "--top-k", "2", "--seed", "1", "--device", "cpu"]
SWEEP = [*SEARCH, "--n-suffix", "1,2", "--n-personal", "1", "--selection", "surrogate,loss", "--n-boot", "200"]


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    from test_search_model import make_home

    return make_home(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def run_dir(tiny_home: Home, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    code, _, err = _invoke("search", *SEARCH, "--protocol", "paper", "--n-suffix", "2", "--home", str(tiny_home.root),
                           "--run-dir", str(run),
                           "-q")
    assert code == 0, err
    return run


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_plot_writes_a_png_of_the_trajectory(run_dir: Path, tiny_home: Home, tmp_path: Path) -> None:
    target = tmp_path / "trajectory.png"
    code, out, err = _invoke("plot", str(run_dir), "-o", str(target), "--home", str(tiny_home.root), "--json")
    assert code == 0, err
    assert is_png(target) and target.stat().st_size > 5000
    doc = json.loads(out)
    assert doc["path"] == str(target) and doc["steps"] == 3  # two shared slots, one personal step
    code, _, err = _invoke("plot", str(run_dir), "--home", str(tiny_home.root))  # default: inside the run
    assert code == 0, err and is_png(run_dir / "trajectory.png")


@pytest.mark.parametrize(("args", "needle"), [
    (["-o", "x.jpg"], "use a .png, .pdf or .svg"),
    (["--home", "."], "not a folder and not a run name"),
])
def test_plot_errors_are_one_line(run_dir: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    source = str(run_dir) if "-o" in args else "no-such-run"
    code, out, err = _invoke("plot", source, *[a if a != "x.jpg" else str(tmp_path / a) for a in args])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.jpg").exists()


def test_plot_without_matplotlib_names_the_extra(run_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    code, _, err = _invoke("plot", str(run_dir), "-o", str(tmp_path / "t.png"))
    assert code == 2 and err.strip() == ("Error: plotting needs matplotlib, which is not installed; install it "
                                         "with pip install 'paprec[plot]'")
    assert not (tmp_path / "t.png").exists()


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "summary.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_sweep_writes_table_csv_and_plot_and_resumes_after_interruption(
        tiny_home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paprec_cli.search import runner

    folder = tmp_path / "sweep"
    real_search = runner.search
    calls = {"n": 0}

    def interrupted(session: Any, run: Any, state: Any, observer: Any = None, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] < 2:
            return real_search(session, run, state, observer, **kw)

        def stop_after_one_step(current: Any, record: dict[str, Any]) -> None:
            if observer is not None:
                observer(current, record)
            if record and "note" not in record:  # a step (a note is a message before the rounds)
                raise KeyboardInterrupt

        return real_search(session, run, state, stop_after_one_step, **kw)

    monkeypatch.setattr(runner, "search", interrupted)
    code, _, err = _invoke("sweep", *SWEEP, "--home", str(tiny_home.root), "--out", str(folder))
    assert code == 130 and "Re-run the same command" in err, err
    assert (folder / "cells" / "suffix1-personal1-surrogate" / "cell.json").is_file()
    second = folder / "cells" / "suffix2-personal1-surrogate"
    assert (second / "state.json").is_file() and not (second / "cell.json").exists()
    assert len((second / "trajectory.jsonl").read_text().splitlines()) == 1
    assert not (folder / "summary.csv").exists()
    monkeypatch.setattr(runner, "search", real_search)

    code, out, err = _invoke("sweep", *SWEEP, "--home", str(tiny_home.root), "--out", str(folder), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [c["status"] for c in doc["cells"]] == ["skipped", "resumed", "ran", "ran"]
    assert [(c["selection"], c["n_suffix"], c["length"]) for c in doc["cells"]] == [
        ("surrogate", 1, 2), ("surrogate", 2, 3), ("loss", 1, 2), ("loss", 2, 3)]
    for cell in doc["cells"]:
        assert cell["ci_low"] <= cell["value"] <= cell["ci_high"] and cell["users"] == 40
        assert cell["metric"] == "NDCG@10" and cell["verdict"] in ("better", "worse", "noise")
    assert len(_rows(folder)) == 4 and is_png(folder / "sweep.png")
    manifest = json.loads((folder / "sweep.json").read_text())
    assert [c["name"] for c in manifest["cells"]] == [c["cell"] for c in doc["cells"]]

    # the resumed cell took the same decisions as an uninterrupted one
    fresh = tmp_path / "fresh"
    code, out2, err = _invoke("sweep", *SWEEP, "--home", str(tiny_home.root), "--out", str(fresh), "--json")
    assert code == 0, err
    assert [c["value"] for c in json.loads(out2)["cells"]] == [c["value"] for c in doc["cells"]]

    # a third run only reads the finished cells, and prints the table at 80 columns without ellipsis
    code, out, err = _invoke("sweep", *SWEEP, "--home", str(tiny_home.root), "--out", str(folder))
    assert code == 0, err
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    assert out.count("skipped") == 4 and "NDCG@10" in out


@pytest.mark.parametrize(("args", "needle"), [
    (["--n-suffix", "1,x"], "--n-suffix 1,x: expected comma-separated integers"),
    (["--n-suffix", "0", "--n-personal", "0"], "has no trigger token"),
    (["--selection", "surrogate,best"], "--selection surrogate,best: expected distinct names"),
    (["--metric", "RMSE"], "--metric RMSE: not a per-user test metric of task 'sequential'"),
])
def test_sweep_option_errors_are_one_line(tiny_home: Home, tmp_path: Path, args: list[str], needle: str) -> None:
    code, _, err = _invoke("sweep", *SEARCH, *args, "--home", str(tiny_home.root), "--out", str(tmp_path / "s"))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s").exists()


def test_sweep_refuses_a_folder_holding_another_sweep(tiny_home: Home, tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({"format": "paprec-sweep/1", "key": "other", "spec": {}}))
    code, _, err = _invoke("sweep", *SEARCH, "--n-suffix", "1", "--home", str(tiny_home.root), "--out", str(folder))
    assert code == 2 and "holds a sweep with other options" in err, err


def test_bench_quick_runs_leave_git_status_clean(tmp_path: Path) -> None:
    def status() -> str:
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout

    env = {k: v for k, v in os.environ.items() if k != "PAPREC_BENCH_OUT"}
    env.update(PAPREC_HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path))
    before = status()
    for script, extra in (("rows.py", []), ("train.py", ["--size", "tiny", "--steps", "1"]),
                          ("surrogate.py", ["--device", "cpu", "--model", "random", "--users", "8", "--candidates",
                                            "2", "--steps", "1", "--n-suffix", "1", "--grad-examples", "8"])):
        proc = subprocess.run([sys.executable, str(REPO / "bench" / script), "--quick", *extra], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, (script, proc.stderr[-2000:])
        assert status() == before, script
    assert list(tmp_path.glob("paprec-bench-results-*/*.json"))  # the results went to the temporary folder


def test_sweep_metric_follows_the_tasks_declared_metrics() -> None:
    """A plugin task's own per-example metrics are sweepable; the default follows what the task declares."""
    from types import SimpleNamespace

    from paprec_tasks.rating import RatingTask
    from paprec_tasks.sequential import SequentialTask

    from paprec_cli.errors import PaprecError
    from paprec_cli.specs import MetricSpec
    from paprec_cli.sweep import default_metric, metric_key

    assert default_metric(SequentialTask()) == "NDCG@10" and metric_key("HR@5", SequentialTask()) == "HR@5"
    assert default_metric(RatingTask()) == "MAE" and metric_key("MAE", RatingTask()) == "abs_error"
    plugin = SimpleNamespace(name="next-category", kind="ranking", primary_metric="CatHR@10",
                             example_metric_specs=(MetricSpec("CatHR@1"), MetricSpec("CatHR@10"),
                                                   MetricSpec("CatRank", smaller=True)))
    assert default_metric(plugin) == "CatHR@10"  # type: ignore[arg-type]
    assert metric_key("CatRank", plugin) == "CatRank"  # type: ignore[arg-type]
    with pytest.raises(PaprecError, match="--metric NDCG@10: not a per-user test metric of task 'next-category'"):
        metric_key("NDCG@10", plugin)  # type: ignore[arg-type]
