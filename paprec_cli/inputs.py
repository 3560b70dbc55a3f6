"""How prompts are written for a model: paprec's own input protocol, or P5's for a released P5 checkpoint.

A P5 checkpoint only reads well the inputs it was trained on. P5's test inputs (src/pretrain_data.py of
the P5 repository) differ from paprec's defaults in three ways recorded here and in every manifest:

- history: P5 feeds Amazon users (beauty, sports, toys) their whole purchase history, cut only by the
  token limit; Yelp users their 20 most recent items. paprec's own models see the 20 most recent items.
- separator: P5 joins history items with `' , '` or `' -> '`, chosen at random per example; paprec writes
  `,`. The P5 protocol defaults to `,` (reproducible), with `->` or `random` (a seeded choice per user
  and split part: `numpy.random.default_rng([seed, user, part, 11])`) as options.
- length: P5 tokenizes with `max_length=512`: at most 511 prompt tokens, then `</s>`; the cut falls at
  the end of the text. paprec's own models have no cut.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from paprec_cli.errors import PaprecError

SEPARATORS = (",", "->", "random")
#: P5's `max_text_length`: encoder tokens including the final `</s>`.
P5_MAX_TOKENS = 512
#: Dataset names P5 treats as Amazon (whole history) and as Yelp (last 20 items).
AMAZON = frozenset({"beauty", "sports", "toys"})
YELP_HISTORY = 20
PAPREC_HISTORY = 20
_PARTS = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class InputProtocol:
    """`history`: most recent items kept (None: all); `separator`: `,`, `->` or `random`;
    `max_tokens`: encoder tokens including `</s>` (None: no cut)."""

    name: str = "paprec"
    history: int | None = PAPREC_HISTORY
    separator: str = ","
    max_tokens: int | None = None
    seed: int = 0

    def separator_for(self, user: int, part: str) -> str:
        """The separator of one user's example: fixed, or P5's coin flip seeded by (seed, user, part)."""
        if self.separator != "random":
            return self.separator
        flip = np.random.default_rng([self.seed, int(user), _PARTS.get(part, 3), 11]).random()
        return "," if flip > 0.5 else "->"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PAPREC = InputProtocol()


def p5_protocol(dataset: str, separator: str = ",", seed: int = 0) -> InputProtocol:
    """P5's inputs for `dataset`, the registered dataset the data came from (`Dataset.source_name`, not the
    name it was imported under): Amazon sets keep the whole history, others the last 20."""
    check_separator(separator)
    history = None if dataset.split("-")[0].lower() in AMAZON else YELP_HISTORY
    return InputProtocol("p5", history, separator, P5_MAX_TOKENS, seed)


def check_separator(separator: str) -> str:
    if separator not in SEPARATORS:
        raise PaprecError(f"--separator {separator!r}: expected one of {' '.join(repr(s) for s in SEPARATORS)}")
    return separator


def inputs_for(
    model_config: dict[str, Any], dataset: str, separator: str | None = None, seed: int = 0
) -> InputProtocol:
    """The protocol a model expects: P5's for a P5 checkpoint (its config has `input_protocol: p5`), else
    paprec's (the last 20 items, or the `input_history` the model was trained with). `separator` (P5
    protocol only) overrides the default `,`."""
    if model_config.get("input_protocol") == "p5" or str(model_config.get("init", "")).startswith("p5:"):
        return p5_protocol(dataset, separator or ",", seed)
    if separator not in (None, ","):
        raise PaprecError(f"--separator {separator}: only P5 checkpoints take another separator than ','")
    history = model_config.get("input_history")
    if isinstance(history, int) and not isinstance(history, bool) and history >= 1 and history != PAPREC.history:
        return InputProtocol(history=history)
    return PAPREC
