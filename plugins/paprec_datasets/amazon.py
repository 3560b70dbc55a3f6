"""`beauty`, `sports`, `toys`: Amazon 2014 5-core, from P5/S3-Rec files or McAuley's raw files.

`--from` is a folder (or one of the files). A folder with `sequential_data.txt` is read as P5/S3-Rec
(see `p5.py`); a folder with `reviews_<Category>_5.json.gz` as McAuley's raw files (see `mcauley.py`).
When both are there, P5 wins (its ids and sequences are the published reference) unless
`--option format=raw`. Sports' S3-Rec attribute ids have no names: they are skipped by default.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from paprec_cli.errors import PaprecError
from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset
from paprec_datasets.common import int_option, optional_file, take_options
from paprec_datasets.mcauley import load_raw
from paprec_datasets.p5 import load_p5

DEFAULTS = {"format": "auto", "anonymous_attributes": "skip", "core": "5"}
FORMATS = ("auto", "p5", "raw")


def p5_names(stem: str) -> list[str]:
    return ["sequential_data.txt", f"{stem}.txt"]


def load_amazon(dataset: str, stem: str, category: str, path: Path | None, options: ImportOptions) -> RawDataset:
    """Pick the P5 or raw reader from what `path` holds."""
    assert path is not None
    values = take_options(options, dataset, DEFAULTS)
    fmt = values["format"]
    if fmt not in FORMATS:
        raise PaprecError(f"--option format={fmt}: expected one of {', '.join(FORMATS)}")
    core = int_option(values, "core", 1)
    reviews_name, meta_name = f"reviews_{category}_5.json.gz", f"meta_{category}.json.gz"
    if path.is_file() and path.name.startswith("meta_"):
        raise PaprecError(f"--from {path}: this is a meta file; point --from at the folder or at {reviews_name}")
    if path.is_file():
        folder = path.parent
        is_raw = path.name.endswith(".json.gz") and not path.name.startswith("meta_")
        seq = None if is_raw else path
        reviews = path if is_raw else None
    else:
        folder = path
        seq = optional_file(folder, p5_names(stem))
        reviews = optional_file(folder, [reviews_name])
    if fmt == "raw" or (fmt == "auto" and seq is None and reviews is not None):
        if reviews is None:
            raise PaprecError(f"--from {path}: no {reviews_name}; dataset '{dataset}' --option format=raw needs it")
        meta = optional_file(folder, [meta_name])
        return load_raw(reviews, meta, core)
    if seq is None:
        raise PaprecError(
            f"--from {path}: no sequential_data.txt (P5/S3-Rec) or {reviews_name} (McAuley raw) in this folder; "
            f"dataset '{dataset}' needs one of them"
        )
    return load_p5(folder, seq, stem, values)


def spec(name: str, stem: str, category: str, label: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        description=f"Amazon {label} 5-core (2014): P5/S3-Rec sequences or McAuley raw reviews with ratings",
        files=f"a folder with sequential_data.txt [+ datamaps.json, item2attributes.json] "
        f"or reviews_{category}_5.json.gz [+ meta_{category}.json.gz]",
        load=partial(load_amazon, name, stem, category),
        homepage="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html",
    )


SPECS = [
    spec("beauty", "Beauty", "Beauty", "Beauty"),
    spec("sports", "Sports_and_Outdoors", "Sports_and_Outdoors", "Sports and Outdoors"),
    spec("toys", "Toys_and_Games", "Toys_and_Games", "Toys and Games"),
]
