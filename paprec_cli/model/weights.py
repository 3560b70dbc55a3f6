"""Reading weight files safely and checking their keys.

Only safetensors or `torch.load(weights_only=True)`: a file that would need arbitrary unpickling
(a pickled custom object, a tampered archive) is refused with a one-line `PaprecError`.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from paprec_cli.errors import PaprecError, first_line

#: Keys tied to `shared.weight` in transformers' T5 (saved by some writers, not by others).
TIED_T5_KEYS = frozenset({"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"})
#: The same keys inside paprec's `RecLM` (which holds T5 as `t5`): written once, optional on load.
TIED_KEYS = frozenset(f"t5.{k}" for k in TIED_T5_KEYS)
#: Present in some old T5 checkpoints and ignored by transformers too.
IGNORED_T5_KEYS = frozenset({"decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"})
#: The fix for an imported checkpoint (Hugging Face T5 folder, P5 `.pth`) whose weights are not finite.
REEXPORT = "re-export the checkpoint from a model whose weights are finite"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors by name from a `.safetensors` file or a torch archive (`.pth`, `.bin`, `.pt`)."""
    path = Path(path)
    if not path.is_file():
        raise PaprecError(f"{path}: no such weight file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as err:
            raise PaprecError(f"{path}: not a readable safetensors file ({_first_line(err)})") from err
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        message = _first_line(err)
        lowered = str(err).lower()
        if isinstance(err, pickle.UnpicklingError) and any(
            hint in lowered for hint in ("weights only", "weights_only", "unsupported global", "global")
        ):
            raise PaprecError(
                f"{path}: refused: the file holds pickled Python objects, not only tensors "
                "(paprec never unpickles arbitrary objects; save a plain state dict or safetensors)"
            ) from err
        raise PaprecError(f"{path}: not a readable torch weight file ({message})") from err
    return _as_state_dict(path, loaded)


def check_finite(path: Path, state: Mapping[str, torch.Tensor], fix: str) -> None:
    """Raise a one-line `PaprecError` naming `path`, the first tensor with a NaN or infinite value, how many
    it holds, and `fix`, when any floating-point tensor of `state` is not finite (a diverged training run, or
    a file edited together with its checksum). One `torch.isfinite(t).all()` per tensor: about the cost of
    reading the tensor once."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise PaprecError(f"{path}: tensor '{key}' holds {bad} NaN or infinite value(s) of {tensor.numel()}; "
                              f"the model cannot be used: {fix}")


def _as_state_dict(path: Path, loaded: object) -> dict[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        for wrapper in ("state_dict", "model", "module"):
            inner = loaded.get(wrapper)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                loaded = inner
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise PaprecError(f"{path}: expected a state dict (names -> tensors), found {type(loaded).__name__}")
    out: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        if not isinstance(value, torch.Tensor):
            raise PaprecError(f"{path}: entry '{key}' is a {type(value).__name__}, not a tensor")
        out[str(key).removeprefix("module.")] = value
    return out


def check_keys(path: Path, found: Iterable[str], expected: Iterable[str], optional: Iterable[str] = ()) -> None:
    """Error naming the first few missing and unexpected keys (optional keys may be absent)."""
    found_set, expected_set, optional_set = set(found), set(expected), set(optional)
    missing = sorted(expected_set - found_set - optional_set)
    unexpected = sorted(found_set - expected_set - optional_set)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        raise PaprecError(f"{path}: {'; '.join(parts)}")


def _few(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return f"{shown} (+{len(keys) - n} more)" if len(keys) > n else shown


def _first_line(err: BaseException) -> str:
    return first_line(err, 200)


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], where: Path,
                      optional: frozenset[str] = TIED_KEYS) -> None:
    """Strict load: every key present (tied copies optional), none unexpected, shapes equal."""
    own = model.state_dict()
    check_keys(where, state.keys(), own.keys(), optional)
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise PaprecError(
                f"{where}: tensor '{key}' has shape {tuple(value.shape)}, the model expects {tuple(own[key].shape)}"
            )
    model.load_state_dict(state, strict=False)


def save_safetensors_sorted(state: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str]) -> None:
    """Write `state` as a safetensors file whose bytes depend only on the tensors and `metadata`.

    `safetensors` serializes `__metadata__` from a hash map, so the same weights came out in different key
    orders (a different sha256, hence a different model fingerprint) about half the time. The header is
    re-serialized here with sorted keys and padded with spaces to a multiple of 8 bytes (as the format
    requires); the tensor bytes and their offsets are unchanged. `path` is written directly (callers stage it).
    """
    import json
    import struct

    from safetensors.torch import save

    blob = save(dict(state), metadata=dict(metadata))
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        fh.write(memoryview(blob)[8 + length :])
