"""`torchrun --nproc-per-node 2 -m paprec_cli train`: DDP on gloo gives the single-process loss curve.

The global batch stays `--batch-size` (each rank reads its share), so the loss per epoch matches one process
within float tolerance (dropout off; different padding changes the last bits, which a high learning rate
amplifies over many steps, so the runs are kept to a few steps). Only rank 0 prints and writes, and a run
started with 2 processes resumes with 1 (the state holds the global step and batch size only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (Path(sys.executable).parent / "torchrun").exists(), reason="no torchrun")]
TORCHRUN = Path(sys.executable).parent / "torchrun"
ARGS = ["train", "--dataset", "synthetic", "--tasks", "sequential", "--size", "tiny", "--dropout", "0",
        "--batch-size", "128", "--val-users", "10", "--device", "cpu", "--json"]


def _train(home: Path, processes: int, *extra: str) -> dict:
    from helpers import free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAPREC_DIST_TIMEOUT": "60"}
    args = [*ARGS, "--home", str(home), *extra]
    launcher = [str(TORCHRUN), "--nproc-per-node", str(processes), "--master-port", str(free_port())]
    cmd = [*([sys.executable] if processes == 1 else launcher), "-m", "paprec_cli", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, "rank 0 prints the one JSON line, the others nothing"
    return json.loads(lines[0])


def _losses(home: Path, name: str) -> list[float]:
    record = json.loads((home / "models" / name / "training.json").read_text())
    return [h["loss"] for h in record["history"]]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "paprec_cli", "data", "import", "synthetic", "--home", str(root), "-q",
                    "-o", "users=40", "-o", "items=30", "-o", "categories=4", "-o", "length=8"],
                   env=env, check=True, capture_output=True)
    _train(root, 1, "--epochs", "2", "--name", "single")
    return root


def test_two_processes_follow_the_single_process_loss_curve(home: Path) -> None:
    result = _train(home, 2, "--epochs", "2", "--name", "double")
    assert result["epochs"] == 2
    assert _losses(home, "double") == pytest.approx(_losses(home, "single"), rel=1e-3)


def test_a_two_process_run_resumes_with_one_process(home: Path) -> None:
    """Raising --epochs on resume changes the learning-rate plan, so compare with a 1-process run resumed alike."""
    for name, processes in (("reference", 1), ("switch", 2)):
        _train(home, processes, "--epochs", "1", "--name", name)
        _train(home, 1, "--resume", name, "--epochs", "2")
    assert _losses(home, "switch") == pytest.approx(_losses(home, "reference"), rel=1e-3)
