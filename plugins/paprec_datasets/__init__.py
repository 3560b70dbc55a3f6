"""Built-in datasets: synthetic (the embedded default), Amazon beauty/sports/toys, yelp, MovieLens, csv."""

from __future__ import annotations

from collections.abc import Callable

from paprec_cli.hookspecs import hookimpl
from paprec_cli.specs import DatasetSpec


def all_specs() -> list[DatasetSpec]:
    """Every built-in dataset, in the order `paprec data list` shows them."""
    from paprec_datasets import amazon, csv_dataset, movielens, synthetic, yelp

    return [synthetic.SPEC, *amazon.SPECS, yelp.SPEC, movielens.SPEC_100K, movielens.SPEC_1M, csv_dataset.SPEC]


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    for spec in all_specs():
        register(spec)
