"""`paprec eval --users N` and `paprec search --eval-users N`: a seeded sample of the test users, scored
exactly as the full evaluation scores them (same examples, same values), with the baselines and intervals on
the same users, the sample recorded, and bad values refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, last_json
from test_export_helpers import tiny_home

from paprec_cli.baselines import baseline_results
from paprec_cli.data.splits import TaskData
from paprec_cli.data.store import load_dataset
from paprec_cli.distributed import DistContext
from paprec_cli.eval_report import evaluate_source
from paprec_cli.evaluate import sample_users
from paprec_cli.paths import Home
from paprec_cli.plugins import load_registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return tiny_home(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def run(home: Home) -> Path:
    """A finished search whose closing evaluation scored a sample of 15 of the 40 test users."""
    folder = home.runs / "sampled"
    code, stdout, stderr = invoke(
        "search", "--task", "sequential", "--dataset", "synthetic", "--val-users", "12", "--grad-examples", "24",
        "--batch-size", "64", "--max-rounds", "1", "--seed", "1", "--device", "cpu", "--home", str(home.root),
        "--run-dir", str(folder), "--eval-users", "15", "--json")  # fmt: skip
    assert code == 0, stderr
    assert "seeded sample (seed 1) of 15 users" in stderr
    out = last_json(stdout)
    assert out["results"]["manual"]["test"] and out["evaluation"] == {"users": 15, "of": 40, "seed": 1}
    assert json.loads((folder / "manifest.json").read_text())["config"]["eval_users"] == 15
    return folder


def test_sample_users_draws_from_test_users_only_and_all_when_not_smaller(home: Home) -> None:
    data = TaskData(load_dataset(home, "synthetic"), 0)
    task = load_registry().task("sequential")
    test_users = {ex.user for ex in task.examples(data, "test")}
    assert len(test_users) == 40
    assert sample_users(task, data, None, 0) is None
    assert sample_users(task, data, 40, 0) is None and sample_users(task, data, 41, 0) is None
    first, second = sample_users(task, data, 7, 3), sample_users(task, data, 7, 3)
    assert first is not None and second is not None
    assert first == second and len(first.users) == 7 and first.users <= test_users and first.of == 40
    draws = {sample_users(task, data, 7, seed).users for seed in range(5)}  # type: ignore[union-attr]
    assert len(draws) == 5


def test_sampled_eval_scores_the_sampled_users_exactly_as_the_full_eval(home: Home, run: Path) -> None:
    registry = load_registry()
    dist = DistContext(device="cpu")
    full = evaluate_source(run, home, registry, None, 64, dist, lambda _: None, reference_names=("history_word",))
    part = evaluate_source(run, home, registry, None, 64, dist, lambda _: None, reference_names=("history_word",),
                           users=15, seed=4)
    again = evaluate_source(run, home, registry, None, 64, dist, lambda _: None, users=15, seed=4)
    other = evaluate_source(run, home, registry, None, 64, dist, lambda _: None, users=15, seed=5)
    assert part.sample is not None and again.sample is not None and other.sample is not None
    chosen = part.sample.users
    assert len(chosen) == 15 and part.sample.of == 40 and part.sample.report() == {"users": 15, "of": 40, "seed": 4}
    assert again.sample.users == chosen and other.sample.users != chosen  # the seed draws the sample
    for variant in ("manual", "shared", "personalized", "history_word"):
        for split in ("validation", "test"):
            got, whole = part.details[variant][split], full.details[variant][split]
            assert set(got.users.tolist()) <= chosen
            if split == "test":
                assert set(got.users.tolist()) == chosen
            keep = np.isin(whole.users, np.asarray(sorted(chosen)))
            np.testing.assert_array_equal(got.users, whole.users[keep])
            for key, values in got.metrics.items():
                np.testing.assert_allclose(values, whole.metrics[key][keep], rtol=0, atol=1e-12)
    # and the whole-population values are not what the sample reports (the sample is a real restriction)
    assert part.results["manual"]["test"] != full.results["manual"]["test"]


def test_eval_users_json_and_table_name_the_sample(home: Home, run: Path) -> None:
    code, stdout, stderr = invoke("eval", str(run), "--home", str(home.root), "--device", "cpu", "--n-boot", "200",
                                  "--users", "15", "--seed", "1", "--json")  # fmt: skip
    assert code == 0, stderr
    out = last_json(stdout)
    assert out["protocol"]["user_sample"] == {"users": 15, "of": 40, "seed": 1}
    taste = out["taste_agreement"]
    searched_users = {int(u) for u in json.loads((run / "prompts.json").read_text())["personal"]}
    sample = sample_users(load_registry().task("sequential"), TaskData(load_dataset(home, "synthetic"), 0), 15, 1)
    assert sample is not None and taste["users"] <= len(searched_users & sample.users)  # the sample's users only
    assert out["protocol"]["test_examples"] == 15
    assert {stats["n"] for per in out["paired"].values() for stats in per.values()} == {15}
    assert "seeded sample (seed 1) of 15 of the 40 users" in stderr
    # the search's closing evaluation drew the same sample from its own seed (1): the same numbers
    searched = json.loads((run / "prompts.json").read_text())
    assert searched["search"]["evaluation"] == {"users": 15, "of": 40, "seed": 1}
    for variant in ("manual", "shared", "personalized"):
        for split, metrics in searched["results"][variant].items():
            for key, value in metrics.items():
                assert out["results"][variant][split][key] == pytest.approx(value, abs=1e-12), (variant, key)
    # the baselines are on the same 15 users
    data = TaskData(load_dataset(home, "synthetic"), 0)
    task = load_registry().task("sequential")
    sample = sample_users(task, data, 15, 1)
    assert sample is not None
    expected = baseline_results(data, ["sequential"], "test", tasks={"sequential": task}, users=sample.users)
    assert out["baselines"]["item_knn"]["test"] == pytest.approx(expected["item_knn"]["sequential"])
    code, stdout, stderr = invoke("eval", str(run), "--home", str(home.root), "--device", "cpu", "--n-boot", "50",
                                  "--users", "15", "--seed", "1")  # fmt: skip
    assert code == 0, stderr
    assert "a seeded sample of 15 of 40 test users" in " ".join(stdout.split())


def test_eval_users_at_least_the_population_is_the_full_eval(home: Home, run: Path) -> None:
    outs = []
    for extra in ([], ["--users", "40"], ["--users", "500"]):
        code, stdout, stderr = invoke("eval", str(run), "--home", str(home.root), "--device", "cpu", "--n-boot", "50",
                                      "--no-baselines", "--references", "none", "--json", *extra)  # fmt: skip
        assert code == 0, stderr
        outs.append(last_json(stdout))
    assert all(out["protocol"]["user_sample"] is None for out in outs)
    code, _, stderr = invoke("eval", str(run), "--home", str(home.root), "--device", "cpu", "--n-boot", "10",
                             "--no-baselines", "--references", "none", "--users", "500")  # fmt: skip
    assert code == 0 and "--users 500: not fewer than the users with a test example, so every user is scored" in stderr
    assert outs[0]["results"] == outs[1]["results"] == outs[2]["results"]


@pytest.mark.parametrize("command", ["eval", "search"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_bad_user_counts_are_one_line_exit_2(home: Home, run: Path, command: str, value: str) -> None:
    if command == "eval":
        args = ["eval", str(run), "--users", value]
        needle = f"--users {value}: expected an integer >= 1"
    else:
        args = ["search", "--task", "sequential", "--dataset", "synthetic", "--eval-users", value]
        needle = "--eval-users: invalid value; expected an integer >= 1"
    code, stdout, stderr = invoke(*args, "--home", str(home.root), "--device", "cpu")
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in stderr, stderr
    assert not any(p.name not in ("sampled", "resumed") for p in home.runs.iterdir())  # no run folder was created


def test_a_finished_run_reports_its_recorded_results_and_refuses_a_new_sample(
        home: Home, run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paprec_cli.search import runner

    before = (run / "prompts.json").read_bytes()
    code, _, stderr = invoke("search", "--resume", str(run), "--eval-users", "10", "--home", str(home.root),
                             "--device", "cpu")  # fmt: skip
    assert code == 2 and "--users 10" in stderr and "Traceback" not in stderr, stderr
    assert (run / "prompts.json").read_bytes() == before

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run's resume must not score again")

    monkeypatch.setattr(runner, "finalize", never)
    for extra in ([], ["--eval-users", "15"]):  # the recorded value is no change
        code, stdout, stderr = invoke("search", "--resume", str(run), "--home", str(home.root), "--device", "cpu",
                                      "--json", *extra)  # fmt: skip
        assert code == 0, stderr
        out = last_json(stdout)
        assert out["results"] == json.loads(before)["results"] and out["evaluation"] == {"users": 15, "of": 40,
                                                                                           "seed": 1}
        assert "has finished; its recorded results follow" in stderr
    assert (run / "prompts.json").read_bytes() == before


def test_eval_users_is_recorded_and_may_change_on_resume(home: Home, tmp_path: Path) -> None:
    folder = home.runs / "resumed"
    base = ["--home", str(home.root), "--device", "cpu", "--json"]
    code, _, stderr = invoke("search", "--task", "sequential", "--dataset", "synthetic", "--val-users", "12",
                             "--grad-examples", "24", "--batch-size", "64", "--max-rounds", "1", "--seed", "2",
                             "--run-dir", str(folder), "--eval-users", "12", *base)  # fmt: skip
    assert code == 0, stderr
    first = json.loads((folder / "prompts.json").read_text())
    assert first["search"]["evaluation"] == {"users": 12, "of": 40, "seed": 2}
    # a run interrupted in its closing evaluation: the state is done, prompts.json not yet written
    (folder / "prompts.json").unlink()
    code, stdout, stderr = invoke("search", "--resume", str(folder), *base)
    assert code == 0, stderr
    again = json.loads((folder / "prompts.json").read_text())
    assert again["search"]["evaluation"] == first["search"]["evaluation"]  # the recorded sample, not all users
    assert again["results"] == first["results"] and again["personal"] == first["personal"]
    (folder / "prompts.json").unlink()
    code, stdout, stderr = invoke("search", "--resume", str(folder), "--eval-users", "20", *base)
    assert code == 0, stderr
    assert "--eval-users 20: applied on resume (the run started with 12)" in stderr
    changed = json.loads((folder / "prompts.json").read_text())
    assert changed["search"]["evaluation"] == {"users": 20, "of": 40, "seed": 2}
    assert changed["shared"] == first["shared"] and changed["personal"] == first["personal"]  # prompts unchanged
    assert json.loads((folder / "manifest.json").read_text())["config"]["eval_users"] == 20
