"""Real data files as they come (issue 15): BOMs and encodings, bad ids, duplicates, McAuley layouts.

Each case is a small input written here; the value asserted is the right one, not what the code did.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from paprec_datasets import amazon, csv_dataset, movielens
from typer.testing import CliRunner, Result

from paprec_cli.cli import app
from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.serving import users_file_lines
from paprec_cli.specs import ImportOptions
from paprec_cli.textio import decode_bytes

BEAUTY = next(s for s in amazon.SPECS if s.name == "beauty")
FLAGS = "|".join(["0"] * 19)
BOM = b"\xef\xbb\xbf"


def last_json(result: Result) -> dict:  # type: ignore[type-arg]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the shared reader --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "declared", "fallback", "text", "encoding"),
    [
        (b"a,b\n", None, None, "a,b\n", "utf-8"),
        (BOM + b"a,b\r\n", None, None, "a,b\r\n", "utf-8 (BOM)"),
        ("a,é\n".encode("utf-16"), None, None, "a,é\n", "utf-16 (BOM)"),
        ("a,é\n".encode("utf-16-be"), "utf-16-be", None, "a,é\n", "utf-16-be (declared)"),
        ("a,é\n".encode("utf-32"), None, None, "a,é\n", "utf-32 (BOM)"),
        ("café\n".encode(), None, "iso-8859-1", "café\n", "utf-8"),  # valid UTF-8 never falls back
        ("café\n".encode("latin-1"), None, "iso-8859-1", "café\n", "iso8859-1 (fallback: not UTF-8)"),
        ("café\n".encode(), "latin-1", None, "cafÃ©\n", "iso8859-1 (declared)"),  # declared always wins
        (BOM + b"a\n", "utf-8", None, "a\n", "utf-8 (declared)"),
    ],
)
def test_decoding_rules(data: bytes, declared: str | None, fallback: str | None, text: str, encoding: str) -> None:
    decoded = decode_bytes(Path("f.txt"), data, declared, fallback)
    assert (decoded.text, decoded.encoding) == (text, encoding)


def test_latin1_bytes_in_a_file_declared_utf8_name_the_line() -> None:
    with pytest.raises(DataFormatError, match=r"f.txt:2: byte 0xe9 is not valid utf-8"):
        decode_bytes(Path("f.txt"), b"ok\ncaf\xe9\n", "utf-8", "iso-8859-1")
    with pytest.raises(PaprecError, match="--option encoding=klingon: unknown encoding"):
        decode_bytes(Path("f.txt"), b"ok\n", "klingon")


# --- CSV ----------------------------------------------------------------------------------------


def _csv(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.csv"
    path.write_bytes(data)
    return path


def test_csv_bom_crlf_with_timestamp_first_keeps_timestamps(tmp_path: Path) -> None:
    text = "timestamp,user,item,rating\r\n300,u1,i2,5\r\n100,u1,i1,4\r\n200,u1,i3,3\r\n"
    raw = csv_dataset.SPEC.load(_csv(tmp_path, BOM + text.encode()), ImportOptions())
    assert raw.interactions["timestamp"].to_list() == [300, 100, 200]
    assert raw.interactions["item"].to_list() == ["i2", "i1", "i3"]
    assert raw.interactions["rating"].to_list() == [5.0, 4.0, 3.0]
    assert raw.notes["encoding"] == "utf-8 (BOM)" and raw.sources[0].encoding == "utf-8 (BOM)"


def test_csv_bom_with_user_first_and_utf16(tmp_path: Path) -> None:
    raw = csv_dataset.SPEC.load(_csv(tmp_path / "a", BOM + b"user,item\nu1,i1\n"), ImportOptions())
    assert raw.interactions["user"].to_list() == ["u1"]
    raw16 = csv_dataset.SPEC.load(_csv(tmp_path / "b", "user,item\r\nu1,Crème\r\n".encode("utf-16")), ImportOptions())
    assert raw16.interactions["item"].to_list() == ["Crème"] and raw16.notes["encoding"] == "utf-16 (BOM)"


def test_csv_latin1_bytes_declared_utf8_is_an_error_at_the_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, b"user,item\nu1,i1\nu2,caf\xe9\n")
    with pytest.raises(DataFormatError, match=r"data.csv:3: byte 0xe9 is not valid utf-8"):
        csv_dataset.SPEC.load(path, ImportOptions(extra={"encoding": "utf-8"}))


def test_csv_unused_columns_are_reported(tmp_path: Path) -> None:
    raw = csv_dataset.SPEC.load(_csv(tmp_path, b"user,item,review,stars\nu1,i1,nice,5\n"), ImportOptions())
    assert raw.notes["unused_columns"] == ["review", "stars"]
    assert "review, stars" in raw.notes["reports"][0]


def test_import_bom_csv_end_to_end_and_info(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    rows = "".join(f"{t},u{u},i{(u + k) % 7},{1 + k % 5},note\r\n" for u in range(4) for k, t in
                   enumerate([500, 100, 300, 200, 400]))  # fmt: skip
    rows += "100,u0,i1,2,note\r\n"  # an exact duplicate of u0's second record
    path = _csv(tmp_path, BOM + ("timestamp,user,item,rating,comment\r\n" + rows).encode())
    result = runner.invoke(app, ["data", "import", "csv", "--from", str(path), "--json"])
    summary = last_json(result)
    assert summary["interactions"] == 20 and summary["with_timestamp"] == 20 and summary["duplicates_removed"] == 1
    assert "columns not used: comment" in result.stderr
    info = last_json(runner.invoke(app, ["data", "info", "csv", "--json"]))
    assert info["layout"] == "csv" and info["duplicates_removed"] == 1
    assert info["encodings"] == {"data.csv": "utf-8 (BOM)"}
    human = runner.invoke(app, ["data", "info", "csv"])
    assert "duplicates removed" in human.stdout and "utf-8 (BOM)" in human.stdout and "layout" in human.stdout


# --- allow-lists and users files ----------------------------------------------------------------


def test_allow_list_with_bom_or_utf16(tmp_path: Path) -> None:
    from test_search_layout import FakeCodec

    from paprec_cli.search.vocab import candidate_vocabulary

    allow = tmp_path / "allow.txt"
    allow.write_bytes(BOM + b"gamma\r\nalpha\r\n")
    assert candidate_vocabulary(FakeCodec(), allow).tolist() == [10, 12]
    allow.write_bytes("gamma\nalpha\n".encode("utf-16"))
    assert candidate_vocabulary(FakeCodec(), allow).tolist() == [10, 12]


def test_users_file_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_bytes(BOM + b"user_1\r\n2\r\n")
    assert users_file_lines(path) == [(1, "user_1"), (2, "2")]


# --- GroupLens ----------------------------------------------------------------------------------


def write_100k(folder: Path, data: str, item_bytes: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(data)
    item = f"10|Les Misérables (1995)|01-Jan-1995||http://x|{FLAGS}\n20|Toy Story (1995)|01-Jan-1995||http://y|{FLAGS}\n"
    (folder / "u.item").write_bytes(item_bytes if item_bytes is not None else item.encode("iso-8859-1"))
    return folder


def test_grouplens_utf8_is_read_as_utf8_latin1_stays_the_fallback(tmp_path: Path) -> None:
    item = f"10|Les Misérables (1995)|01-Jan-1995||http://x|{FLAGS}\n20|Toy Story (1995)|01-Jan-1995||http://y|{FLAGS}\n"
    data = "1\t10\t4\t100\n1\t20\t5\t100\n"
    utf8 = movielens.SPEC_100K.load(write_100k(tmp_path / "u8", data, item.encode()), ImportOptions())
    latin = movielens.SPEC_100K.load(write_100k(tmp_path / "l1", data), ImportOptions())
    for raw in (utf8, latin):
        assert raw.items.filter(pl.col("item") == "10")["title"].to_list() == ["Les Misérables (1995)"]
    encodings = {s.path.name: s.encoding for s in latin.sources}
    assert encodings == {"u.data": "utf-8", "u.item": "iso8859-1 (fallback: not UTF-8)"}
    assert {s.path.name: s.encoding for s in utf8.sources}["u.item"] == "utf-8"
    bom = movielens.SPEC_100K.load(write_100k(tmp_path / "b", data, BOM + item.encode()), ImportOptions())
    assert bom.items["item"].to_list()[0] == "10"  # the BOM does not glue itself to the first id


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("12\tabc\t3\t881250949", r"u.data:2: item id 'abc' is not a positive integer"),
        ("12\t3.0\t3\t881250949", r"u.data:2: item id '3.0' is not a positive integer"),
        ("u12\t10\t3\t881250949", r"u.data:2: user id 'u12' is not a positive integer"),
        ("-12\t10\t3\t881250949", r"u.data:2: user id '-12' is not a positive integer"),
        ("12\t10\t9\t881250949", r"u.data:2: rating 9.0 is not a whole star 1-5"),
        ("12\t30\t3\t881250949", r"u.data:2: item 30 is not in u.item"),
        ("12\t10\t3\t881250949\t7", r"u.data:2: .* has more than 4 fields"),
    ],
    ids=["text-item", "float-item", "text-user", "negative-user", "rating-out-of-range", "not-in-catalogue",
         "extra-column"],
)
def test_grouplens_bad_ids_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    folder = write_100k(tmp_path / "ml", f"1\t10\t4\t100\n{line}\n")
    with pytest.raises(DataFormatError, match=message):
        movielens.SPEC_100K.load(folder, ImportOptions())


def test_grouplens_ids_with_leading_zeros_name_the_same_user_and_item(tmp_path: Path) -> None:
    """'0196' and '196' are one GroupLens user (ids are numbers), in the ratings and in the catalogue alike."""
    folder = write_100k(tmp_path / "ml", "196\t10\t4\t100\n0196\t020\t5\t101\n")
    raw = movielens.SPEC_100K.load(folder, ImportOptions())
    assert raw.interactions["user"].to_list() == ["196", "196"]
    assert raw.interactions["item"].to_list() == ["10", "20"]


def test_ml_1m_item_missing_from_movies_dat(tmp_path: Path) -> None:
    folder = tmp_path / "ml1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::7::3::978300761\n")
    (folder / "movies.dat").write_bytes("1193::One Flew (1975)::Drama\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"ratings.dat:2: item 7 is not in movies.dat"):
        movielens.SPEC_1M.load(folder, ImportOptions())


# --- duplicates and the k-core ------------------------------------------------------------------


def _review(user: str, item: str, rating: float, stamp: int) -> dict[str, object]:
    return {"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": stamp, "reviewText": "ok"}


def _write_gz(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _block() -> list[dict[str, object]]:
    """6 users x 6 items, all rated: a 5-core block that survives the filter whole (36 reviews)."""
    return [_review(f"U{u}", f"A{i}", float(1 + (u + i) % 5), 1000 * u + i) for u in range(6) for i in range(6)]


def test_exact_duplicates_do_not_count_toward_the_5_core(tmp_path: Path) -> None:
    rows = _block() + [_review("D", f"A{i}", 5.0, 50 + i) for i in range(4)] + [_review("D", "A3", 5.0, 53)]
    rows += [_review("R", f"A{i}", 4.0, 70 + i) for i in range(4)] + [_review("R", "A3", 2.0, 90)]  # re-review
    raw = BEAUTY.load(_write_gz(tmp_path / "r" / "reviews_Beauty_5.json.gz", rows), ImportOptions())
    users = set(raw.interactions["user"].to_list())
    assert "D" not in users and "R" not in users, "4 distinct items is not a 5-core user"
    assert raw.interactions.height == 36 and raw.notes["duplicates_removed"] == 1


def test_p5_repeats_stay(home: Path, runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "p5"
    folder.mkdir()
    (folder / "sequential_data.txt").write_text("1 1 2 2 3\n2 4 4 5 1\n")
    (folder / "item2attributes.json").write_text(json.dumps({"1": [1], "2": [2]}))
    names = b"s3rec_attribute_id\tname\titem_count\r\n1\tLips\t9\r\n2\tEyes\t4\r\n"
    (folder / "item2attributes_names.tsv").write_bytes(BOM + names)  # BOM + CRLF
    summary = last_json(runner.invoke(app, ["data", "import", "beauty", "--from", str(folder), "--json"]))
    assert summary["interactions"] == 8 and summary["duplicates_removed"] == 0
    manifest = json.loads((Path(summary["folder"]) / "manifest.json").read_text())
    note = "attribute names from item2attributes_names.tsv (columns not used: item_count)"
    assert manifest["notes"]["attributes"] == note


# --- McAuley layouts ----------------------------------------------------------------------------


def _write_lines(path: Path, rows: list[dict[str, object]], compress: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _meta_2018(item: str) -> dict[str, object]:
    return {"asin": item, "title": f"Lotion {item}", "brand": "Acme", "main_cat": "All Beauty",
            "category": ["Beauty & Personal Care", "Skin Care", "Body"], "also_buy": ["B1"], "price": "$3"}  # fmt: skip


def test_mcauley_2018_file_names_and_flat_category(tmp_path: Path) -> None:
    folder = tmp_path / "2018"
    _write_lines(folder / "All_Beauty_5.json.gz", _block(), compress=True)
    _write_lines(folder / "meta_All_Beauty.json.gz", [_meta_2018(f"A{i}") for i in range(6)], compress=True)
    raw = BEAUTY.load(folder, ImportOptions())
    assert raw.notes["layout"] == "McAuley 2018" and raw.notes["meta_layout"] == "McAuley 2018"
    assert raw.interactions.height == 36
    a0 = raw.items.filter(pl.col("item") == "A0").row(0, named=True)
    assert a0["attributes"] == ["Acme", "Skin Care", "Body"] and a0["title"] == "Lotion A0"
    assert "2018 'category'" in raw.notes["attributes"]


def test_mcauley_2018_meta_under_the_2014_name_is_not_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    _write_lines(folder / "reviews_Beauty_5.json.gz", _block(), compress=True)
    _write_lines(folder / "meta_Beauty.json.gz", [_meta_2018(f"A{i}") for i in range(6)], compress=True)
    raw = BEAUTY.load(folder, ImportOptions())
    assert raw.notes["layout"] == "McAuley 2014" and raw.notes["meta_layout"] == "McAuley 2018"
    assert raw.items.filter(pl.col("item") == "A1")["attributes"].to_list() == [["Acme", "Skin Care", "Body"]]
    assert "brand + category path words" not in raw.notes["attributes"]


def _review_2023(user: str, item: str, rating: float, ms: int) -> dict[str, object]:
    return {"rating": rating, "title": "t", "text": "x", "images": [], "asin": item + "-v", "parent_asin": item,
            "user_id": user, "timestamp": ms, "helpful_vote": 0, "verified_purchase": True}  # fmt: skip


def test_mcauley_2023_jsonl_millisecond_times_and_meta(tmp_path: Path) -> None:
    folder = tmp_path / "2023"
    rows = [_review_2023(f"U{u}", f"P{i}", float(1 + (u + i) % 5), 1_600_000_000_000 + 10_000 * u + 1000 * i + 1)
            for u in range(6) for i in range(6)]  # fmt: skip
    # U0 rated P4 at ...4_100 ms and P5 at ...4_900 ms, one second; the file lists P5 first: P4 comes first.
    rows[4]["timestamp"], rows[5]["timestamp"] = 1_600_000_004_100, 1_600_000_004_900
    rows = rows[:4] + [rows[5], rows[4]] + rows[6:]  # the file lists P5 before P4
    rows.append(dict(rows[7]))  # an exact duplicate (same millisecond): removed
    rows.append({**rows[8], "timestamp": int(rows[8]["timestamp"]) + 1})  # 1 ms later, same second: kept
    _write_lines(folder / "All_Beauty.jsonl", rows, compress=False)
    meta = [{"main_category": "All Beauty", "title": f"Soap {i}", "store": "Bubbles", "parent_asin": f"P{i}",
             "categories": ["Beauty & Personal Care", "Bath"], "details": {}} for i in range(6)]  # fmt: skip
    _write_lines(folder / "meta_All_Beauty.jsonl", meta, compress=False)
    raw = BEAUTY.load(folder, ImportOptions())
    assert raw.notes["layout"] == "McAuley 2023" and raw.notes["meta_layout"] == "McAuley 2023"
    table = raw.interactions
    assert set(table["item"].to_list()) == {f"P{i}" for i in range(6)}, "items are parent_asin"
    u0 = table.filter(pl.col("user") == "U0").sort(["timestamp", "order"])
    assert u0["item"].to_list() == ["P0", "P1", "P2", "P3", "P4", "P5"]
    assert u0["timestamp"].to_list() == [1_600_000_000, 1_600_000_001, 1_600_000_002, 1_600_000_003,
                                         1_600_000_004, 1_600_000_004]  # fmt: skip
    assert raw.notes["timestamps"] == "milliseconds, stored as seconds"
    assert raw.notes["duplicates_removed"] == 1 and table.height == 37
    p0 = raw.items.filter(pl.col("item") == "P0").row(0, named=True)
    assert p0["attributes"] == ["Bubbles", "Bath"] and p0["title"] == "Soap 0"


def test_mcauley_several_releases_in_one_folder_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "both"
    _write_lines(folder / "All_Beauty_5.json.gz", _block(), compress=True)
    _write_lines(folder / "All_Beauty.jsonl", [_review_2023("U", "P", 5.0, 1)], compress=False)
    with pytest.raises(PaprecError, match="several review files"):
        BEAUTY.load(folder, ImportOptions())
    assert BEAUTY.load(folder / "All_Beauty_5.json.gz", ImportOptions()).notes["layout"] == "McAuley 2018"


# --- prompts files edited by hand -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_prompts_file_saved_with_a_bom_or_as_utf16_reads_back(tmp_path: Path, fmt: str) -> None:
    from test_export_helpers import sample_document

    from paprec_cli import export

    doc = sample_document()
    path = tmp_path / f"p.{fmt}"
    export.export_prompts(doc, path)
    text = path.read_text(encoding="utf-8")
    path.write_bytes(BOM + text.replace("\n", "\r\n").encode())  # what a spreadsheet or editor saves
    assert export.read_prompts(path) == doc
    path.write_bytes(text.encode("utf-16"))
    assert export.read_prompts(path) == doc
