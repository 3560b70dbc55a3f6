"""The recommendation language model: P5-style T5 backbone, tokenizer/codec, inference, checkpoints.

Contract: docs/CONTRACTS.md, section "Model". Names are re-exported lazily (PEP 562) because
importing transformers' T5 costs seconds; `from paprec_cli.model import X` imports only what X needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paprec_cli.model.backbone import RecLM
    from paprec_cli.model.batching import Batch, collate
    from paprec_cli.model.bundle import ModelBundle, create_model
    from paprec_cli.model.checkpoint import check_dataset, load_model, save_model
    from paprec_cli.model.codec import ID_SCHEMES, IdScheme, PromptCodec, build_codec
    from paprec_cli.model.encoded import EncodedPrompt
    from paprec_cli.model.inference import Recommender, default_device
    from paprec_cli.model.sizes import MODEL_SIZES

_EXPORTS = {
    "RecLM": "backbone",
    "Batch": "batching",
    "collate": "batching",
    "ModelBundle": "bundle",
    "create_model": "bundle",
    "check_dataset": "checkpoint",
    "load_model": "checkpoint",
    "save_model": "checkpoint",
    "ID_SCHEMES": "codec",
    "EncodedPrompt": "encoded",
    "IdScheme": "codec",
    "PromptCodec": "codec",
    "build_codec": "codec",
    "Recommender": "inference",
    "default_device": "inference",
    "MODEL_SIZES": "sizes",
}
__all__ = [
    "ID_SCHEMES",
    "MODEL_SIZES",
    "Batch",
    "EncodedPrompt",
    "IdScheme",
    "ModelBundle",
    "PromptCodec",
    "RecLM",
    "Recommender",
    "build_codec",
    "check_dataset",
    "collate",
    "create_model",
    "default_device",
    "load_model",
    "save_model",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'paprec_cli.model' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"paprec_cli.model.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
