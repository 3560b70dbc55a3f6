"""`paprec data list | import | info` through the CLI, including every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner, Result

from paprec_cli.cli import app

DATASETS = {"synthetic", "beauty", "sports", "toys", "yelp", "ml-100k", "ml-1m", "csv"}


def last_json(result: Result) -> dict:  # type: ignore[type-arg]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_user_error(result: Result, *needles: str) -> str:
    """Exit 2, exactly one `Error: ...` line on stderr, no traceback; returns the line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_list_shows_every_builtin_dataset(home: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["data", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in last_json(result)["datasets"]}
    assert set(rows) >= DATASETS
    assert all(rows[name]["status"] == "ok" and not rows[name]["imported"] for name in DATASETS)
    assert rows["synthetic"]["needs_files"] is False
    human = runner.invoke(app, ["data", "list"])
    assert human.exit_code == 0 and "ml-100k" in human.stdout


def test_import_csv_with_name_then_list_and_info(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    rows = [f"u{u},i{(u * 7 + k) % 13},{1 + (u + k) % 5},{100 + k}" for u in range(6) for k in range(5)]
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["data", "import", "csv", "--from", str(path), "--name", "mine", "--json",
                                 "--indexing", "sequential", "--tie-break", "item"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary["name"] == "mine" and summary["interactions"] == 30
    listing = {row["name"]: row for row in last_json(runner.invoke(app, ["data", "list", "--json"]))["datasets"]}
    assert listing["csv"]["imported"] and listing["csv"]["imported_as"] == ["mine"]
    info = runner.invoke(app, ["data", "info", "mine", "--json"])
    data = last_json(info)
    assert (data["users"], data["interactions"], data["indexing"], data["tie_break"]) == (6, 30, "sequential", "item")
    assert sum(data["rating_histogram"].values()) == 30 and data["unrated_interactions"] == 0
    assert data["sources"][0]["path"].endswith("mine.csv") and len(data["sources"][0]["sha256"]) == 64
    human = runner.invoke(app, ["data", "info", "mine"])
    assert human.exit_code == 0 and "tie-break" in human.stdout and "sequence length" in human.stdout


def test_info_without_ratings_gives_null_histogram(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("user,item\n" + "\n".join(f"u{u},i{k}" for u in range(3) for k in range(4)) + "\n")
    assert runner.invoke(app, ["data", "import", "csv", "--from", str(path)]).exit_code == 0
    data = last_json(runner.invoke(app, ["data", "info", "csv", "--json"]))
    assert data["rating_histogram"] is None and data["sequence_length"]["median"] == 4.0
    assert data["unrated_interactions"] == 12


def test_a_stored_non_finite_rating_is_refused_with_the_fix(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    """An import made before imports refused NaN ratings (or an edited table) is not read as data."""
    path = tmp_path / "old.csv"
    path.write_text("user,item,rating\n" + "\n".join(f"u{u},i{k},{1 + k}" for u in range(3) for k in range(4)) + "\n")
    assert runner.invoke(app, ["data", "import", "csv", "--from", str(path), "--name", "old"]).exit_code == 0
    table_path = next(home.rglob("old/interactions.parquet"))
    table = pl.read_parquet(table_path)
    table.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pl.col("rating"))
                       .alias("rating")).write_parquet(table_path)
    result = runner.invoke(app, ["data", "info", "old"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "interactions.parquet: 1 rating(s) are not finite numbers" in lines[0]
    assert "re-import dataset 'old'" in lines[0]


def test_info_counts_unrated_interactions(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "some.csv"
    rows = [f"u{u},i{(u * 7 + k) % 13},{'' if (u, k) in ((1, 2), (4, 0)) else 1 + (u + k) % 5},{100 + k}"
            for u in range(6) for k in range(5)]
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    assert runner.invoke(app, ["data", "import", "csv", "--from", str(path), "--name", "some"]).exit_code == 0
    data = last_json(runner.invoke(app, ["data", "info", "some", "--json"]))
    assert data["interactions"] == 30 and data["unrated_interactions"] == 2
    assert sum(data["rating_histogram"].values()) == 28
    human = runner.invoke(app, ["data", "info", "some"])
    assert human.exit_code == 0 and "unrated: 2" in human.stdout


def _p5(folder: Path, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sequential_data.txt").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("missing", ["no such file or folder", "sequential_data.txt"]),
        ("wrong-format", ["no u.data in this folder", "ml-100k"]),
        ("malformed", ["sequential_data.txt:2:", "expected 'USER ITEM ITEM"]),
        ("empty", ["sequential_data.txt: the file is empty"]),
        ("duplicate-header", ["x.csv:1: column 'item' appears twice"]),
        ("encoding", ["x.csv:3: byte 0xe9 is not valid utf-8", "ISO-8859-1", "--option encoding"]),
        ("unknown-dataset", ["unknown dataset 'beuaty'", "known: beauty, csv, ml-100k, ml-1m, sports, synthetic"]),
        ("needs-from", ["needs --from PATH"]),
        ("bad-indexing", ["--indexing alphabetical: expected one of random, sequential"]),
        ("bad-tie-break", ["--tie-break time: expected one of source, item"]),
        ("bad-option", ["--option sep: expected KEY=VALUE"]),
        ("unknown-option", ["has no option delimiter", "known options:"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    home: Path, runner: CliRunner, tmp_path: Path, case: str, needles: list[str]
) -> None:
    raw = tmp_path / "raw"
    csv_path = raw / "x.csv"
    raw.mkdir()
    args = {
        "missing": ["beauty", "--from", str(tmp_path / "nowhere")],
        "wrong-format": ["ml-100k", "--from", str(_p5(raw / "b", "1 1 2 3\n"))],
        "malformed": ["beauty", "--from", str(_p5(raw / "m", "1 1 2 3\n2 4 5 six\n"))],
        "empty": ["beauty", "--from", str(_p5(raw / "e", "\n"))],
        "duplicate-header": ["csv", "--from", str(csv_path)],
        "encoding": ["csv", "--from", str(csv_path)],
        "unknown-dataset": ["beuaty", "--from", str(raw)],
        "needs-from": ["ml-100k"],
        "bad-indexing": ["synthetic", "--indexing", "alphabetical"],
        "bad-tie-break": ["synthetic", "--tie-break", "time"],
        "bad-option": ["csv", "--from", str(csv_path), "--option", "sep"],
        "unknown-option": ["csv", "--from", str(csv_path), "--option", "delimiter=;"],
    }[case]
    csv_path.write_bytes(
        b"user,item,item\nu1,i1,i2\n" if case == "duplicate-header" else b"user,item\nu1,i1\nu2,caf\xe9\n"
    )
    assert_user_error(runner.invoke(app, ["data", "import", *args]), *needles)
    assert not (home / "data").exists() or not any((home / "data").iterdir())


def test_info_of_unimported_dataset_is_a_user_error(home: Path, runner: CliRunner) -> None:
    assert_user_error(runner.invoke(app, ["data", "info", "beauty"]), "not imported", "paprec data import beauty")


def test_failed_reimport_keeps_the_previous_import(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    first = runner.invoke(app, ["data", "import", "synthetic", "--option", "users=20", "--option", "items=40"])
    assert first.exit_code == 0
    before = (home / "data" / "synthetic" / "manifest.json").read_text()
    bad = runner.invoke(app, ["data", "import", "synthetic", "--option", "users=x"])
    assert_user_error(bad)
    assert (home / "data" / "synthetic" / "manifest.json").read_text() == before
    assert sorted(p.name for p in (home / "data").iterdir() if p.suffix != ".lock") == ["synthetic"]  # no temp left


def test_reimport_needs_force(home: Path, runner: CliRunner) -> None:
    """An existing import is never replaced silently: models and runs record its fingerprint."""
    args = ["data", "import", "synthetic", "--option", "users=20", "--option", "items=40"]
    assert runner.invoke(app, args).exit_code == 0
    before = (home / "data" / "synthetic" / "manifest.json").read_text()
    again = runner.invoke(app, [*args[:3], "--option", "users=30", "--option", "items=40"])
    assert_user_error(again, "already imported", "--force", "--name")
    assert (home / "data" / "synthetic" / "manifest.json").read_text() == before
    forced = runner.invoke(app, [*args[:3], "--option", "users=30", "--option", "items=40", "--force"])
    assert forced.exit_code == 0 and (home / "data" / "synthetic" / "manifest.json").read_text() != before
