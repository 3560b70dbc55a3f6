"""`paprec search` end to end on a tiny synthetic model: run directory, JSON, errors, SIGKILL + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import invoke as _invoke

from paprec_cli.paths import Home

pytestmark = pytest.mark.slow
SMALL = ["--task", "sequential", "--dataset", "synthetic", "--val-users", "24", "--grad-examples", "48",
         "--batch-size", "64", "--max-rounds", "3", "--seed", "1", "--device", "cpu"]


def _comparable(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["search"].pop("seconds")
    return doc


def test_search_end_to_end_json_and_run_directory(tiny_home: Home, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out, err = _invoke("search", *SMALL, "--protocol", "history", "--home", str(tiny_home.root),
                             "--run-dir", str(run), "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) == {"run", "results", "surrogate", "stop_reason", "seconds", "warning", "history_start",
                           "evaluation"}
    assert result["evaluation"] is None  # every user scored
    assert Path(result["run"]) == run
    for variant in ("manual", "shared", "personalized"):
        assert set(result["results"][variant]) == {"validation", "test"}
        assert set(result["results"][variant]["test"]) == {"HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10"}
    assert set(result["surrogate"]) == {"initial", "shared", "personalized", "manual", "paper_manual", "paper_shared",
                                        "paper_personalized"}  # a non-paper protocol also reports the paper's
    assert result["surrogate"]["personalized"] >= result["surrogate"]["initial"]
    assert {p.name for p in run.iterdir()} == {"manifest.json", "trajectory.jsonl", "state.json", "prompts.json",
                                               ".lock"}  # the writer's lock (issue #16)

    doc = json.loads((run / "prompts.json").read_text())
    assert doc["format"] == "paprec-prompts/1" and doc["results"] == result["results"]
    assert doc["shared"]["prefix"][0]["text"] == "Here"  # the history protocol starts from the manual template
    assert len(doc["shared"]["personal_default"]) == 1
    assert set(doc["users"]) == set(doc["personal"])
    assert doc["search"]["stop_reason"] in ("converged", "max-rounds")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["val_users"] == 24 and manifest["protocol"]["dataset_fingerprint"]
    assert (manifest["config"]["protocol"], manifest["config"]["selection"], manifest["config"]["search_examples"],
            manifest["config"]["holdout"]) == ("history", "loss", 1, 0.5)
    assert (manifest["config"]["init"], manifest["config"]["max_rounds"], manifest["config"]["personal_init"],
            manifest["config"]["history_candidates"]) == ("manual", 3, "history", 5)  # --max-rounds 3 wins
    assert manifest["sizes"]["validation_examples"] == 48  # 24 validation + each user's last training example
    assert manifest["initial"]["personal"]  # users start at their history word
    assert {"torch", "transformers", "python"} <= set(manifest["libraries"])
    assert manifest["config"]["batch_size"] == 64 and manifest["batch_sizes"] == {"surrogate": 64, "gradient": 64}
    state = json.loads((run / "state.json").read_text())
    lines = (run / "trajectory.jsonl").read_text().splitlines()
    assert state["phase"] == "done" and len(lines) == state["steps"]
    assert {json.loads(line)["kind"] for line in lines} <= {"shared", "personal"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--task", "nope", "--dataset", "synthetic"], "unknown task 'nope'"),
        (["--task", "sequential", "--dataset", "synthetic", "--n-suffix", "-1"], "--n-suffix"),
        (["--task", "sequential", "--dataset", "synthetic", "--selection", "best"], "--selection"),
        (["--task", "sequential"], "--task and --dataset are required"),
        (["--task", "sequential", "--dataset", "synthetic", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_options_exit_2_with_one_line(tiny_home: Home, args: list[str], needle: str) -> None:
    code, out, err = _invoke("search", *args, "--home", str(tiny_home.root))
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1


def test_missing_model_says_how_to_train(tmp_path: Path) -> None:
    code, _, err = _invoke("search", "--task", "sequential", "--dataset", "synthetic", "--home", str(tmp_path))
    assert code == 2 and "paprec train --dataset synthetic" in err and len(err.strip().splitlines()) == 1


def test_unknown_allow_list_word_names_file_and_line(tiny_home: Home, tmp_path: Path) -> None:
    allow = tmp_path / "allow.txt"
    allow.write_text("tent\n# a comment\nzzzqqqx\n")
    code, _, err = _invoke("search", *SMALL, "--home", str(tiny_home.root), "--allow-list", str(allow),
                           "--run-dir", str(tmp_path / "run"))
    assert code == 2 and f"{allow}:3" in err and "zzzqqqx" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("protocol", ["paper", "transfer", "history"])
def test_resume_after_sigkill_gives_the_same_prompts(tiny_home: Home, tmp_path: Path, protocol: str) -> None:
    common = [*SMALL, "--home", str(tiny_home.root), "--protocol", protocol]
    reference = tmp_path / "reference"
    code, _, err = _invoke("search", *common, "--run-dir", str(reference))
    assert code == 0, err
    recorded = json.loads((reference / "manifest.json").read_text())["config"]
    assert recorded["protocol"] == protocol
    surrogate = json.loads((reference / "prompts.json").read_text())["surrogate"]
    # a protocol that accepts on another signal also reports the paper's surrogate on validation alone
    assert ("paper_personalized" in surrogate) == (protocol != "paper")
    if protocol == "history":
        assert (recorded["init"], recorded["personal_init"], recorded["history_candidates"]) == ("manual", "history", 5)
    if protocol != "paper":
        assert recorded["selection"] == "loss" and recorded["search_examples"] == 1
        assert 0.0 <= surrogate["paper_personalized"] <= 2.0 and surrogate["personalized"] <= 0.0

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "paprec_cli", "search", *common, "--run-dir", str(killed), "-q"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_path = killed / "state.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if state_path.exists() and json.loads(state_path.read_text() or "{}").get("steps", 0) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the search ended before it could be killed: {proc.stderr.read()!r}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    saved = json.loads(state_path.read_text())
    assert saved["phase"] != "done" and not (killed / "prompts.json").exists()

    code, _, err = _invoke("search", "--resume", str(killed), "--home", str(tiny_home.root), "--device", "cpu")
    assert code == 0, err
    got = json.loads((killed / "prompts.json").read_text())
    want = json.loads((reference / "prompts.json").read_text())
    assert _comparable(got) == _comparable(want)
    steps = [json.loads(line) for line in (killed / "trajectory.jsonl").read_text().splitlines()]
    ref_steps = [json.loads(line) for line in (reference / "trajectory.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, len(ref_steps) + 1))
    strip = [{k: v for k, v in s.items() if k != "seconds"} for s in steps]
    assert strip == [{k: v for k, v in s.items() if k != "seconds"} for s in ref_steps]


def test_batch_size_defaults_per_device() -> None:
    """Without --batch-size CUDA takes 2048 surrogate rows and 512 gradient rows a pass; the CPU 256."""
    from paprec_cli.search.config import batch_sizes

    assert batch_sizes(None, "cpu") == (256, 256)
    assert batch_sizes(None, "cuda:1") == (2048, 512)
    assert batch_sizes(32, "cuda") == (32, 32)

