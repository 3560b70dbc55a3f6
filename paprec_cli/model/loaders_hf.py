"""Hugging Face T5 folders (`save_pretrained` layout) as initialisation for paprec.

`config.json` + `model.safetensors` (or `pytorch_model.bin`, read with `weights_only=True`). The
whole-word embedding is zero unless the folder carries one, so the model starts as the plain T5.
Any tied key layout transformers' T5 accepts loads (the embedding stored as `shared.weight`, or only as
`encoder.embed_tokens.weight` / `decoder.embed_tokens.weight` / `lm_head.weight`); an untied head is
refused as untied (`loaders_common.tie_embeddings`).
With the `atomic` id scheme the vocabulary grows by one row per user and item (new rows initialised
by transformers' `resize_token_embeddings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from paprec_cli.errors import PaprecError
from paprec_cli.model.backbone import build_model, t5_config
from paprec_cli.model.bundle import ModelBundle, describe
from paprec_cli.model.codec import DatasetLike, IdScheme
from paprec_cli.model.id_range import check_id_range
from paprec_cli.model.loaders_common import OPTIONAL_KEYS, check_vocab, copy_whole_word, t5_codec, tie_embeddings
from paprec_cli.model.weights import IGNORED_T5_KEYS, REEXPORT, check_finite, load_state_strict, read_state_dict

WHOLE_WORD_KEYS = ("whole_word.weight", "encoder.whole_word_embeddings.weight", "whole_word_embeddings.weight")
T5_CONFIG_KEYS = (
    "d_model", "num_layers", "num_decoder_layers", "num_heads", "d_kv", "d_ff", "dropout_rate",
    "feed_forward_proj", "relative_attention_num_buckets", "relative_attention_max_distance", "layer_norm_epsilon",
)  # fmt: skip


def load_hf_folder(
    folder: Path,
    info: dict[str, Any],
    *,
    dataset: DatasetLike | None,
    tokenizer: Path | Tokenizer | None,
    id_scheme: IdScheme = "subword",
) -> ModelBundle:
    weights = _weight_file(folder)
    codec = t5_codec(folder, tokenizer, dataset, id_scheme, folder)
    id_range = check_id_range(folder, codec, codec.dataset_name, codec.n_users, codec.n_items)
    state = read_state_dict(weights)
    check_finite(weights, state, REEXPORT)
    whole = next((state.pop(k) for k in WHOLE_WORD_KEYS if k in state), None)
    tie_embeddings(weights, state, bool(info.get("tie_word_embeddings", True)))
    rows = int(state["shared.weight"].shape[0])
    if int(info.get("vocab_size", rows)) != rows:
        raise PaprecError(
            f"{folder / 'config.json'}: vocab_size {info.get('vocab_size')} but {weights.name} has {rows} rows"
        )
    check_vocab(weights, rows, codec)
    dims = {k: info[k] for k in T5_CONFIG_KEYS if k in info}
    config = t5_config(dims, rows, pad_id=codec.pad_id, eos_id=codec.eos_id)
    model = build_model(config, seed=0, zero_whole_word=True)
    load_state_strict(
        model,
        {f"t5.{k}": v for k, v in state.items() if k not in IGNORED_T5_KEYS},
        weights,
        OPTIONAL_KEYS,
    )
    copy_whole_word(model, whole, weights)
    if codec.vocab_size != rows and id_scheme == "atomic":
        model.t5.resize_token_embeddings(codec.vocab_size)
    info = describe(model, codec, "custom", init=f"hf:{folder}", id_range=id_range.to_json())
    return ModelBundle(model, codec, info, None)


def _weight_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).exists():
            return folder / name
    if (folder / "model.safetensors.index.json").exists():
        raise PaprecError(f"{folder}: sharded checkpoints are not supported; re-save with a single model.safetensors")
    raise PaprecError(f"{folder}: no model.safetensors or pytorch_model.bin next to config.json")
