"""A cheap check of a model's weight file without loading it (torch is not imported): for `paprec models
list`, which must show a truncated or damaged `model.safetensors` as broken, as `data list` shows a broken
Parquet table, without reading (or hashing) every model's weights.

`safetensors.safe_open` reads the 8-byte header length and the JSON header, checks every tensor's dtype, shape
and data offsets, and that those offsets cover the file exactly (a truncated or extended file fails); the
tensor bytes are memory-mapped, never read. Format: https://github.com/huggingface/safetensors (README,
"Format"). A file whose tensor bytes were changed in place passes here; loading it checks its sha256.
"""

from __future__ import annotations

from pathlib import Path

from paprec_cli.errors import PaprecError, first_line


def check_safetensors(path: Path, fix: str) -> None:
    """Raise a one-line `PaprecError` naming `path` and `fix` when the safetensors file is missing, or its
    header is unreadable or does not match the file's size (truncated, damaged). Costs one small read."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise PaprecError(f"{path}: missing; {fix}")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            handle.keys()
    except OSError:
        raise  # permissions and the like: the caller names the path and the fix
    except Exception as err:  # safetensors' own SafetensorError for a bad header or size
        raise PaprecError(f"{path}: not a readable safetensors file, truncated or damaged ({first_line(err)}); "
                          f"{fix}") from None
