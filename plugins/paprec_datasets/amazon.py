"""`beauty`, `sports`, `toys`: Amazon 5-core, from P5/S3-Rec files or McAuley's raw 2014, 2018 or 2023 files.

`--from` is a folder (or one of the files). A folder with `sequential_data.txt` is read as P5/S3-Rec
(see `p5.py`); a folder with McAuley's review file of the category as raw reviews (see `mcauley.py`):
2014 `reviews_<Category>_5.json.gz`, 2018 `<Category>_5.json[.gz]`, 2023 `<Category>.jsonl[.gz]`, each
with its optional `meta_<Category>.*` file of the same release. The category names per dataset are in
`CATEGORIES` (the 2018 and 2023 releases renamed Beauty). When P5 and raw files are both there, P5
wins (its ids and sequences are the published reference) unless `--option format=raw`. Sports'
S3-Rec attribute ids have no names: they are skipped by default. `--option encoding=NAME` overrides
the shared reader's decoding of every file (`paprec_cli.textio`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from paprec_cli.errors import PaprecError
from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset
from paprec_datasets.common import int_option, optional_file, take_options
from paprec_datasets.mcauley import load_raw
from paprec_datasets.p5 import load_p5

DEFAULTS = {"format": "auto", "anonymous_attributes": "skip", "core": "5", "encoding": "auto"}
FORMATS = ("auto", "p5", "raw")
#: dataset -> (2014 category, 2018 categories, 2023 categories), from the releases' file lists.
CATEGORIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "beauty": ("Beauty", ("All_Beauty", "Luxury_Beauty"), ("All_Beauty", "Beauty_and_Personal_Care")),
    "sports": ("Sports_and_Outdoors", ("Sports_and_Outdoors",), ("Sports_and_Outdoors",)),
    "toys": ("Toys_and_Games", ("Toys_and_Games",), ("Toys_and_Games",)),
}


def p5_names(stem: str) -> list[str]:
    return ["sequential_data.txt", f"{stem}.txt"]


def review_names(dataset: str) -> list[tuple[str, list[str]]]:
    """(review file name, its meta file names) of every release, 2014 first."""
    c2014, c2018, c2023 = CATEGORIES[dataset]
    names = [(f"reviews_{c2014}_5.json.gz", [f"meta_{c2014}.json.gz"])]
    for category in c2018:
        meta = [f"meta_{category}.json.gz", f"meta_{category}.json"]
        names += [(f"{category}_5.json.gz", meta), (f"{category}_5.json", meta)]
    for category in c2023:
        meta = [f"meta_{category}.jsonl.gz", f"meta_{category}.jsonl"]
        names += [(f"{category}.jsonl.gz", meta), (f"{category}.jsonl", meta)]
    return names


def meta_for(review: Path, dataset: str) -> Path | None:
    """The meta file of the same release next to `review` (by name), if present."""
    for name, metas in review_names(dataset):
        if review.name == name:
            return optional_file(review.parent, metas)
    stem = review.name.split(".", 1)[0].removeprefix("reviews_").removesuffix("_5")
    return optional_file(review.parent, [f"meta_{stem}.json.gz", f"meta_{stem}.json", f"meta_{stem}.jsonl.gz",
                                          f"meta_{stem}.jsonl"])  # fmt: skip


def find_reviews(folder: Path, dataset: str) -> Path | None:
    """The one review file of `dataset` in `folder`; several (e.g. 2018 and 2023) are an error."""
    found = [folder / name for name, _ in review_names(dataset) if (folder / name).is_file()]
    if len(found) > 1:
        listing = ", ".join(p.name for p in found)
        raise PaprecError(f"--from {folder}: several review files ({listing}); point --from at the one to import")
    return found[0] if found else None


def load_amazon(dataset: str, stem: str, path: Path | None, options: ImportOptions) -> RawDataset:
    """Pick the P5 or raw reader from what `path` holds."""
    assert path is not None
    values = take_options(options, dataset, DEFAULTS)
    fmt = values["format"]
    if fmt not in FORMATS:
        raise PaprecError(f"--option format={fmt}: expected one of {', '.join(FORMATS)}")
    core = int_option(values, "core", 1)
    declared = None if values["encoding"] in ("", "auto") else values["encoding"]
    first = review_names(dataset)[0][0]
    known = " or ".join(dict.fromkeys(n for n, _ in review_names(dataset) if not n.endswith(".json")))
    if path.is_file() and path.name.startswith("meta_"):
        raise PaprecError(f"--from {path}: this is a meta file; point --from at the folder or at the review file")
    if path.is_file():
        folder = path.parent
        is_raw = path.name.endswith((".json.gz", ".json", ".jsonl", ".jsonl.gz"))
        seq = None if is_raw else path
        reviews = path if is_raw else None
    else:
        folder = path
        seq = optional_file(folder, p5_names(stem))
        reviews = find_reviews(folder, dataset)
    if fmt == "raw" or (fmt == "auto" and seq is None and reviews is not None):
        if reviews is None:
            raise PaprecError(f"--from {path}: no {known}; dataset '{dataset}' --option format=raw needs one")
        return load_raw(reviews, meta_for(reviews, dataset), core, declared)
    if seq is None:
        raise PaprecError(
            f"--from {path}: no sequential_data.txt (P5/S3-Rec) or {first} (McAuley 2014; or 2018/2023: {known}) "
            f"in this folder; dataset '{dataset}' needs one of them"
        )
    return load_p5(folder, seq, stem, values)


def spec(name: str, stem: str, label: str) -> DatasetSpec:
    c2014, c2018, c2023 = CATEGORIES[name]
    return DatasetSpec(
        name=name,
        description=f"Amazon {label} 5-core: P5/S3-Rec sequences or McAuley raw reviews (2014/2018/2023) with ratings",
        files=f"a folder with sequential_data.txt [+ datamaps.json, item2attributes.json] "
        f"or McAuley's reviews_{c2014}_5.json.gz (2014), {c2018[0]}_5.json.gz (2018) or {c2023[0]}.jsonl (2023) "
        f"[+ the release's meta_<Category> file]",
        load=partial(load_amazon, name, stem),
        homepage="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html",
    )


SPECS = [
    spec("beauty", "Beauty", "Beauty"),
    spec("sports", "Sports_and_Outdoors", "Sports and Outdoors"),
    spec("toys", "Toys_and_Games", "Toys and Games"),
]
