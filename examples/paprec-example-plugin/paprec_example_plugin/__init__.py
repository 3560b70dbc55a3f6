"""An example paprec plugin: registers the tiny generated dataset `example-toy`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from paprec_cli.errors import PaprecError
from paprec_cli.hookspecs import hookimpl
from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset

FRUITS = ("apple", "banana", "cherry", "grape", "kiwi", "lemon", "mango", "melon", "peach", "plum")
USERS = 12
PER_USER = 5


def load(path: Path | None, options: ImportOptions) -> RawDataset:
    """Each user walks along the fruit list from their own start; ratings favour even positions."""
    if path is not None:
        raise PaprecError("dataset 'example-toy' is built in and takes no --from")
    if options.extra:
        raise PaprecError(f"dataset 'example-toy' has no options (got {', '.join(sorted(options.extra))})")
    rows = []
    for user in range(USERS):
        for step in range(PER_USER):
            fruit = (user + options.seed + 2 * step) % len(FRUITS)
            rows.append((f"user{user}", FRUITS[fruit], float(5 - fruit % 2 * 2), 1000 * user + step))
    table = pl.DataFrame(rows, schema=["user", "item", "rating", "timestamp"], orient="row")
    items = pl.DataFrame({"item": list(FRUITS), "title": [f.title() for f in FRUITS],
                          "attributes": [["fruit"] for _ in FRUITS]})  # fmt: skip
    return RawDataset(table, items, notes={"generator": "paprec_example_plugin"})


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(
        DatasetSpec(
            name="example-toy",
            description="Example plugin: 12 users and 10 fruits, built in",
            files="nothing (built in)",
            load=load,
            needs_files=False,
        )
    )
