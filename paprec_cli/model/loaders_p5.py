"""Original P5 / PAP-REC checkpoints: a `.pth` state dict plus the T5 tokenizer it was trained with.

P5 saved `model.state_dict()` of its T5 subclass: T5 key names (`shared.weight`,
`encoder.block.0.layer.0.SelfAttention.q.weight`, `lm_head.weight`, ...) plus
`encoder.whole_word_embeddings.weight`, sometimes prefixed `module.` (DataParallel). The shapes tell
the layer counts and widths; heads come from the relative-attention bias (or `num_heads`, or
d_model / 64). Read with `torch.load(weights_only=True)`: pickled objects are refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from tokenizers import Tokenizer

from paprec_cli.errors import PaprecError
from paprec_cli.inputs import P5_MAX_TOKENS
from paprec_cli.model.backbone import build_model, t5_config
from paprec_cli.model.bundle import ModelBundle, describe
from paprec_cli.model.codec import DatasetLike
from paprec_cli.model.id_range import check_id_range
from paprec_cli.model.loaders_common import OPTIONAL_KEYS, check_vocab, copy_whole_word, t5_codec, tie_embeddings
from paprec_cli.model.weights import IGNORED_T5_KEYS, REEXPORT, check_finite, load_state_strict, read_state_dict
from paprec_cli.paths import sha256_file

P5_WHOLE_WORD = "encoder.whole_word_embeddings.weight"
#: The item numbering P5's released checkpoints were trained with (`paprec data import --indexing sequential`).
P5_INDEXING = "sequential"
_BLOCK = re.compile(r"^(encoder|decoder)\.block\.(\d+)\.")


def infer_dims(path: Path, state: dict[str, torch.Tensor], num_heads: int | None = None) -> dict[str, object]:
    """T5 dimensions from tensor shapes alone."""

    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise PaprecError(f"{path}: missing keys {key}; not a P5/T5 state dict")
        return state[key]

    d_model = int(need("shared.weight").shape[1])
    layers = {"encoder": 0, "decoder": 0}
    for key in state:
        match = _BLOCK.match(key)
        if match:
            layers[match.group(1)] = max(layers[match.group(1)], int(match.group(2)) + 1)
    if not layers["encoder"] or not layers["decoder"]:
        raise PaprecError(f"{path}: missing keys encoder.block.* or decoder.block.*; not a T5 encoder-decoder")
    inner = int(need("encoder.block.0.layer.0.SelfAttention.q.weight").shape[0])
    bias = state.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    heads = num_heads or (int(bias.shape[1]) if bias is not None else max(1, d_model // 64))
    if inner % heads:
        raise PaprecError(f"{path}: attention width {inner} is not divisible by {heads} heads; pass num_heads")
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
    wi = need("encoder.block.0.layer.1.DenseReluDense." + ("wi_0.weight" if gated else "wi.weight"))
    dims: dict[str, object] = {
        "d_model": d_model,
        "num_layers": layers["encoder"],
        "num_decoder_layers": layers["decoder"],
        "num_heads": heads,
        "d_kv": inner // heads,
        "d_ff": int(wi.shape[0]),
        "feed_forward_proj": "gated-gelu" if gated else "relu",
    }
    if bias is not None:
        dims["relative_attention_num_buckets"] = int(bias.shape[0])
    return dims


def load_p5(
    path: Path,
    *,
    dataset: DatasetLike | None,
    tokenizer: Path | Tokenizer | None,
    num_heads: int | None = None,
) -> ModelBundle:
    """A P5 `.pth` for `dataset`, with `tokenizer` (else the `tokenizer.json` / `spiece.model` beside it).

    P5 numbered items in order of first appearance in `sequential_data.txt` (paprec's `sequential`
    indexing); the model's info records `expects_indexing: "sequential"`, and a dataset imported with
    another indexing is refused (its ids would name other items: silent garbage), and so is a dataset
    whose largest user or item id lies beyond the checkpoint's range (`id_range.check_id_range`; recorded
    as `id_range` in the model's info), before the weights are read. Errors: `PaprecError` naming the
    file and the fix."""
    check_p5_indexing(path, dataset)
    codec = t5_codec(path, tokenizer, dataset, "subword", path.parent)
    id_range = check_id_range(path, codec, codec.dataset_name, codec.n_users, codec.n_items)
    state = read_state_dict(path)
    check_finite(path, state, REEXPORT)
    whole = state.pop(P5_WHOLE_WORD, None)
    tie_embeddings(path, state)
    dims = infer_dims(path, state, num_heads)
    rows = int(state["shared.weight"].shape[0])
    check_vocab(path, rows, codec)
    config = t5_config(dims, rows, pad_id=codec.pad_id, eos_id=codec.eos_id)
    model = build_model(config, seed=0, zero_whole_word=True)
    renamed = {f"t5.{k}": v for k, v in state.items() if k not in IGNORED_T5_KEYS}
    load_state_strict(model, renamed, path, OPTIONAL_KEYS)
    copy_whole_word(model, whole, path)
    info = describe(
        model, codec, "custom", init=f"p5:{path}", whole_word_loaded=whole is not None,
        weights_sha256=sha256_file(path),
        expects_indexing=P5_INDEXING,
        input_protocol="p5",
        rating_readout="decoded",
        id_range=id_range.to_json(),
    )
    codec.max_input_tokens = P5_MAX_TOKENS
    codec.rating_readout = "decoded"  # P5 trained on one-decimal strings ("4.3") and read the decoded number
    return ModelBundle(model, codec, info, None)


def check_p5_indexing(path: Path, dataset: DatasetLike | None) -> None:
    """Refuse a dataset whose item ids are not P5's sequential ones (its manifest records `indexing`)."""
    manifest = getattr(dataset, "manifest", None)
    indexing = manifest.get("indexing") if isinstance(manifest, dict) else None
    if dataset is None or indexing is None or indexing == P5_INDEXING:
        return
    name = getattr(dataset, "name", "NAME")
    plugin = str(manifest.get("dataset") or name) if isinstance(manifest, dict) else name
    stored_as = f" --name {name}" if plugin != name else ""  # an import stored under its own --name
    raise PaprecError(
        f"{path}: a P5 checkpoint expects P5's sequential item ids, but dataset '{name}' was imported with "
        f"{indexing} indexing (other ids, silent garbage); re-import it with "
        f"`paprec data import {plugin} --from PATH{stored_as} --indexing sequential --force` (or another --name "
        "to keep both)"
    )
