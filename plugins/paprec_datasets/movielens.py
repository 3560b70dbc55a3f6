"""`ml-100k` and `ml-1m`: GroupLens MovieLens ratings with movie titles and genres.

ml-100k: `u.data` (user, item, rating, unix time; tab-separated) and optional `u.item` (pipe-separated,
ISO-8859-1: id, title, dates, URL, 19 genre flags; genre names from `u.genre` when present).
ml-1m: `ratings.dat` (UserID::MovieID::Rating::Timestamp) and optional `movies.dat`
(MovieID::Title::Genre|Genre, ISO-8859-1). Genres become item attributes ("unknown" is dropped).
About half of ml-100k's consecutive ratings share a timestamp; the default tie-break keeps file order.

Every file goes through the shared reader (`paprec_cli.textio`): a BOM decides, valid UTF-8 is read as
UTF-8, and ISO-8859-1 (GroupLens' encoding) is the fallback only for bytes that are not UTF-8;
`--option encoding=NAME` overrides all of it. User and item ids are integers (GroupLens' README):
'abc' or '3.0' is an error at file:line, and when the catalogue file (`u.item` / `movies.dat`) is
present, a rated item it does not list is an error at the ratings file's line.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from paprec_cli.errors import DataFormatError
from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset
from paprec_datasets.common import (
    find_file,
    first_line,
    lines_frame,
    optional_file,
    read_delimited,
    read_text,
    shorten,
    source_of,
    take_options,
)

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
RATING_COLUMNS = {"user": pl.String, "item": pl.String, "rating": pl.Float64, "timestamp": pl.Int64}
DEFAULTS = {"encoding": "auto"}
FALLBACK = "iso-8859-1"
HINT = "--option encoding=NAME"
_INTEGER_ID = r"^[0-9]+$"


def _declared(values: dict[str, str]) -> str | None:
    return None if values["encoding"] in ("", "auto") else values["encoding"]


def _ratings(path: Path, sep: str, expected: str, declared: str | None) -> tuple[pl.DataFrame, str]:
    table, encoding = read_delimited(path, sep, RATING_COLUMNS, expected, declared, option_hint=HINT, fallback=FALLBACK,
                                     max_fields=len(RATING_COLUMNS))  # fmt: skip
    table = integer_ids(table, path, ("user", "item"), expected)
    check_ratings(table, path, expected)
    return table.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("order")), encoding


def integer_ids(table: pl.DataFrame, path: Path, columns: tuple[str, ...], expected: str) -> pl.DataFrame:
    """GroupLens ids are positive integers written as digits: 'abc', '3.0' or '-1' is an error at its line.
    Returns `table` with those ids in canonical decimal form ('0196' and '196' are one user)."""
    for column in columns:
        bad = first_line(table, ~pl.col(column).str.contains(_INTEGER_ID))
        if bad is not None:
            value = table.filter(pl.col("line") == bad[0])[column][0]
            what = f"{column} id '{shorten(str(value))}' is not a positive integer"
            raise DataFormatError(path, bad[0], what, expected)
    return table.with_columns(pl.col(c).str.strip_chars_start("0").replace("", "0") for c in columns)


def check_ratings(table: pl.DataFrame, path: Path, expected: str) -> None:
    """MovieLens ratings are whole stars 1-5 (GroupLens' README): another value is an error at its line."""
    bad = first_line(table, ~pl.col("rating").is_in([1.0, 2.0, 3.0, 4.0, 5.0]))
    if bad is not None:
        value = table.filter(pl.col("line") == bad[0])["rating"][0]
        raise DataFormatError(path, bad[0], f"rating {value} is not a whole star 1-5", expected)


def check_catalogue(table: pl.DataFrame, items: pl.DataFrame, path: Path, catalogue: Path) -> None:
    """Every rated item must be listed in the catalogue file; the first one that is not names its line."""
    missing = table.join(items.select("item"), on="item", how="anti").sort("line")
    if missing.height:
        row = missing.row(0, named=True)
        raise DataFormatError(
            path, int(row["line"]), f"item {row['item']} is not in {catalogue.name}",
            f"ratings of the movies {catalogue.name} lists (is {catalogue.name} from the same release?)",
        )  # fmt: skip


def _genre_names(folder: Path, declared: str | None) -> tuple[list[str], Path | None, str | None]:
    path = optional_file(folder, ["u.genre"])
    if path is None:
        return list(GENRES_100K), None, None
    frame, encoding = read_delimited(
        path, "|", {"name": pl.String, "id": pl.Int64}, "'name|id' per line", declared, option_hint=HINT,
        fallback=FALLBACK,
    )  # fmt: skip
    return [name for _, name in sorted(zip(frame["id"], frame["name"], strict=True))], path, encoding


def load_100k(path: Path | None, options: ImportOptions) -> RawDataset:
    assert path is not None
    declared = _declared(take_options(options, "ml-100k", DEFAULTS))
    data = find_file(path, ["u.data"], "ml-100k", "GroupLens u.data (+ u.item)")
    table, data_encoding = _ratings(data, "\t", "'user<TAB>item<TAB>rating<TAB>timestamp' with integer fields",
                                    declared)  # fmt: skip
    sources = [source_of(data, data_encoding)]
    items = pl.DataFrame(schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)})
    item_path = optional_file(data.parent, ["u.item"])
    if item_path is not None:
        genres, genre_path, genre_encoding = _genre_names(data.parent, declared)
        expected = f"'id|title|release|video release|URL|{len(genres)} genre flags'"
        decoded = read_text(item_path, declared, HINT, FALLBACK)
        frame = lines_frame(decoded.text)
        frame = frame.with_columns(pl.col("text").str.split("|").alias("fields"))
        bad = frame.filter(pl.col("fields").list.len() != 5 + len(genres))
        if bad.height:
            row = bad.row(0, named=True)
            raise DataFormatError(item_path, int(row["line"]), f"{len(row['fields'])} fields", expected)
        flags = [pl.when(pl.col("fields").list.get(5 + i) == "1").then(pl.lit(g)) for i, g in enumerate(genres)
                 if g != "unknown"]  # fmt: skip
        frame = frame.with_columns(pl.col("fields").list.get(0).str.strip_chars().alias("item"))
        frame = integer_ids(frame, item_path, ("item",), expected)
        items = frame.select(
            "item",
            pl.col("fields").list.get(1).alias("title"),
            pl.concat_list(flags).list.drop_nulls().alias("attributes"),
        )
        check_catalogue(table, items, data, item_path)
        sources.append(source_of(item_path, decoded.encoding))
        if genre_path is not None:
            sources.append(source_of(genre_path, genre_encoding))
    notes = {"format": "GroupLens ml-100k", "encoding": data_encoding}
    return RawDataset(table.drop("line"), items, sources=sources, notes=notes)


