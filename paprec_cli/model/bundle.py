"""A model together with its codec and the facts that describe it (what `config.json` records)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paprec_cli import __version__
from paprec_cli.model.backbone import RecLM, build_model, config_dims, t5_config
from paprec_cli.model.codec import PromptCodec
from paprec_cli.model.sizes import resolve_dims

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject, JSONValue

CONFIG_FORMAT = "paprec-model"
CONFIG_VERSION = 1


@dataclass
class ModelBundle:
    """`config` is the content of `config.json`; `folder` is where it was loaded from or saved to."""

    model: RecLM
    codec: PromptCodec
    config: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    @property
    def id_scheme(self) -> str:
        return self.codec.id_scheme


def describe(model: RecLM, codec: PromptCodec, size: str, **extra: JSONValue) -> JSONObject:
    """The `config.json` content for a model: sizes, id scheme, dataset, versions."""
    return {
        "format": CONFIG_FORMAT,
        "format_version": CONFIG_VERSION,
        "paprec_version": __version__,
        "size": size,
        "dims": config_dims(model.config),
        "vocab_size": int(model.config.vocab_size),
        "id_scheme": codec.id_scheme,
        "tokenizer_sha256": codec.tokenizer_sha256,
        "dataset": {
            "name": codec.dataset_name,
            "fingerprint": codec.dataset_fingerprint,
            "n_users": codec.n_users,
            "n_items": codec.n_items,
        },
        **extra,
    }


def create_model(
    size_or_dims: str | Mapping[str, int | float | str],
    codec: PromptCodec,
    seed: int = 0,
    *,
    dropout: float | None = None,
) -> ModelBundle:
    """A freshly initialised (seeded) model sized for `codec`'s vocabulary, as a bundle without a folder."""
    size, dims = resolve_dims(size_or_dims)
    config = t5_config(dims, codec.vocab_size, pad_id=codec.pad_id, eos_id=codec.eos_id, dropout=dropout)
    model = build_model(config, seed)
    return ModelBundle(model, codec, describe(model, codec, size, seed=seed, init="scratch"))
