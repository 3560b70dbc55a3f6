"""`ml-100k` and `ml-1m`: GroupLens MovieLens ratings with movie titles and genres.

ml-100k: `u.data` (user, item, rating, unix time; tab-separated) and optional `u.item` (pipe-separated,
ISO-8859-1: id, title, dates, URL, 19 genre flags; genre names from `u.genre` when present).
ml-1m: `ratings.dat` (UserID::MovieID::Rating::Timestamp) and optional `movies.dat`
(MovieID::Title::Genre|Genre, ISO-8859-1). Genres become item attributes ("unknown" is dropped).
About half of ml-100k's consecutive ratings share a timestamp; the default tie-break keeps file order.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from paprec_cli.errors import DataFormatError
from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset
from paprec_datasets.common import (
    find_file,
    lines_frame,
    optional_file,
    read_delimited,
    read_text,
    source_of,
    take_options,
)

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
RATING_COLUMNS = {"user": pl.String, "item": pl.String, "rating": pl.Float64, "timestamp": pl.Int64}
DEFAULTS = {"encoding": "iso-8859-1"}


def _ratings(path: Path, sep: str, expected: str) -> pl.DataFrame:
    table = read_delimited(path, sep, RATING_COLUMNS, expected)
    return table.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("order")).drop("line")


def _genre_names(folder: Path, encoding: str) -> list[str]:
    path = optional_file(folder, ["u.genre"])
    if path is None:
        return list(GENRES_100K)
    frame = read_delimited(path, "|", {"name": pl.String, "id": pl.Int64}, "'name|id' per line", encoding)
    return [name for _, name in sorted(zip(frame["id"], frame["name"], strict=True))]


def load_100k(path: Path | None, options: ImportOptions) -> RawDataset:
    assert path is not None
    encoding = take_options(options, "ml-100k", DEFAULTS)["encoding"]
    data = find_file(path, ["u.data"], "ml-100k", "GroupLens u.data (+ u.item)")
    table = _ratings(data, "\t", "'user<TAB>item<TAB>rating<TAB>timestamp' with integer fields")
    sources = [source_of(data)]
    items = pl.DataFrame(schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)})
    item_path = optional_file(data.parent, ["u.item"])
    if item_path is not None:
        genres = _genre_names(data.parent, encoding)
        expected = f"'id|title|release|video release|URL|{len(genres)} genre flags' ({encoding})"
        frame = lines_frame(read_text(item_path, encoding, "--option encoding=NAME"))
        frame = frame.with_columns(pl.col("text").str.split("|").alias("fields"))
        bad = frame.filter(pl.col("fields").list.len() != 5 + len(genres))
        if bad.height:
            row = bad.row(0, named=True)
            raise DataFormatError(item_path, int(row["line"]), f"{len(row['fields'])} fields", expected)
        flags = [pl.when(pl.col("fields").list.get(5 + i) == "1").then(pl.lit(g)) for i, g in enumerate(genres)
                 if g != "unknown"]  # fmt: skip
        items = frame.select(
            pl.col("fields").list.get(0).alias("item"),
            pl.col("fields").list.get(1).alias("title"),
            pl.concat_list(flags).list.drop_nulls().alias("attributes"),
        )
        sources.append(source_of(item_path))
    return RawDataset(table, items, sources=sources, notes={"format": "GroupLens ml-100k"})


def load_1m(path: Path | None, options: ImportOptions) -> RawDataset:
    assert path is not None
    encoding = take_options(options, "ml-1m", DEFAULTS)["encoding"]
    data = find_file(path, ["ratings.dat"], "ml-1m", "GroupLens ratings.dat (+ movies.dat)")
    table = _ratings(data, "::", "'UserID::MovieID::Rating::Timestamp' with integer fields")
    sources = [source_of(data)]
    items = pl.DataFrame(schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)})
    movies = optional_file(data.parent, ["movies.dat"])
    if movies is not None:
        frame = read_delimited(
            movies, "::", {"item": pl.String, "title": pl.String, "genres": pl.String},
            f"'MovieID::Title::Genre|Genre' ({encoding})", encoding,
        )  # fmt: skip
        items = frame.select(
            "item", "title", pl.col("genres").str.split("|").list.eval(pl.element().filter(pl.element() != ""))
            .alias("attributes"),
        )  # fmt: skip
        sources.append(source_of(movies))
    return RawDataset(table, items, sources=sources, notes={"format": "GroupLens ml-1m"})


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
