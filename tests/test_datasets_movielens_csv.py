"""MovieLens and csv loaders on small files written here in the GroupLens / user formats."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from paprec_datasets import csv_dataset, movielens

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.specs import ImportOptions

FLAGS = "|".join(["0"] * 19)


def write_100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("1\t10\t4\t100\n1\t20\t5\t100\n2\t10\t3\t90\n")
    flags_10 = FLAGS[:2] + "1" + FLAGS[3:]  # Action
    item = f"10|Les Misérables (1995)|01-Jan-1995||http://x|{flags_10}\n20|Toy Story (1995)|01-Jan-1995||http://y|{FLAGS}\n"
    (folder / "u.item").write_bytes(item.encode("iso-8859-1"))
    return folder


def test_ml_100k_reads_ratings_titles_and_latin1_genres(tmp_path: Path) -> None:
    raw = movielens.SPEC_100K.load(write_100k(tmp_path / "ml"), ImportOptions())
    assert raw.interactions.height == 3
    assert raw.interactions["rating"].to_list() == [4.0, 5.0, 3.0]
    assert raw.interactions["timestamp"].to_list() == [100, 100, 90]
    row = raw.items.filter(pl.col("item") == "10").row(0, named=True)
    assert row["title"] == "Les Misérables (1995)" and row["attributes"] == ["Action"]
    assert raw.items.filter(pl.col("item") == "20")["attributes"].to_list() == [[]]


def test_ml_100k_malformed_line(tmp_path: Path) -> None:
    folder = write_100k(tmp_path / "ml")
    (folder / "u.data").write_text("1\t10\t4\t100\n1\t20\t5\n")
    with pytest.raises(DataFormatError, match=r"u.data:2: '1 20 5' has too few fields; expected 'user<TAB>"):
        movielens.SPEC_100K.load(folder, ImportOptions())
    (folder / "u.data").write_text("1\t10\tfour\t100\n")
    with pytest.raises(DataFormatError, match=r"u.data:1: .* non-numeric rating"):
        movielens.SPEC_100K.load(folder, ImportOptions())
    for value in ("nan", "inf", "-Infinity"):  # they parse as floats: a silent NaN / infinite rating
        (folder / "u.data").write_text(f"1\t10\t4\t100\n2\t20\t{value}\t100\n")
        with pytest.raises(DataFormatError, match=r"u.data:2: .* has a rating that is not a finite number"):
            movielens.SPEC_100K.load(folder, ImportOptions())


def test_ml_1m_double_colon_format(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    movies = "1193::Café (1975)::Drama\n661::James (1996)::Animation|Children's\n"
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    raw = movielens.SPEC_1M.load(folder, ImportOptions())
    assert raw.interactions["item"].to_list() == ["1193", "661"]
    items = dict(zip(raw.items["item"], raw.items["attributes"].to_list(), strict=True))
    assert items["661"] == ["Animation", "Children's"]
    assert raw.items.filter(pl.col("item") == "1193")["title"][0] == "Café (1975)"
    with pytest.raises(PaprecError, match="no ratings.dat in this folder"):
        movielens.SPEC_1M.load(tmp_path, ImportOptions())


def _csv(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_csv_defaults_and_optional_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'user,item,rating,timestamp,title\nu1,i1,4,10,"a, b"\nu1,i2,3.5,11,c\n\nu2,i1,,12,d\n')
    raw = csv_dataset.SPEC.load(path, ImportOptions())
    table = raw.interactions
    assert table["user"].to_list() == ["u1", "u1", "u2"]
    assert table["rating"].to_list() == [4.0, 3.5, None]
    assert table["timestamp"].to_list() == [10, 11, 12]
    only_pairs = csv_dataset.SPEC.load(_csv(tmp_path, "user,item\nu1,i1\n", "p.csv"), ImportOptions())
    assert only_pairs.interactions.columns == ["user", "item", "order"]


def test_csv_column_names_and_separator_options(tmp_path: Path) -> None:
    path = _csv(tmp_path, "who;what;stars\nu1;i1;5\nu2;i1;1\n")
    opts = {"user_col": "who", "item_col": "what", "rating_col": "stars", "sep": ";"}
    raw = csv_dataset.SPEC.load(path, ImportOptions(extra=opts))
    assert raw.interactions["rating"].to_list() == [5.0, 1.0]
    tsv = _csv(tmp_path, "user\titem\nu1\ti1\n", "d.tsv")
    assert csv_dataset.SPEC.load(tsv, ImportOptions(extra={"sep": "tab"})).interactions.height == 1


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("user,item,user\nu1,i1,u1\n", {}, r"data.csv:1: column 'user' appears twice in the header"),
        ("user,item\nu1,i1\nuser,item\nu2,i2\n", {}, r"data.csv:3: the header appears again"),
        ("user,item,rating\nu1,i1,5\nu2,i2\n", {}, r"data.csv:3: 'u2,i2' has 2 fields; expected 3 fields"),
        ("user,item,rating\nu1,i1,5\nu2,i2,great\n", {}, r"data.csv:3: rating 'great' is not a number"),
        ("user,item,rating\nu1,i1,5\nu2,i2,nan\n", {}, r"data.csv:3: rating 'nan' is not a finite number"),
        ("user,item,rating\nu1,i1,-inf\nu2,i2,4\n", {}, r"data.csv:2: rating '-inf' is not a finite number"),
        ("user,item\nu1,i1\n,i2\n", {}, r"data.csv:3: ',i2' has an empty user"),
        ("uid,iid\nu1,i1\n", {}, r"data.csv:1: no column 'user' \(--option user_col\)"),
        ("user,item\nu1,i1\n", {"rating_col": "stars"}, r"no column 'stars' \(--option rating_col\)"),
        (b"user,item\nu1,i\xe9\n", {}, r"data.csv:2: byte 0xe9 is not valid utf-8.*--option encoding"),
        ("", {}, r"data.csv: the file is empty"),
    ],
)
def test_csv_bad_input(tmp_path: Path, text: str | bytes, extra: dict[str, str], message: str) -> None:
    with pytest.raises(PaprecError, match=message):
        csv_dataset.SPEC.load(_csv(tmp_path, text), ImportOptions(extra=extra))


def test_csv_encoding_option_reads_latin1(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user,item\nu1,caf\xe9\n".encode("latin-1"))
    raw = csv_dataset.SPEC.load(path, ImportOptions(extra={"encoding": "iso-8859-1"}))
    assert raw.interactions["item"].to_list() == ["café"]


def test_every_loader_passes_a_finite_rating_check() -> None:
    """A plugin that hands over a NaN rating is refused by the core (`data.table.normalise`), naming the record."""
    from paprec_cli.data.table import normalise
    from paprec_cli.specs import RawDataset

    table = pl.DataFrame({"user": ["u1", "u2"], "item": ["i1", "i2"], "rating": [4.0, float("nan")]})
    with pytest.raises(PaprecError, match=r"dataset 'mine': 1 rating\(s\) are not finite numbers \(first: user u2, "
                                          r"item i2, rating nan\)"):
        normalise(RawDataset(table, pl.DataFrame()), "mine")
    fine = normalise(RawDataset(table.with_columns(pl.Series("rating", [4.0, None])), pl.DataFrame()), "mine")
    assert fine.interactions["rating"].to_list() == [4.0, None]
