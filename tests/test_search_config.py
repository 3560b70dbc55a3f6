"""`SearchConfig` validates itself on construction, on `replace` and when read back; its choices are the
str enums the CLI parses, so both accept and refuse the same values with the same one-line error."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from paprec_cli.choices import Evaluator, Init, Selection
from paprec_cli.errors import PaprecError
from paprec_cli.search.config import SearchConfig

BASE = {"task": "sequential", "dataset": "synthetic", "model": "/m"}


def test_strings_become_members_and_round_trip_as_strings() -> None:
    config = SearchConfig(**BASE, selection="loss", evaluator="beam", init="manual")  # type: ignore[arg-type]
    assert config.selection is Selection.LOSS and config.evaluator is Evaluator.BEAM and config.init is Init.MANUAL
    assert config.selection == "loss" and f"{config.init}" == "manual" and str(config.evaluator) == "beam"
    doc = json.loads(json.dumps(config.to_json()))
    assert (doc["selection"], doc["evaluator"], doc["init"]) == ("loss", "beam", "manual")
    assert SearchConfig.from_json(doc) == config


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"selection": "best"}, "--selection best: invalid value; expected surrogate, loss or rank"),
        ({"evaluator": "slow"}, "--evaluator slow: invalid value; expected fast or beam"),
        ({"init": "template"}, "--init template: invalid value; expected random or manual"),
        ({"top_k": 0}, "--top-k: invalid value; expected an integer >= 1"),
        ({"n_suffix": 0, "n_personal": 0}, "at least one trigger token"),
        ({"time_budget": 0.0}, "--time-budget"),
    ],
)
def test_bad_values_are_refused_on_construction_and_replace(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(PaprecError, match=needle.replace("+", r"\+")):
        SearchConfig(**BASE, **changes)  # type: ignore[arg-type]
    with pytest.raises(PaprecError, match=needle.replace("+", r"\+")):
        replace(SearchConfig(**BASE), **changes)  # type: ignore[arg-type]
    with pytest.raises(PaprecError):
        SearchConfig.from_json({**SearchConfig(**BASE).to_json(), **changes})
