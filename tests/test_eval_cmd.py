"""`paprec eval` on a tiny synthetic model: a real search run end to end, exported prompts in every format,
the JSON shape, paired bootstrap differences, and each import refusal as exit 2 with one line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import invoke
from test_export_helpers import tiny_document, tiny_home, write_json
from typer.testing import CliRunner

from paprec_cli import export
from paprec_cli.cli import app
from paprec_cli.evaluate import PerExample
from paprec_cli.paired import paired_differences, verdict
from paprec_cli.paths import Home

pytestmark = pytest.mark.slow
RANKING = {"HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return tiny_home(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def run(home: Home) -> Path:
    """A real (short) search run, so `eval RUN` sees what `paprec search` writes."""
    folder = home.runs / "r1"
    args = ["search", "--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
            "--batch-size", "64", "--max-rounds", "1", "--seed", "1", "--device", "cpu",
            "--home", str(home.root), "--run-dir", str(folder), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return folder


def check_shape(out: dict[str, Any]) -> None:
    assert set(out) >= {"run", "results", "paired", "protocol", "baselines"}
    for variant in ("manual", "shared", "personalized"):
        assert set(out["results"][variant]) == {"validation", "test"}
        assert set(out["results"][variant]["test"]) == RANKING
    for name in ("shared_vs_manual", "personalized_vs_manual"):
        assert set(out["paired"][name]) == RANKING | {"surrogate"}
        for stats in out["paired"][name].values():
            assert set(stats) == {"mean_diff", "ci_low", "ci_high", "n"} and stats["n"] == 40
            assert stats["ci_low"] <= stats["mean_diff"] <= stats["ci_high"]
    proto = out["protocol"]
    assert proto["indexing"] == "random" and proto["evaluated"] == "ranking over all items"
    assert proto["tie_break"] and "leave-one-out" in proto["split"]
    assert set(out["baselines"]) == {"popularity", "item_knn"}
    assert set(out["baselines"]["popularity"]["test"]) == RANKING


def test_eval_run_matches_search_and_exports_evaluate_alike(home: Home, run: Path, tmp_path: Path) -> None:
    code, stdout, stderr = invoke("eval", "r1", "--home", str(home.root), "--device", "cpu", "--n-boot", "200",
                                  "--json")  # fmt: skip
    assert code == 0, stderr
    out = json.loads(stdout.strip().splitlines()[-1])
    check_shape(out)
    assert Path(out["run"]) == run
    searched = json.loads((run / "prompts.json").read_text())
    for variant, parts in searched["results"].items():
        for part, metrics in parts.items():
            for key, value in metrics.items():
                assert out["results"][variant][part][key] == pytest.approx(value, abs=1e-9), (variant, part, key)
    assert "CI" not in stderr and "manual vs automatic" not in stderr  # --json: no human tables on stderr
    for fmt in ("csv",):  # every format round-trips exactly (test_export); one evaluation proves the wiring
        path = tmp_path / f"prompts.{fmt}"
        code, _, stderr = invoke("export-prompts", str(run), "-o", str(path), "--home", str(home.root))
        assert code == 0, stderr
        code, stdout, stderr = invoke("eval", "--prompts", str(path), "--home", str(home.root), "--device", "cpu",
                                      "--n-boot", "200", "--no-baselines", "--json")  # fmt: skip
        assert code == 0, stderr
        again = json.loads(stdout.strip().splitlines()[-1])
        assert again["run"] is None and again["results"] == out["results"] and again["paired"] == out["paired"]
        assert again["baselines"] == {}


def test_eval_prompts_file_human_output(home: Home, tmp_path: Path) -> None:
    path = write_json(tmp_path / "p.json", tiny_document(home))
    code, stdout, stderr = invoke("eval", "--prompts", str(path), "--home", str(home.root), "--device", "cpu",
                                  "--n-boot", "100", "--no-baselines")  # fmt: skip
    assert code == 0, stderr
    assert "manual vs automatic prompts" in stdout and "paired per user" in stdout
    assert "protocol:" in stdout and "indexing=random" in stdout
    assert "vs manual" in stdout


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(format="paprec-prompts/9"), "format tag"),
        (lambda d: d.update(dataset_fingerprint="0" * 16), "dataset in use"),
        (lambda d: d.update(model_fingerprint="0" * 16), "model in use"),
        (lambda d: d["shared"]["suffix"].__setitem__(0, {"id": 5, "text": "zzzunknownword"}), "not in its vocabulary"),
        (lambda d: d["personal"]["1"][0].update(id=d["personal"]["1"][0]["id"] + 1), "has id"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_import_refusals_exit_2_one_line(home: Home, tmp_path: Path, mutate: Any, needle: str, fmt: str) -> None:
    doc = tiny_document(home)
    mutate(doc)
    path = tmp_path / f"bad.{fmt}"
    if fmt == "json":
        write_json(path, doc)
    else:
        text = export._csv_text(doc)  # written directly: export_prompts itself refuses a bad format tag
        path.write_text(text, encoding="utf-8")
    code, _, stderr = invoke("eval", "--prompts", str(path), "--home", str(home.root), "--device", "cpu")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(path) in lines[0], stderr


def test_eval_needs_exactly_one_source(home: Home, run: Path) -> None:
    code, _, stderr = invoke("eval", "--home", str(home.root))
    assert code == 2 and "--prompts" in stderr
    code, _, stderr = invoke("eval", "r1", "--prompts", str(run / "prompts.json"), "--home", str(home.root))
    assert code == 2 and "not both" in stderr


def test_paired_differences_and_verdicts() -> None:
    users = np.arange(1, 51)
    rng = np.random.default_rng(0)
    manual = PerExample(users, rng.random(50), {"HR@5": rng.integers(0, 2, 50).astype(float)})
    better = PerExample(users, manual.surrogate + 0.5, {"HR@5": manual.metrics["HR@5"]})
    details = {"manual": {"test": manual}, "shared": {"test": better}, "personalized": {"test": manual}}
    paired = paired_differences(details, "test", n_boot=200, seed=0)
    assert paired["shared_vs_manual"]["surrogate"]["mean_diff"] == pytest.approx(0.5)
    assert verdict(paired["shared_vs_manual"]["surrogate"]) == "better"
    assert verdict(paired["shared_vs_manual"]["HR@5"]) == "noise"
    assert verdict({"ci_low": -0.3, "ci_high": -0.1}, smaller=True) == "better"
    assert verdict({"ci_low": -0.3, "ci_high": -0.1}) == "worse"
    assert verdict({"ci_low": math.nan, "ci_high": 1.0}) == "no data"
    assert verdict({"ci_low": 0.27, "ci_high": 0.27, "n": 1}) == "too few users"  # one user: a zero-width interval
    assert verdict({"ci_low": 0.1, "ci_high": 0.3, "n": 10}) == "better"
    from paprec_cli.paired import summary

    line = summary({"shared_vs_manual": {"surrogate": {"mean_diff": 0.27, "ci_low": 0.27, "ci_high": 0.27, "n": 1}}})
    assert line == ["shared vs manual: only 1 paired user(s) (interval +0.2700 to +0.2700): too few for a bootstrap "
                    "interval (at least 10); no verdict"]


def test_summary_says_no_data_without_claiming_the_interval_excludes_0() -> None:
    from paprec_cli.paired import summary

    lines = summary({"personalized_vs_manual": {"surrogate": {"mean_diff": float("nan"), "ci_low": float("nan"),
                                                              "ci_high": float("nan"), "n": 0}}})
    assert len(lines) == 1 and "no per-user difference" in lines[0] and "excludes 0" not in lines[0]
