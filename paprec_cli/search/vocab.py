"""The tokens a trigger slot may hold, and the initial prompt (seeded random, or the manual template's words).

Candidates are the codec's whole-word tokens (no specials, sub-word continuations, user, item or
number tokens), optionally narrowed by an allow-list file so that a user can keep prompts readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from paprec_cli.errors import DataFormatError, PaprecError
from paprec_cli.search.layout import Layout, PromptTokens
from paprec_cli.specs import Template
from paprec_cli.textio import read_text_file

if TYPE_CHECKING:
    from paprec_cli.model.codec import PromptCodec


def read_allow_list(path: Path, codec: PromptCodec, vocab: torch.Tensor) -> torch.Tensor:
    """Token ids of the words in `path` (one per line, `#` comments and blank lines skipped).

    The file is decoded by the shared reader (`paprec_cli.textio`: BOM stripped, UTF-16 with a BOM,
    else UTF-8); a byte that is not UTF-8 is an error at its line."""
    if not path.is_file():
        raise PaprecError(f"--allow-list {path}: no such file")
    allowed = set(int(v) for v in vocab.tolist())
    chosen: list[int] = []
    text = read_text_file(path, what="--allow-list").text
    for number, line in enumerate(text.splitlines(), start=1):
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


def _lookup(codec: PromptCodec, word: str) -> int | None:
    try:
        token = codec.token_id(word)
    except (KeyError, ValueError, PaprecError):
        return None
    return None if token is None or token < 0 else int(token)


def candidate_vocabulary(codec: PromptCodec, allow_list: Path | None = None) -> torch.Tensor:
    """Sorted LongTensor of token ids the search may place in a trigger slot."""
    vocab = torch.as_tensor(codec.candidate_vocab(), dtype=torch.long).unique(sorted=True)
    if allow_list is not None:
        vocab = read_allow_list(allow_list, codec, vocab)
    if vocab.numel() < 2:
        raise PaprecError("the candidate vocabulary has fewer than 2 tokens; widen --allow-list")
    return vocab


def initial_tokens(vocab: torch.Tensor, layout: Layout, seed: int, shared: Sequence[int] | None = None) -> PromptTokens:
    """A seeded random draw: shared slots (unless given) plus one personal draw that every user starts from."""
    rng = np.random.default_rng([seed, 103])
    ids = vocab.numpy()
    drawn = tuple(int(t) for t in rng.choice(ids, size=layout.n_shared))
    personal = tuple(int(t) for t in rng.choice(ids, size=layout.n_personal))
    return PromptTokens(shared=tuple(int(t) for t in shared) if shared is not None else drawn,
                        personal_default=personal)


@dataclass(frozen=True)
class ManualStart:
    """The manual template's words as trigger tokens: those before its first slot, those after its last."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    skipped: tuple[str, ...]  # words outside the slots that are no trigger token (left out of the prompt)
    between: tuple[str, ...] = ()  # words between the slots (the task's argument renders them)


def manual_start(codec: PromptCodec, vocab: torch.Tensor, template: Template) -> ManualStart:
    """`--init manual`: start the search from the hand-written prompt instead of random words.

    For templates whose slots sit together (P5's sequential ones: `... of {user} : {history} ...`) the
    starting prompt is the manual prompt itself, so a search that keeps only improvements ends at least as
    good on its validation sample. Words between slots belong to the task's argument (P5's `{user} :
    {history}`: the argument brings its own ":") and are listed in `between`; words outside the slots that
    cannot be triggers (not single whole-word tokens of the model's vocabulary) are left out of the prompt and
    listed in `skipped` (reported, never replaced by other words): then the search starts from a prompt that
    differs from the manual one.
    """
    first, last = template.source.find("{"), template.source.rfind("}")
    if first < 0:
        raise PaprecError(f"--init manual: template {template.id} has no argument slot")
    allowed = set(int(v) for v in vocab.tolist())
    between = tuple(w for w in template.source[first : last + 1].split() if not w.startswith("{"))
    skipped: list[str] = []

    def triggers(text: str) -> tuple[int, ...]:
        kept: list[int] = []
        for word in text.split():
            token = _lookup(codec, word)
            if token is None or token not in allowed:
                skipped.append(word)
            else:
                kept.append(token)
        return tuple(kept)

    prefix, suffix = triggers(template.source[:first]), triggers(template.source[last + 1 :])
    if not prefix and not suffix:
        raise PaprecError(f"--init manual: template {template.id} has no word usable as a trigger; use --init random")
    return ManualStart(prefix, suffix, tuple(skipped), between)
