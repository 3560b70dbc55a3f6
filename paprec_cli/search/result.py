"""The `prompts.json` document (format `paprec-prompts/1`; schema in docs/RUNS.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from paprec_cli.search.layout import Layout, PromptTokens

if TYPE_CHECKING:
    from paprec_cli.model.codec import PromptCodec

FORMAT = "paprec-prompts/1"


def token_list(codec: PromptCodec, ids: Iterable[int]) -> list[dict[str, int | str]]:
    return [{"id": int(t), "text": str(codec.token_text(int(t)))} for t in ids]


def split_shared(codec: PromptCodec, layout: Layout, tokens: PromptTokens) -> dict[str, list[dict[str, int | str]]]:
    return {
        "prefix": token_list(codec, tokens.shared[: layout.n_prefix]),
        "suffix": token_list(codec, tokens.shared[layout.n_prefix :]),
    }


def prompts_document(*, codec: PromptCodec, layout: Layout, task: str, dataset: str, dataset_fingerprint: str,
                     model: str, model_fingerprint: str, manual_template: str, initial: PromptTokens,
                     final: PromptTokens, raw_users: Mapping[int, str], surrogate: dict[str, float],
                     results: dict[str, Any], search: dict[str, Any]) -> dict[str, Any]:
    personal = {str(u): token_list(codec, ids) for u, ids in sorted(final.personal.items())}
    return {
        "format": FORMAT,
        "task": task,
        "dataset": dataset,
        "dataset_fingerprint": dataset_fingerprint,
        "model": model,
        "model_fingerprint": model_fingerprint,
        "id_scheme": codec.id_scheme,
        "layout": layout.as_json(),
        "manual_template": manual_template,
        "initial": {**split_shared(codec, layout, initial), "personal": token_list(codec, initial.personal_default)},
        "shared": {**split_shared(codec, layout, final),
                   "personal_default": token_list(codec, final.personal_default)},
        "personal": personal,
        "users": {str(u): raw_users.get(u, str(u)) for u in sorted(final.personal)},
        "surrogate": surrogate,
        "results": results,
        "search": search,
    }
