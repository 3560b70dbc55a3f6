"""Smoke check of the benchmark scripts: `bench/surrogate.py --quick --json` on a tiny random model.

Runs the script as a user would (a subprocess), with an isolated paprec home and results folder, and
checks the `--json` contract (one object, the last stdout line) and the keys issue 5 asks for. Timings
are not asserted: benchmarks measure, tests do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


@pytest.mark.slow
def test_surrogate_quick_json(tmp_path: Path) -> None:
    env = dict(os.environ, PAPREC_HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    out = tmp_path / "results"
    cmd = [sys.executable, str(BENCH / "surrogate.py"), "--quick", "--json", "--device", "cpu", "--model", "random",
           "--users", "8", "--candidates", "2", "--steps", "1", "--n-suffix", "1", "--grad-examples", "8",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])

    for key in ("speedup", "same_choice_rate", "not_worse_rate", "ours_ms_per_user_candidate",
                "baseline_ms_per_user_candidate", "machine", "sizes", "settings", "model", "results"):
        assert key in doc, key
    assert doc["speedup"] > 0
    assert doc["ours_mflop_per_user_candidate"] > 0 and doc["flop_ratio"] > 0  # FlopCounterMode saw the model
    assert 0.0 <= doc["same_choice_rate"] <= 1.0
    assert doc["not_worse_rate"] is None  # random weights: the exact reference is not computed (meaningless)
    assert doc["sizes"]["users"] == 8 and doc["sizes"]["candidates"] == 2 and doc["results"]["steps"] == 1
    assert doc["model"]["source"] == "random" and doc["model"]["agreement_meaningful"] is False
    for key in ("hostname", "cpu_model", "cores", "torch", "device", "device_name"):
        assert key in doc["machine"], key

    written = Path(doc["result_file"])
    assert written.parent == out and written.name.startswith("surrogate-cpu-")
    assert json.loads(written.read_text(encoding="utf-8"))["results"] == doc["results"]


def test_bench_fit_exponent() -> None:
    """The growth exponent bench/search.py reports: slope of log(cost) on log(users)."""
    sys.path.insert(0, str(BENCH))
    try:
        from common import fit_exponent
    finally:
        sys.path.remove(str(BENCH))
        sys.modules.pop("common", None)
    assert fit_exponent([100, 1000], [1.0, 10.0]) == pytest.approx(1.0)
    assert fit_exponent([100, 400], [1.0, 16.0]) == pytest.approx(2.0)
    assert fit_exponent([100], [1.0]) is None


def test_bench_search_per_round_helpers(tmp_path: Path) -> None:
    """`bench/search.py --per-round`: points parse, and each round's seconds sum its trajectory steps."""
    sys.path.insert(0, str(BENCH))
    try:
        import search as bench_search
    finally:
        sys.path.remove(str(BENCH))
    try:
        assert bench_search.parse_points("synthetic:600, beauty:5000") == [("synthetic", 600), ("beauty", 5000)]
        for bad in ("synthetic", "beauty:0", ":5", "beauty:x"):
            with pytest.raises(SystemExit, match="--points"):
                bench_search.parse_points(bad)
        lines = [{"step": 1, "round": 1, "seconds": 1.25}, {"step": 2, "round": 1, "seconds": 0.5},
                 {"step": 3, "round": 2, "seconds": 2.0}]
        path = tmp_path / "trajectory.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
        assert bench_search.seconds_per_round(path) == [1.75, 2.0]
        assert bench_search.seconds_per_round(tmp_path / "missing.jsonl") == []
    finally:
        sys.modules.pop("common", None)
        sys.modules.pop("search", None)


def test_train_report_reads_a_model_folder(tmp_path: Path) -> None:
    """bench/train_report.py (issue #18's GPU step): parameters from the weights, throughput per epoch from
    training.json, achieved FLOP/s = 6 * parameters * tokens/s, no MFU without a card's peak, test next to the
    baselines; a folder without training.json is refused with exit 2."""
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5)}, str(tmp_path / "model.safetensors"))  # 17 elements
    record = {"name": "m", "size": "tiny", "device": "cpu", "options": {"recipe": {"batch_size": 64}},
              "history": [{"epoch": 1, "examples_per_s": 10.0, "tokens_per_s": 1e9, "partial": False}],
              "best_epoch": 1, "stopped": "epochs", "train_seconds": 1.0,
              "test": {"sequential": {"HR@10": 0.2}}, "baselines": {"item_knn": {"sequential": {"HR@10": 0.25}}}}
    (tmp_path / "training.json").write_text(json.dumps(record), encoding="utf-8")
    sys.path.insert(0, str(BENCH))
    try:
        import train_report
    finally:
        sys.path.remove(str(BENCH))
    try:
        assert train_report.parameter_count(tmp_path) == 17
        result = train_report.report(tmp_path, torch.device("cpu"))
        assert result["epochs"][0]["achieved_tflops"] == pytest.approx(6 * 17 * 1e9 / 1e12)
        assert result["epochs"][0]["mfu"] is None and result["bf16_peak_tflops"] is None
        assert result["batch_size"] == 64 and result["baselines"]["item_knn"]["sequential"]["HR@10"] == 0.25
        assert train_report.main([str(tmp_path / "missing")]) == 2
    finally:
        sys.modules.pop("train_report", None)
        sys.modules.pop("common", None)
