"""Real-data checks against the published counts (skip when ../shared/data is absent)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from conftest import shared_data
from typer.testing import CliRunner

from paprec_cli.cli import app

pytestmark = pytest.mark.realdata


def _info(runner: CliRunner, name: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["data", "info", name, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def real_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data home for the module; beauty and ml-100k are imported once."""
    root = tmp_path_factory.mktemp("real-home")
    old = os.environ.get("PAPREC_HOME")
    os.environ["PAPREC_HOME"] = str(root)
    try:
        runner = CliRunner()
        for name in ("beauty", "ml-100k"):
            folder = shared_data(name)
            result = runner.invoke(app, ["data", "import", name, "--from", str(folder), "--indexing", "sequential"])
            assert result.exit_code == 0, result.output
        yield root
    finally:
        if old is None:
            os.environ.pop("PAPREC_HOME", None)
        else:
            os.environ["PAPREC_HOME"] = old


def test_beauty_counts(real_home: Path) -> None:
    info = _info(CliRunner(), "beauty")
    assert (info["users"], info["items"], info["interactions"]) == (22_363, 12_101, 198_502)
    assert info["rating_histogram"] is None and info["indexing"] == "sequential"
    assert info["sequence_length"]["min"] == 5 and info["sequence_length"]["max"] == 204
    assert info["distinct_attributes"] == 637 and info["items_with_attributes"] == 12_101


def test_beauty_sequential_ids_reproduce_p5_and_raw_sequences(real_home: Path) -> None:
    folder = shared_data("beauty")
    maps = json.loads((folder / "datamaps.json").read_text())
    items = pl.read_parquet(real_home / "data" / "beauty" / "items.parquet")
    assert all(int(maps["item2id"][raw]) == idx for raw, idx in items.select("item", "item_idx").iter_rows())
    item4 = items.filter(pl.col("item") == "7806397051").row(0, named=True)
    assert item4["attributes"] == ["Makeup", "Face", "Concealers & Neutralizers"]
    # the time order inside each user matches user_sequence.txt (raw ids), line for line
    table = pl.read_parquet(real_home / "data" / "beauty" / "interactions.parquet").sort("user_idx", "pos")
    ours = table.group_by("user_idx", maintain_order=True).agg(pl.col("user").first(), pl.col("item"))
    lines = (folder / "user_sequence.txt").read_text().split("\n")[:200]
    for line, user, seq in zip(lines, ours["user"], ours["item"].to_list(), strict=False):
        assert line.split() == [user, *seq]


def test_ml_100k_counts_and_rating_histogram(real_home: Path) -> None:
    info = _info(CliRunner(), "ml-100k")
    assert (info["users"], info["items"], info["interactions"]) == (943, 1_682, 100_000)
    assert info["rating_histogram"] == {"1": 6_110, "2": 11_370, "3": 27_145, "4": 34_174, "5": 21_201}
    assert info["unrated_interactions"] == 0
    assert info["sequence_length"]["min"] == 20 and info["with_timestamp"] == 100_000
    items = pl.read_parquet(real_home / "data" / "ml-100k" / "items.parquet")
    assert items.filter(pl.col("item") == "1")["attributes"].to_list() == [["Animation", "Children's", "Comedy"]]
    assert items["title"].str.contains("Misérables").any()  # ISO-8859-1 decoded


def test_ml_100k_tie_break_changes_order_and_is_recorded(real_home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    folder = str(shared_data("ml-100k"))
    args = ["data", "import", "ml-100k", "--from", folder, "--tie-break", "item", "--name", "ml-item"]
    assert runner.invoke(app, args).exit_code == 0
    by_item = _info(runner, "ml-item")
    assert by_item["tie_break"] == "item" and _info(runner, "ml-100k")["tie_break"] == "source"
    a = pl.read_parquet(real_home / "data" / "ml-100k" / "interactions.parquet").sort("user", "pos")
    b = pl.read_parquet(real_home / "data" / "ml-item" / "interactions.parquet").sort("user", "pos")
    assert not a["item"].equals(b["item"])  # equal timestamps are common in ml-100k
    assert a["timestamp"].equals(b["timestamp"])


def test_sports_counts_and_anonymous_attributes_skipped(tmp_path: Path) -> None:
    from paprec_datasets.amazon import SPECS

    from paprec_cli.specs import ImportOptions

    sports = next(s for s in SPECS if s.name == "sports")
    raw = sports.load(shared_data("sports"), ImportOptions())
    table = raw.interactions
    assert (table["user"].n_unique(), table["item"].n_unique(), table.height) == (35_598, 18_357, 296_337)
    assert raw.items["attributes"].list.len().sum() == 0 and "skipped" in raw.notes["attributes"]
