"""The third-party task plugin in examples/paprec-next-category, installed into a temporary folder and loaded
through the `paprec` entry-point group: `paprec train`, `search` and `eval` run its task end to end on a tiny
model with no core change, report the metrics it declares, and read their direction from it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import install_example, invoke, last_json

from paprec_cli.paired import verdict
from paprec_cli.plugins import load_registry

pytestmark = pytest.mark.slow
KEYS = {"CatHR@1", "CatHR@5", "CatHR@10", "CatRank"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The plugin installed and opted in (PAPREC_LOAD_PLUGINS=next_category) for this module only."""
    target = install_example("paprec-next-category", tmp_path_factory.mktemp("next-category"))
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(target))
        patch.setenv("PAPREC_LOAD_PLUGINS", "next_category")
        load_registry.cache_clear()
        yield target
        load_registry.cache_clear()
    load_registry.cache_clear()


@pytest.fixture(scope="module")
def home(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home")
    code, _, err = invoke("data", "import", "synthetic", "--home", str(root), "-q", "-o", "users=40",
                          "-o", "items=120", "-o", "categories=4", "-o", "length=7")  # fmt: skip
    assert code == 0, err
    return root


@pytest.fixture(scope="module")
def flow(home: Path) -> dict[str, Any]:
    """train -> search -> eval of the plugin's task, each through the CLI with --json."""
    common = ["--device", "cpu", "--home", str(home), "--json", "-q"]
    out: dict[str, Any] = {}
    code, stdout, err = invoke("train", "--dataset", "synthetic", "--tasks", "next-category", "--size", "tiny",
                               "--val-users", "20", "--batch-size", "32", "--epochs", "1", "--name", "nc", *common)
    assert code == 0, err
    out["train"] = last_json(stdout)
    code, stdout, err = invoke("search", "--task", "next-category", "--dataset", "synthetic", "--model", "nc",
                               "--val-users", "12", "--grad-examples", "24", "--batch-size", "64", "--max-rounds", "1",
                               "--seed", "1", "--run-dir", str(home / "runs" / "r1"), *common)  # fmt: skip
    assert code == 0, err
    out["search"] = last_json(stdout)
    code, stdout, err = invoke("eval", "r1", "--n-boot", "200", *common)
    assert code == 0, err
    out["eval"] = last_json(stdout)
    out["eval_stderr"] = err
    return out


def test_plugin_task_is_registered_from_its_entry_point(site: Path) -> None:
    registry = load_registry()
    assert registry.tasks["next-category"].plugin == "next_category"
    record = [p for p in registry.plugins if p.name == "next_category"]
    assert record and record[0].status == "ok" and not record[0].builtin


def test_train_search_eval_report_the_plugins_metrics(flow: dict[str, Any]) -> None:
    assert set(flow["train"]["test"]["next-category"]) == KEYS
    assert set(flow["train"]["baselines"]["popularity"]["next-category"]) == KEYS
    assert set(flow["search"]["results"]["shared"]["test"]) == KEYS
    assert flow["eval"]["task"] == "next-category"
    results = flow["eval"]["results"]
    for variant in ("manual", "shared", "personalized"):
        assert set(results[variant]["test"]) == KEYS
        assert 1.0 <= results[variant]["test"]["CatRank"] <= 11.0
        hr = [results[variant]["test"][f"CatHR@{k}"] for k in (1, 5, 10)]
        assert hr == sorted(hr) and all(0.0 <= v <= 1.0 for v in hr)
    paired = flow["eval"]["paired"]["shared_vs_manual"]
    assert set(paired) == KEYS | {"surrogate"} and paired["CatRank"]["n"] == 40


def test_eval_verdicts_read_the_declared_direction(flow: dict[str, Any]) -> None:
    from paprec_cli.plugins import load_registry

    task = load_registry().task("next-category")
    assert task.metric("CatRank").smaller and not task.metric("CatHR@5").smaller
    # a rank that went up (a positive CI) is worse; the same interval on a hit rate is better
    assert verdict({"ci_low": 0.1, "ci_high": 0.4}, task.metric("CatRank").smaller) == "worse"
    assert verdict({"ci_low": 0.1, "ci_high": 0.4}, task.metric("CatHR@5").smaller) == "better"
    for stats in flow["eval"]["paired"]["shared_vs_manual"].values():
        assert stats["n"] == 0 or math.isfinite(stats["mean_diff"])


def test_category_metrics_fixed_case(site: Path) -> None:
    from paprec_next_category import NextCategoryTask

    from paprec_cli.specs import Example, Word

    task = NextCategoryTask()
    task._category = np.array([-1, 0, 0, 1, 1, -1])  # items 1-2: category 0, items 3-4: category 1, 5: none
    examples = [Example(user=u, argument=(Word.user(u),), values={}, target=t) for u, t in ((1, 1), (2, 3), (3, 4))]
    ranked = np.array([[2, 5, 3, 0, 0, 0, 0, 0, 0, 0],   # category 0 first: rank 1
                       [1, 2, 5, 0, 0, 0, 4, 0, 0, 0],   # category 1 at position 7
                       [1, 2, 5, 0, 0, 0, 0, 0, 0, 0]])  # never: 11  # fmt: skip
    per = task.per_example(ranked, examples)
    assert per["CatRank"].tolist() == [1.0, 7.0, 11.0]
    assert per["CatHR@1"].tolist() == [1.0, 0.0, 0.0] and per["CatHR@10"].tolist() == [1.0, 1.0, 0.0]
    assert task.metrics(ranked, examples)["CatRank"] == pytest.approx(19 / 3)
    assert task.surrogate(ranked[:, :5], examples).tolist() == [2.0, 0.0, 0.0]
