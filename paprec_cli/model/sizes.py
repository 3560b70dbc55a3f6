"""Named model sizes (P5-small and P5-base shapes, plus a CPU-sized `tiny`) and custom dimensions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paprec_cli.errors import PaprecError

MODEL_SIZES: dict[str, dict[str, Any]] = {
    # Trains on 2 CPU cores in a minute or two on ~10k examples.
    "tiny": {"d_model": 128, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4, "d_kv": 32, "d_ff": 256},
    # P5-small (T5-small): 6+6 layers, d_model 512, 8 heads.
    "small": {"d_model": 512, "num_layers": 6, "num_decoder_layers": 6, "num_heads": 8, "d_kv": 64, "d_ff": 2048},
    # P5-base (T5-base): 12+12 layers, d_model 768, 12 heads.
    "base": {"d_model": 768, "num_layers": 12, "num_decoder_layers": 12, "num_heads": 12, "d_kv": 64, "d_ff": 3072},
}
DIM_KEYS = ("d_model", "num_layers", "num_decoder_layers", "num_heads", "d_kv", "d_ff")
#: Other T5 settings a custom size may set.
OPTIONAL_KEYS = (
    "dropout_rate",
    "feed_forward_proj",
    "relative_attention_num_buckets",
    "relative_attention_max_distance",
)
DEFAULT_DROPOUT = 0.1


def resolve_dims(size_or_dims: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(size name or "custom", full dims). A dict starts from `tiny` unless it names `size`."""
    if isinstance(size_or_dims, str):
        if size_or_dims not in MODEL_SIZES:
            raise PaprecError(f"unknown model size '{size_or_dims}' for --size; known: {', '.join(MODEL_SIZES)}")
        return size_or_dims, dict(MODEL_SIZES[size_or_dims])
    given = dict(size_or_dims)
    base_name = str(given.pop("size", "tiny"))
    if base_name not in MODEL_SIZES:
        raise PaprecError(f"unknown base size '{base_name}'; known: {', '.join(MODEL_SIZES)}")
    unknown = sorted(set(given) - set(DIM_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise PaprecError(
            f"unknown model dimension(s) {', '.join(unknown)}; known: {', '.join(DIM_KEYS + OPTIONAL_KEYS)}"
        )
    dims = dict(MODEL_SIZES[base_name])
    if "num_layers" in given and "num_decoder_layers" not in given:
        given["num_decoder_layers"] = given["num_layers"]
    if "d_model" in given and "num_heads" in given and "d_kv" not in given:
        given["d_kv"] = max(1, int(given["d_model"]) // int(given["num_heads"]))
    dims.update(given)
    for key in DIM_KEYS:
        if int(dims[key]) < 1:
            raise PaprecError(f"model dimension {key} must be positive, got {dims[key]}")
        dims[key] = int(dims[key])
    return ("custom" if given else base_name), dims
