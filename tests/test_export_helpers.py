"""Builders for the export, eval and recommend tests: a hand-made prompts document, a fake codec, and a
prompts document bound to the tiny synthetic model of `helpers.make_home`.

Imported by `test_export*`, `test_eval_cmd*` and `test_recommend*` (pytest puts `tests/` on sys.path).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paprec_cli import export
from paprec_cli.paths import Home


def sample_document() -> dict[str, Any]:
    """A hand-made prompts document with the awkward cases: a raw id with leading zeros, a user with a
    raw id but no personal tokens, token texts with commas, quotes and non-ASCII characters."""
    return {
        "format": "paprec-prompts/1",
        "task": "sequential",
        "dataset": "synthetic",
        "dataset_fingerprint": "d" * 16,
        "model": "/models/tiny",
        "model_fingerprint": "m" * 16,
        "id_scheme": "atomic",
        "layout": {
            "n_prefix": 1,
            "n_suffix": 2,
            "n_personal": 1,
            "template": "[prefix] {argument} [suffix] [personal]",
        },
        "manual_template": "2-3",
        "initial": {
            "prefix": [{"id": 7, "text": "▁old"}],
            "suffix": [{"id": 8, "text": "▁a"}, {"id": 9, "text": "▁b"}],
            "personal": [{"id": 10, "text": "▁c"}],
        },
        "shared": {
            "prefix": [{"id": 11, "text": "▁buy"}],
            "suffix": [{"id": 12, "text": "▁cheap"}, {"id": 13, "text": '▁"odd,one"'}],
            "personal_default": [{"id": 10, "text": "▁c"}],
        },
        "personal": {
            "1": [{"id": 14, "text": "▁café"}],
            "2": [{"id": 15, "text": "▁red"}],
            "10": [{"id": 16, "text": "▁blue"}],
        },
        "users": {"1": "007", "2": "u2", "10": "u,10", "3": "no-tokens"},
        "surrogate": {"initial": 0.1, "shared": 0.25, "personalized": 0.3125, "manual": 0.2},
        "results": {
            "manual": {"validation": {"HR@5": 0.1}, "test": {"HR@5": 0.12, "NDCG@5": 0.07}},
            "shared": {"validation": {"HR@5": 0.2}, "test": {"HR@5": 0.21, "NDCG@5": 0.1}},
            "personalized": {"validation": {"HR@5": 0.3}, "test": {"HR@5": 0.33, "NDCG@5": 0.2}},
        },
        "search": {"rounds": 4, "stop_reason": "converged", "seconds": 1.5, "seed": 0},
    }


class FakeCodec:
    """Maps the sample document's texts to their ids (what a matching model's tokenizer does)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.ids = {t["text"]: t["id"] for _, tokens in export.token_lists(doc) for t in tokens}

    def token_id(self, text: str) -> int:
        return self.ids[text]


def tiny_home(root: Path) -> Home:
    """The search tests' home: a 40-user synthetic dataset and an untrained tiny model."""
    from helpers import make_home

    return make_home(root)


def tiny_document(home: Home, personal_users: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """A prompts document for the tiny model, written the way the search writes it (search.result)."""
    from paprec_cli.data.store import load_dataset
    from paprec_cli.model import load_model
    from paprec_cli.registry import model_fingerprint
    from paprec_cli.search.layout import Layout, PromptTokens
    from paprec_cli.search.result import prompts_document

    folder = home.model_dir("synthetic-tiny-atomic")
    bundle = load_model(folder, home)
    data = load_dataset(home, "synthetic")
    vocab = [int(t) for t in bundle.codec.candidate_vocab()]
    final = PromptTokens(
        shared=(vocab[3], vocab[4]),
        personal_default=(vocab[2],),
        personal={u: (vocab[5 + i],) for i, u in enumerate(personal_users)},
    )
    return prompts_document(
        codec=bundle.codec,
        layout=Layout(0, 2, 1),
        task="sequential",
        dataset="synthetic",
        dataset_fingerprint=data.fingerprint,
        model=str(folder),
        model_fingerprint=model_fingerprint(bundle),
        manual_template="2-3",
        initial=PromptTokens(shared=(vocab[0], vocab[1]), personal_default=(vocab[2],)),
        final=final,
        raw_users={u: data.user_raw_id(u) for u in personal_users},
        surrogate={"initial": 0.0, "shared": 0.1, "personalized": 0.2, "manual": 0.1},
        results={},
        search={"rounds": 1, "stop_reason": "converged", "seconds": 0.1, "seed": 0},
    )


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


__all__ = ["FakeCodec", "sample_document", "tiny_document", "tiny_home", "write_json"]
