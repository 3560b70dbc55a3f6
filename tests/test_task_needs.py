"""Tasks declare what a dataset must offer (issue 15): a 60-item catalogue cannot give direct 99 negatives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paprec_cli.cli import app
from paprec_cli.data import needs
from paprec_cli.data.splits import TaskData
from paprec_cli.data.store import Dataset, load_dataset
from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home
from paprec_cli.plugins import load_registry
from paprec_cli.training.setup import parse_train_options, resolve_tasks


@pytest.fixture
def small(home: Path, tmp_path: Path, runner: CliRunner) -> Dataset:
    path = tmp_path / "small.csv"
    rows = [f"u{u},i{(u * 3 + k) % 60},{100 + k}" for u in range(20) for k in range(8)]
    path.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["data", "import", "csv", "--from", str(path), "--name", "small", "-q"])
    assert result.exit_code == 0, result.output
    return load_dataset(Home.resolve(None), "small")


def test_needs_are_declared_by_the_tasks() -> None:
    registry = load_registry()
    assert registry.task("direct", "--tasks").needs.negatives
    assert registry.task("rating", "--tasks").needs.ratings
    assert not registry.task("sequential", "--tasks").needs.negatives


def test_default_task_set_leaves_out_what_the_data_cannot_support(small: Dataset) -> None:
    said: list[str] = []
    tasks = resolve_tasks(None, small, load_registry(), say=said.append)
    assert [t.name for t in tasks] == ["sequential"]
    assert len(said) == 2 and all("\n" not in line for line in said)
    assert said[0].startswith("Task direct left out: dataset 'small' has 60 items and user")
    assert "leaving 52 of the 99 never-seen negatives" in said[0] and "-o negatives=N with N <= 52" in said[0]
    assert said[1] == "Task rating left out: dataset 'small' has no ratings"


def test_explicit_direct_is_refused_naming_the_task_and_the_fix(small: Dataset) -> None:
    with pytest.raises(PaprecError, match=r"--tasks direct: dataset 'small' has 60 items .* N <= 52"):
        resolve_tasks(["sequential", "direct"], small, load_registry())
    with pytest.raises(PaprecError, match=r"--tasks rating: dataset 'small' has no ratings; drop rating"):
        resolve_tasks(["rating"], small, load_registry())


def test_negatives_option_makes_direct_possible_and_is_in_the_protocol(small: Dataset) -> None:
    tasks = resolve_tasks(["direct"], small, load_registry(), negatives=52)
    assert [t.name for t in tasks] == ["direct"]
    with pytest.raises(PaprecError, match="N <= 52"):
        resolve_tasks(["direct"], small, load_registry(), negatives=53)
    data = TaskData(small, 0, 52)
    user = int(data.loo.users("test")[0])
    assert len(set(data.candidates(user, "test").tolist())) == 53
    assert data.protocol()["negatives"] == 52 and "52 seeded negatives" in data.protocol()["direct_candidates"]
    assert needs.max_negatives(small) == 52


def test_train_options_parse() -> None:
    assert parse_train_options(["negatives=49"]) == {"negatives": 49}
    for bad in (["negatives=0"], ["negatives=x"], ["lr=1"], ["negatives"]):
        with pytest.raises(PaprecError, match="-o "):
            parse_train_options(bad)


def test_train_refuses_direct_before_any_work(small: Dataset, runner: CliRunner, home: Path) -> None:
    result = runner.invoke(app, ["train", "--dataset", "small", "--tasks", "direct", "--device", "cpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "--tasks direct" in errors[0] and "-o negatives=N" in errors[0]
    assert not (Home.resolve(None).models / "small-tiny-atomic").exists()


@pytest.mark.slow
def test_train_direct_with_fewer_negatives_records_them(small: Dataset, runner: CliRunner) -> None:
    result = runner.invoke(app, ["train", "--dataset", "small", "--tasks", "direct", "-o", "negatives=40", "--epochs",
                                 "1", "--size", "tiny", "--device", "cpu", "--val-users", "10", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    record = json.loads((Path(doc["model"]) / "training.json").read_text())
    assert record["protocol"]["negatives"] == 40
    assert json.loads((Path(doc["model"]) / "config.json").read_text())["negatives"] == 40
