"""Amazon loaders on small files written here in the exact P5/S3-Rec and McAuley raw formats."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from paprec_datasets import amazon, yelp
from paprec_datasets.mcauley import k_core

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.specs import ImportOptions

BEAUTY = next(s for s in amazon.SPECS if s.name == "beauty")


def write_p5(folder: Path, lines: list[str], attrs: bool = True, names: bool = True, maps: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sequential_data.txt").write_text("\n".join(lines) + "\n")
    users = sorted({line.split()[0] for line in lines}, key=int)
    items = sorted({i for line in lines for i in line.split()[1:]}, key=int)
    if maps:
        datamaps = {
            "user2id": {f"U{u}": u for u in users},
            "item2id": {f"B{i}": i for i in items},
            "id2user": {u: f"U{u}" for u in users},
            "id2item": {i: f"B{i}" for i in items},
        }
        (folder / "datamaps.json").write_text(json.dumps(datamaps))
    if attrs:
        (folder / "item2attributes.json").write_text(json.dumps({i: [1, int(i) % 2 + 2] for i in items}))
    if names:
        (folder / "item2attributes_names.tsv").write_text(
            "s3rec_attribute_id\tdatamaps_attribute_id\tname\titem_count\n1\t2\tMakeup\t9\n2\t3\tFace\t4\n3\t4\tNails\t5\n"
        )
    return folder


def test_p5_with_datamaps_and_named_attributes(tmp_path: Path) -> None:
    folder = write_p5(tmp_path / "b", ["1 1 2 3 4 5", "2 6 1 7 1 8"])  # user 2 repeats item 1
    raw = BEAUTY.load(folder, ImportOptions())
    table = raw.interactions
    assert table.height == 10
    assert table.filter(pl.col("user") == "U2")["item"].to_list() == ["B6", "B1", "B7", "B1", "B8"]
    assert table["order"].to_list() == list(range(10))
    attrs = dict(zip(raw.items["item"], raw.items["attributes"].to_list(), strict=True))
    assert attrs["B1"] == ["Makeup", "Nails"] and attrs["B2"] == ["Makeup", "Face"]
    assert {s.path.name for s in raw.sources} == {
        "sequential_data.txt", "datamaps.json", "item2attributes.json", "item2attributes_names.tsv"
    }  # fmt: skip
    assert all(len(s.sha256) == 64 for s in raw.sources)


def test_p5_without_names_skips_or_keeps_anonymous_attributes(tmp_path: Path) -> None:
    folder = write_p5(tmp_path / "s", ["1 1 2 3"], names=False, maps=False)
    skipped = BEAUTY.load(folder, ImportOptions())
    assert all(a == [] for a in skipped.items["attributes"].to_list())
    assert "skipped" in skipped.notes["attributes"]
    kept = BEAUTY.load(folder, ImportOptions(extra={"anonymous_attributes": "keep"}))
    assert kept.items.filter(pl.col("item") == "1")["attributes"].to_list() == [["attr_1", "attr_3"]]
    assert skipped.interactions["user"].to_list() == ["1", "1", "1"]  # integer ids kept without datamaps


def test_yelp_reads_p5_format_with_repeats(tmp_path: Path) -> None:
    folder = write_p5(tmp_path / "y", ["1 1 2 1 2 1"], attrs=False, maps=False)
    raw = yelp.SPEC.load(folder, ImportOptions())
    assert raw.interactions["item"].to_list() == ["1", "2", "1", "2", "1"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["1 1 2 3", "2 4 x 6"], "sequential_data.txt:2: '2 4 x 6' has a token that is not an integer id"),
        (["1 1 2 3", "2"], "sequential_data.txt:2: user '2' has no items"),
        (["1 1 2 3", "2 2 3", "1 4 5"], "sequential_data.txt:3: user 1 already has a line (line 1)"),
        (["196\t242\t3\t881250949"], "sequential_data.txt:1:"),
    ],
)
def test_p5_malformed_lines_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    folder = write_p5(tmp_path / "bad", ["1 1"], attrs=False, maps=False)
    (folder / "sequential_data.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="expected") as info:
        BEAUTY.load(folder, ImportOptions())
    assert message in str(info.value)


def test_p5_datamaps_must_cover_every_id(tmp_path: Path) -> None:
    folder = write_p5(tmp_path / "m", ["1 1 2 3"])
    (folder / "sequential_data.txt").write_text("1 1 2 3\n1 9\n".replace("1 9", "2 9"))
    with pytest.raises(DataFormatError, match=r"sequential_data.txt:2: user id 2 is not in datamaps.json"):
        BEAUTY.load(folder, ImportOptions())


def _review(user: str, item: str, rating: float, stamp: int) -> dict[str, object]:
    return {"reviewerID": user, "asin": item, "reviewerName": "x", "helpful": [0, 0], "reviewText": "ok, fine",
            "overall": rating, "summary": "s", "unixReviewTime": stamp, "reviewTime": "01 1, 2014"}  # fmt: skip


def write_reviews(path: Path, rows: list[dict[str, object]], python_literals: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(repr(r) if python_literals else json.dumps(r) for r in rows) + "\n"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)
    return path


def core_rows() -> list[dict[str, object]]:
    """6 users x 6 items all rated (a 5-core block) plus a fringe that the filter must remove iteratively."""
    rows = [_review(f"U{u}", f"A{i}", float(1 + (u + i) % 5), 1000 * u + i) for u in range(6) for i in range(6)]
    # "Z" has 5 reviews, but 4 of them are of items that only Z touches (removed first); then Z has 1 < 5.
    rows += [_review("Z", f"X{i}", 5.0, 10 + i) for i in range(4)] + [_review("Z", "A0", 4.0, 99)]
    return rows


def test_mcauley_raw_reviews_meta_and_iterative_5_core(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    write_reviews(folder / "reviews_Beauty_5.json.gz", core_rows())
    meta = [{"asin": f"A{i}", "title": f"Cream {i}", "brand": "Acme", "categories": [["Beauty", "Skin Care", "Face"]]}
            for i in range(6)] + [{"asin": "X0", "title": "never kept"}]  # fmt: skip
    with gzip.open(folder / "meta_Beauty.json.gz", "wt") as fh:
        fh.write("\n".join(repr(m) for m in meta) + "\n")  # meta files use Python dict literals
    raw = BEAUTY.load(folder, ImportOptions())
    table = raw.interactions
    assert table["user"].n_unique() == 6 and table["item"].n_unique() == 6 and table.height == 36
    assert raw.notes["core_rounds"] == 2 and raw.notes["removed_by_core"] == 5
    assert table["rating"].is_not_null().all() and table["timestamp"].is_not_null().all()
    a0 = raw.items.filter(pl.col("item") == "A0").row(0, named=True)
    assert a0["title"] == "Cream 0" and a0["attributes"] == ["Acme", "Skin Care", "Face"]
    assert "X0" not in raw.items["item"].to_list()


def test_mcauley_python_dict_lines_are_read(tmp_path: Path) -> None:
    path = write_reviews(tmp_path / "r" / "reviews_Beauty_5.json.gz", core_rows(), python_literals=True)
    raw = BEAUTY.load(path, ImportOptions())  # --from may name the file itself
    assert raw.interactions.height == 36


def test_mcauley_format_raw_option_and_core_option(tmp_path: Path) -> None:
    folder = write_p5(tmp_path / "both", ["1 1 2"], attrs=False, maps=False)
    write_reviews(folder / "reviews_Beauty_5.json.gz", core_rows())
    assert BEAUTY.load(folder, ImportOptions()).interactions.height == 2  # P5 wins by default
    assert BEAUTY.load(folder, ImportOptions(extra={"format": "raw"})).interactions.height == 36
    assert BEAUTY.load(folder, ImportOptions(extra={"format": "raw", "core": "1"})).interactions.height == 41


def test_mcauley_bad_lines(tmp_path: Path) -> None:
    rows = core_rows()
    path = write_reviews(tmp_path / "a" / "reviews_Beauty_5.json.gz", rows)
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(rows[0]) + "\n" + json.dumps({"reviewerID": "U1", "asin": "B"}) + "\n")
    with pytest.raises(DataFormatError, match=r"reviews_Beauty_5.json.gz:2: the review has no overall"):
        BEAUTY.load(path, ImportOptions())
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(rows[0]) + "\n{not json at all\n")
    with pytest.raises(DataFormatError, match=r":2: '\{not json at all' is not a JSON object"):
        BEAUTY.load(path, ImportOptions())
    path.write_bytes(b"plain text, not gzip\n")
    with pytest.raises(DataFormatError, match="gzip"):
        BEAUTY.load(path, ImportOptions())


@pytest.mark.parametrize("value", ["NaN", "Infinity", '"nan"', '"-inf"'])
def test_mcauley_non_finite_rating_is_refused_at_its_line(tmp_path: Path, value: str) -> None:
    rows = core_rows()
    path = tmp_path / "n" / "reviews_Beauty_5.json.gz"
    path.parent.mkdir(parents=True)
    bad = json.dumps(rows[1]).replace('"overall": ' + json.dumps(rows[1]["overall"]), '"overall": ' + value)
    assert bad != json.dumps(rows[1])
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join([json.dumps(rows[0]), bad, *map(json.dumps, rows[2:])]) + "\n")
    with pytest.raises(DataFormatError, match=r"Beauty_5.json.gz:2: overall -?(nan|inf) is not a finite number"):
        BEAUTY.load(path, ImportOptions())


def test_k_core_is_iterative() -> None:
    table = pl.DataFrame({"user": ["a", "a", "b", "b", "c"], "item": ["x", "y", "x", "y", "x"]})
    kept, rounds = k_core(table, 2)
    assert kept.height == 4 and rounds == 1
    empty, _ = k_core(table, 3)
    assert empty.height == 0


def test_amazon_folder_without_known_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PaprecError, match="no sequential_data.txt .* or reviews_Beauty_5.json.gz"):
        BEAUTY.load(tmp_path / "empty", ImportOptions())


def test_mcauley_html_entities_in_titles_and_attributes_are_decoded(tmp_path: Path) -> None:
    """McAuley's metadata keeps HTML entities; kept raw, `&amp;` became the attribute word "amp". Decoded at
    import with `html.unescape` (a two-line meta file)."""
    folder = tmp_path / "raw"
    write_reviews(folder / "reviews_Beauty_5.json.gz", core_rows())
    meta = ['{"asin": "A0", "title": "Salt &amp; Pepper &quot;Scrub&quot;", "brand": "L&#39;Or&eacute;al", '
            '"categories": [["Beauty", "Bath &amp; Body", "Scrubs"]]}',
            "{'asin': 'A1', 'title': 'Plain & simple', 'brand': 'Acme', 'categories': [['Beauty', 'Skin Care']]}"]
    with gzip.open(folder / "meta_Beauty.json.gz", "wt") as fh:
        fh.write("\n".join(meta) + "\n")
    raw = BEAUTY.load(folder, ImportOptions())
    rows = {r["item"]: r for r in raw.items.iter_rows(named=True)}
    assert rows["A0"]["title"] == 'Salt & Pepper "Scrub"'
    assert rows["A0"]["attributes"] == ["L'Oréal", "Bath & Body", "Scrubs"]
    assert rows["A1"]["title"] == "Plain & simple" and rows["A1"]["attributes"] == ["Acme", "Skin Care"]
    assert not any("&" in word and ";" in word for r in rows.values() for word in r["attributes"])
