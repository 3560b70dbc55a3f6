"""`--protocol paper` is today's search exactly; the protocol options are recorded and checked.

The expected file `tests/data/paper_protocol_prompts.json` was written by main (commit cfc650d, before
`--protocol` existed) with `_paper_document` below: the same deterministic 40-user synthetic dataset and
untrained tiny model (seed 0) as test_search_model.py, searched with the defaults of that time. Only the
model folder (a temporary path) and the search's wall-clock seconds are left out of the comparison.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_search_model import make_home

EXPECTED = Path(__file__).parent / "data" / "paper_protocol_prompts.json"


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))  # plain JSON types, as written to prompts.json
    doc.pop("model")
    doc["search"].pop("seconds")
    return doc


def _paper_document(root: Path, **options: Any) -> dict[str, Any]:
    from paprec_cli.plugins import load_registry
    from paprec_cli.search import runner
    from paprec_cli.search.config import SearchConfig

    home = make_home(root)
    config = SearchConfig(task="sequential", dataset="synthetic", model=str(home.model_dir("synthetic-tiny-atomic")),
                          n_prefix=1, n_suffix=2, n_personal=1, grad_examples=24, batch_size=16, max_rounds=3,
                          seed=0, **options)
    session = runner.prepare(config, load_registry(), home, "cpu")
    state = runner.search(session, None, None)
    return _comparable(runner.finalize(session, None, state))
