"""`yelp`: P5's Yelp sequences (`sequential_data.txt` + optional `datamaps.json`, item attributes).

Users revisit businesses, so sequences repeat items; the loader keeps every visit.
"""

from __future__ import annotations

from pathlib import Path

from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset
from paprec_datasets.common import find_file, take_options
from paprec_datasets.p5 import load_p5

DEFAULTS = {"anonymous_attributes": "skip", "encoding": "auto"}


def load(path: Path | None, options: ImportOptions) -> RawDataset:
    assert path is not None
    values = take_options(options, "yelp", DEFAULTS)
    seq = find_file(path, ["sequential_data.txt", "Yelp.txt"], "yelp", "P5's sequential_data.txt")
    return load_p5(seq.parent, seq, "Yelp", values)


SPEC = DatasetSpec(
    name="yelp",
    description="Yelp (P5 split): user visit sequences over businesses, repeats included",
    files="a folder with sequential_data.txt [+ datamaps.json, item2attributes.json]",
    load=load,
    homepage="https://www.yelp.com/dataset",
)
