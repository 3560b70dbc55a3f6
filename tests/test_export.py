"""Prompt export/import: round trips in all three formats, and each refusal as a one-line error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_export_helpers import FakeCodec, sample_document
from typer.testing import CliRunner

from paprec_cli import export, runs
from paprec_cli.cli import app
from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    doc = sample_document()
    path = tmp_path / f"prompts.{fmt}"
    assert export.export_prompts(doc, path) == fmt
    back = export.read_prompts(path)
    assert back == doc
    assert list(back) == list(doc)  # key order too, so a re-export is byte-identical for JSON
    assert isinstance(back["users"]["1"], str) and back["users"]["1"] == "007"


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_round_trip_without_personal(tmp_path: Path, fmt: str) -> None:
    doc = sample_document()
    doc["personal"], doc["users"] = {}, {}
    path = tmp_path / f"p.{fmt}"
    export.export_prompts(doc, path)
    assert export.read_prompts(path) == doc


def test_explicit_format_beats_suffix(tmp_path: Path) -> None:
    path = tmp_path / "prompts.dat"
    export.export_prompts(sample_document(), path, "parquet")
    assert path.read_bytes()[:4] == b"PAR1"


def test_csv_is_one_row_per_user_with_metadata_comment(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    export.export_prompts(sample_document(), path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# paprec-meta: {")
    assert lines[1] == "user_idx,user,token_ids,tokens,prompt"
    assert [line.split(",")[0] for line in lines[2:]] == ["1", "2", "3", "10"]
    assert 'buy {argument} cheap ""odd,one"" café' in lines[2]


def test_render_prompt_uses_default_for_unknown_user() -> None:
    doc = sample_document()
    assert export.render_prompt(doc, 2, "ARG") == 'buy ARG cheap "odd,one" red'
    assert export.render_prompt(doc, 99, "ARG") == 'buy ARG cheap "odd,one" c'


def test_refuses_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    export.export_prompts(sample_document(), path)
    with pytest.raises(PaprecError, match="--force"):
        export.export_prompts(sample_document(), path)
    export.export_prompts(sample_document(), path, force=True)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="paprec-prompts/0"), "format tag"),
        (lambda d: d.pop("dataset_fingerprint"), "missing required key"),
        (lambda d: d["shared"].update(suffix=[{"id": "x", "text": "a"}]), "malformed token"),
        (lambda d: d["personal"].update(bob=[]), "not a user index"),
    ],
)
def test_structural_refusals(tmp_path: Path, mutate: Any, message: str) -> None:
    doc = sample_document()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(PaprecError, match=message) as info:
        export.read_prompts(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_codec_check(tmp_path: Path) -> None:
    doc = sample_document()
    codec = FakeCodec(doc)
    export.check_codec(doc, codec, "f.json")
    codec.ids["▁red"] = 99
    with pytest.raises(PaprecError, match="has id 99"):
        export.check_codec(doc, codec, "f.json")
    del codec.ids["▁red"]
    with pytest.raises(PaprecError, match="not in its vocabulary.*--model"):
        export.check_codec(doc, codec, "f.json")


def test_fingerprint_check() -> None:
    doc = sample_document()
    export.check_fingerprints(doc, "f.json", dataset_fingerprint="d" * 16, model_fingerprint="m" * 16)
    with pytest.raises(PaprecError, match="dataset in use"):
        export.check_fingerprints(doc, "f.json", dataset_fingerprint="x")
    with pytest.raises(PaprecError, match="model in use"):
        export.check_fingerprints(doc, "f.json", model_fingerprint="x")


def test_not_parquet_or_csv(tmp_path: Path) -> None:
    bad = tmp_path / "p.parquet"
    bad.write_text("hello", encoding="utf-8")
    with pytest.raises(PaprecError, match="not a readable Parquet"):
        export.read_prompts(bad)
    bad_csv = tmp_path / "p.csv"
    bad_csv.write_text("user_idx,user\n1,a\n", encoding="utf-8")
    with pytest.raises(PaprecError, match="first line"):
        export.read_prompts(bad_csv)


def make_run(home: Path, name: str = "run1", doc: dict[str, Any] | None = None) -> Path:
    folder = home / "runs" / name
    folder.mkdir(parents=True)
    (folder / "prompts.json").write_text(json.dumps(doc or sample_document()), encoding="utf-8")
    return folder


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_cli_export_by_run_name(home: Path, runner: CliRunner, tmp_path: Path, fmt: str) -> None:
    make_run(home)
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(app, ["export-prompts", "run1", "--format", fmt, "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1]) == {"run": "run1", "path": str(out), "format": fmt, "users": 3}
    assert export.read_prompts(out) == sample_document()
    again = runner.invoke(app, ["export-prompts", "run1", "--format", fmt, "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    forced = runner.invoke(app, ["export-prompts", str(home / "runs" / "run1"), "-f", fmt, "-o", str(out), "--force"])
    assert forced.exit_code == 0, forced.output


def test_cli_export_refusals(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["export-prompts", "nope", "-o", str(tmp_path / "x.json")])
    assert missing.exit_code == 2 and "not a run name" in missing.stderr
    bad = sample_document()
    bad["format"] = "other/9"
    make_run(home, "bad", bad)
    wrong = runner.invoke(app, ["export-prompts", "bad", "-o", str(tmp_path / "x.json")])
    assert wrong.exit_code == 2 and "format tag" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    (home / "runs" / "empty").mkdir(parents=True)
    unfinished = runner.invoke(app, ["export-prompts", "empty", "-o", str(tmp_path / "x.json")])
    assert unfinished.exit_code == 2 and "--resume" in unfinished.stderr
    make_run(home, "good")
    fmt = runner.invoke(app, ["export-prompts", "good", "-o", str(tmp_path / "x.xlsx")])
    assert fmt.exit_code == 2 and "--format json, parquet or csv" in fmt.stderr


def test_load_prompts_accepts_run_folder(home: Path) -> None:
    folder = make_run(home)
    assert runs.load_prompts(folder) == sample_document()
    assert runs.load_prompts("run1", Home.resolve(home)) == sample_document()


def test_latest_resolves_the_newest_finished_run(tmp_path) -> None:
    import os

    from paprec_cli.paths import Home
    from paprec_cli.runs import resolve_run

    home = Home(tmp_path)
    for index, name in enumerate(["20260101-000000-a", "20260102-000000-b", "20260103-000000-unfinished"]):
        folder = home.runs / name
        folder.mkdir(parents=True)
        if "unfinished" not in name:
            (folder / "prompts.json").write_text("{}")
            os.utime(folder / "prompts.json", (1_000_000 + index, 1_000_000 + index))
    assert resolve_run("latest", home).name == "20260102-000000-b"