def load_1m(path: Path | None, options: ImportOptions) -> RawDataset:
    assert path is not None
    declared = _declared(take_options(options, "ml-1m", DEFAULTS))
    data = find_file(path, ["ratings.dat"], "ml-1m", "GroupLens ratings.dat (+ movies.dat)")
    table, data_encoding = _ratings(data, "::", "'UserID::MovieID::Rating::Timestamp' with integer fields", declared)
    sources = [source_of(data, data_encoding)]
    items = pl.DataFrame(schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)})
    movies = optional_file(data.parent, ["movies.dat"])
    if movies is not None:
        expected = "'MovieID::Title::Genre|Genre'"
        frame, movies_encoding = read_delimited(
            movies, "::", {"item": pl.String, "title": pl.String, "genres": pl.String}, expected, declared,
            option_hint=HINT, fallback=FALLBACK, max_fields=3,
        )  # fmt: skip
        frame = integer_ids(frame, movies, ("item",), expected)
        items = frame.select(
            "item", "title", pl.col("genres").str.split("|").list.eval(pl.element().filter(pl.element() != ""))
            .alias("attributes"),
        )  # fmt: skip
        check_catalogue(table, items, data, movies)
        sources.append(source_of(movies, movies_encoding))
    notes = {"format": "GroupLens ml-1m", "encoding": data_encoding}
    return RawDataset(table.drop("line"), items, sources=sources, notes=notes)


SPEC_100K = DatasetSpec(
    name="ml-100k",
    description="MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings 1-5 with timestamps; genres",
    files="the ml-100k folder (u.data, optional u.item and u.genre)",
    load=load_100k,
    homepage="https://grouplens.org/datasets/movielens/100k/",
)
SPEC_1M = DatasetSpec(
    name="ml-1m",
    description="MovieLens 1M: 6,040 users, 3,706 movies, 1,000,209 ratings 1-5 with timestamps; genres",
    files="the ml-1m folder (ratings.dat, optional movies.dat)",
    load=load_1m,
    homepage="https://grouplens.org/datasets/movielens/1m/",
)
