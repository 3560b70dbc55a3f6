"""`torchrun --nproc-per-node 2 -m paprec_cli search` takes exactly the decisions of a single process.

Same seed, same tiny model and synthetic data: the prompts, every trajectory line (candidates, surrogate
values, accepted tokens) and the `--json` line must be identical, except wall-clock seconds. Only rank 0
prints, and only rank 0 writes the run folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paprec_cli.paths import Home

pytestmark = pytest.mark.slow
TORCHRUN = Path(sys.executable).parent / "torchrun"
SMALL = ["--dataset", "synthetic", "--val-users", "24", "--grad-examples", "48", "--batch-size", "16",
         "--max-rounds", "2", "--seed", "1", "--device", "cpu", "--json"]


def _run(home: Home, run_dir: Path, extra: list[str], processes: int) -> subprocess.CompletedProcess[str]:
    from helpers import free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAPREC_DIST_TIMEOUT": "60"}
    args = ["search", *SMALL, *extra, "--home", str(home.root), "--run-dir", str(run_dir)]
    if processes == 1:
        cmd = [sys.executable, "-m", "paprec_cli", *args]
    else:
        cmd = [str(TORCHRUN), "--nproc-per-node", str(processes), "--master-port", str(free_port()),
               "-m", "paprec_cli", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _comparable(run_dir: Path, stdout: str) -> tuple[dict, list[dict], dict]:
    doc = json.loads((run_dir / "prompts.json").read_text())
    doc["search"].pop("seconds")
    trajectory = [json.loads(line) for line in (run_dir / "trajectory.jsonl").read_text().splitlines()]
    for line in trajectory:
        line.pop("seconds", None)
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, "one JSON line, from rank 0 only"
    result = json.loads(lines[0])
    result.pop("seconds")
    result.pop("run")
    return doc, trajectory, result


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")
@pytest.mark.parametrize("extra", [["--task", "sequential", "--selection", "loss"]], ids=["sequential-loss"])
def test_two_processes_accept_the_same_tokens(tiny_home: Home, tmp_path: Path, extra: list[str]) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    single = _comparable(one, _run(tiny_home, one, extra, 1).stdout)
    double = _comparable(two, _run(tiny_home, two, extra, 2).stdout)
    assert single[0]["search"]["accepted_shared"] > 0, "the check is only meaningful when tokens are accepted"
    assert double[0] == single[0]
    assert double[1] == single[1]
    assert double[2] == single[2]
    assert {p.name for p in two.iterdir()} == {"manifest.json", "trajectory.jsonl", "state.json", "prompts.json",
                                               ".lock"}  # rank 0's writer lock (issue #16)
