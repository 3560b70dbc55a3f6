"""The embedded synthetic dataset: deterministic, learnable structure, hidden taste stored beside the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from paprec_datasets import synthetic
from typer.testing import CliRunner

from paprec_cli.cli import app
from paprec_cli.data.store import load_dataset
from paprec_cli.paths import Home
from paprec_cli.specs import ImportOptions


def _raw(seed: int = 0, **extra: str):  # type: ignore[no-untyped-def]
    return synthetic.load(None, ImportOptions(seed=seed, extra=dict(extra)))


def test_same_seed_same_data_and_other_seed_differs() -> None:
    a, b, c = _raw(3), _raw(3), _raw(4)
    assert a.interactions.equals(b.interactions)
    assert a.extras["truth"].equals(b.extras["truth"])
    assert not a.interactions.equals(c.interactions)


def test_sizes_are_configurable() -> None:
    raw = _raw(0, users="50", items="60", categories="5", length="8")
    assert raw.interactions["user"].n_unique() == 50
    assert raw.interactions["item"].n_unique() <= 60
    cats = raw.items["attributes"].list.first().unique()
    assert cats.len() == 5
    assert raw.interactions.group_by("user").len()["len"].min() >= 5


def test_words_matter_taste_drives_choices_and_ratings() -> None:
    raw = _raw(0)
    items = raw.items.select("item", pl.col("attributes").list.first().alias("category"))
    joined = (
        raw.interactions.join(items, on="item")
        .join(raw.extras["truth"], on="user")
        .with_columns(pl.col("taste").list.contains(pl.col("category")).alias("match"))
    )
    share = joined["match"].mean()
    assert 0.55 <= share <= 0.8, share  # knowing the taste word clearly helps
    means = joined.group_by("match").agg(pl.col("rating").mean()).sort("match")["rating"].to_list()
    assert means[1] - means[0] > 1.0  # ratings follow taste
    # every attribute is a real word; each item has a category word and a distinct brand word
    for attrs in raw.items["attributes"].to_list():
        assert len(attrs) == 2 and attrs[0] in synthetic.CATEGORY_WORDS and attrs[1] in synthetic.BRAND_WORDS
    for taste in raw.extras["truth"]["taste"].to_list():
        assert 1 <= len(taste) <= 2 and all(t in synthetic.CATEGORY_WORDS for t in taste)


def test_popularity_skew_and_sequential_transitions() -> None:
    raw = _raw(0)
    counts = raw.interactions.group_by("item").len()["len"].sort(descending=True).to_numpy()
    top = counts[: len(counts) // 10].sum() / counts.sum()
    assert top > 0.25  # top 10% of items get well over 10% of interactions
    table = raw.interactions.sort("user", "timestamp")
    pairs = table.with_columns(pl.col("item").shift(-1).over("user").alias("next")).drop_nulls("next")
    by_pair = pairs.group_by("item", "next").len()
    # a transition model beats chance: the most frequent successor of an item repeats often
    top_next = by_pair.sort("len", descending=True).group_by("item").first()["len"].sum()
    assert top_next / pairs.height > 0.15


def test_timestamps_increase_per_user() -> None:
    table = _raw(0).interactions
    diffs = table.with_columns(pl.col("timestamp").diff().over("user").alias("d"))["d"].drop_nulls()
    assert (diffs > 0).all()


def test_cli_import_info_and_truth_extra(home: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["data", "import", "synthetic", "--seed", "1", "--option", "users=80",
                                 "-o", "items=90", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["users"] == 80 and summary["indexing"] == "random"
    info = runner.invoke(app, ["data", "info", "synthetic", "--json"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.stdout.strip().splitlines()[-1])
    assert data["users"] == 80 and data["items"] <= 90 and isinstance(data["interactions"], int)
    assert set(data["rating_histogram"]) <= {"1", "2", "3", "4", "5"}
    assert sum(data["rating_histogram"].values()) == data["interactions"]
    assert data["tie_break"] == "source" and data["options"] == {"users": "80", "items": "90"}
    dataset = load_dataset(Home(home), "synthetic")
    truth = dataset.extra("truth")
    assert truth.columns == ["user", "taste"] and truth.height == 80
    # the truth is not in any table a model sees
    for table in (dataset.interactions, dataset.items, dataset.users):
        assert "taste" not in table.columns
    assert np.all(np.array([len(s) for s in dataset.sequences[1:]]) >= 5)


def test_synthetic_rejects_from_and_bad_options(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    for args in (
        ["--from", str(tmp_path)],
        ["--option", "users=ten"],
        ["--option", "colour=blue"],
        ["--option", "categories=999"],
        ["--option", "nonsense"],
    ):
        result = runner.invoke(app, ["data", "import", "synthetic", *args])
        assert result.exit_code == 2, (args, result.output)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert not (home / "data").exists()
