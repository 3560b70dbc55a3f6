"""`torchrun --nproc-per-node 2 -m paprec_cli eval|recommend` print exactly what one process prints.

Each rank predicts a share of whole batches (small `--batch-size`, so both ranks work) and rank 0 alone
prints or writes, in the single-process order: the `eval --json` line and the recommend JSON lines must be
byte-identical to a one-process run on the same tiny model and synthetic data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_export_helpers import tiny_document, tiny_home, write_json

from paprec_cli.distributed import DistContext
from paprec_cli.paths import Home

TORCHRUN = Path(sys.executable).parent / "torchrun"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return tiny_home(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def prompts(home: Home, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Users 1 and 2 have personal tokens: both prompt kinds appear in every batch mix."""
    return write_json(tmp_path_factory.mktemp("prompts") / "prompts.json", tiny_document(home))


def paprec(home: Home, args: list[str], processes: int) -> subprocess.CompletedProcess[str]:
    """`python -m paprec_cli ARGS` alone, or under torchrun with `processes` gloo ranks on the CPU."""
    from helpers import free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAPREC_DIST_TIMEOUT": "60"}
    full = [*args, "--home", str(home.root), "--device", "cpu"]
    launcher = [str(TORCHRUN), "--nproc-per-node", str(processes), "--master-port", str(free_port())]
    cmd = [*([sys.executable] if processes == 1 else launcher), "-m", "paprec_cli", *full]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_eval_two_processes_print_the_single_process_json(home: Home, prompts: Path) -> None:
    args = ["eval", "--prompts", str(prompts), "--n-boot", "200", "--batch-size", "8", "--json"]  # 5 batches of 8
    single = paprec(home, args, 1).stdout
    double = paprec(home, args, 2).stdout
    assert len(double.strip().splitlines()) == 1, "one JSON line, from rank 0 only"
    assert double == single
    out = json.loads(double)
    assert out["paired"]["personalized_vs_manual"]["surrogate"]["n"] == 40
    assert set(out["baselines"]) == {"popularity", "item_knn"}


def test_recommend_two_processes_write_the_single_process_lines(home: Home, prompts: Path, tmp_path: Path) -> None:
    from paprec_cli.data.store import load_dataset

    raw_1 = load_dataset(home, "synthetic").user_raw_id(1)
    users = ["user_9", "3", raw_1, "user_40", "2", "user_9", "17", "user_5", "30", "1", "user_11", "8", "22"]
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n".join(users) + "\n", encoding="utf-8")
    args = ["recommend", "--prompts", str(prompts), "--users-file", str(users_file), "-k", "4", "--batch-size", "4"]
    single = paprec(home, args, 1).stdout
    output = tmp_path / "out.jsonl"
    double = paprec(home, [*args, "--output", str(output), "--json"], 2).stdout
    assert output.read_text(encoding="utf-8") == single
    answers = [json.loads(line) for line in single.splitlines()]
    assert [a["user_idx"] for a in answers] == [9, 3, 1, 40, 2, 9, 17, 5, 30, 1, 11, 8, 22]
    summary = json.loads(double)  # one line: the other rank printed nothing
    assert summary == {"output": str(output), "users": 13, "prompts": {"shared": 10, "personalized": 3}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "users.txt"], "no temporary file left"


def test_gather_shards_of_one_process_is_its_own_list() -> None:
    assert DistContext.single().gather_shards(range(3)) == [0, 1, 2]
