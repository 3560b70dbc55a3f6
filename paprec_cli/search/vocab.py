"""The tokens a trigger slot may hold, and the seeded initial prompt.

Candidates are the codec's whole-word tokens (no specials, sub-word continuations, user, item or
number tokens), optionally narrowed by an allow-list file so that a user can keep prompts readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.search.layout import Layout, PromptTokens


def read_allow_list(path: Path, codec: Any, vocab: torch.Tensor) -> torch.Tensor:
    """Token ids of the words in `path` (one per line, `#` comments and blank lines skipped)."""
    if not path.is_file():
        raise PaprecError(f"--allow-list {path}: no such file")
    allowed = set(int(v) for v in vocab.tolist())
    chosen: list[int] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        word = line.split("#", 1)[0].strip()
        if not word:
            continue
        token = _lookup(codec, word)
        if token is None:
            raise DataFormatError(path, number, f"word '{word}' is not in the model's vocabulary",
                                  "one known whole word per line")
        if token not in allowed:
            raise DataFormatError(path, number, f"'{word}' is not usable as a trigger (special, id or sub-word token)",
                                  "one ordinary whole word per line")
        if token not in chosen:
            chosen.append(token)
    if not chosen:
        raise PaprecError(f"--allow-list {path}: no words in the file")
    return torch.tensor(sorted(chosen), dtype=torch.long)


def _lookup(codec: Any, word: str) -> int | None:
    try:
        token = codec.token_id(word)
    except (KeyError, ValueError, PaprecError):
        return None
    return None if token is None or token < 0 else int(token)


def candidate_vocabulary(codec: Any, allow_list: Path | None = None) -> torch.Tensor:
    """Sorted LongTensor of token ids the search may place in a trigger slot."""
    vocab = torch.as_tensor(codec.candidate_vocab(), dtype=torch.long).unique(sorted=True)
    if allow_list is not None:
        vocab = read_allow_list(allow_list, codec, vocab)
    if vocab.numel() < 2:
        raise PaprecError("the candidate vocabulary has fewer than 2 tokens; widen --allow-list")
    return vocab


def initial_tokens(vocab: torch.Tensor, layout: Layout, seed: int) -> PromptTokens:
    """A seeded random draw: shared slots plus one personal draw that every user starts from."""
    rng = np.random.default_rng([seed, 103])
    ids = vocab.numpy()
    shared = tuple(int(t) for t in rng.choice(ids, size=layout.n_shared))
    personal = tuple(int(t) for t in rng.choice(ids, size=layout.n_personal))
    return PromptTokens(shared=shared, personal_default=personal)
