"""Where trigger tokens sit in an automatic prompt, and how a prompt is assembled from them.

An automatic prompt is `[prefix] {argument} [suffix] [personal]` then EOS: the task's argument words
stay fixed, `n_prefix` + `n_suffix` shared triggers and `n_personal` per-user triggers surround them.
The search edits token ids in *slots*: shared slots 0..n_shared-1 (prefix first, then suffix) and
personal slots 0..n_personal-1. Each trigger is one token and its own word, so a slot maps to exactly
one token position in the encoded prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from paprec_cli.model.codec import EncodedPrompt
from paprec_cli.model.rows import ArgumentTable, TriggerRows
from paprec_cli.specs import Word

TEMPLATE = "[prefix] {argument} [suffix] [personal]"


class Encoded(Protocol):
    """What `PromptCodec.encode`/`assemble` return (the model package's `EncodedPrompt`)."""

    @property
    def token_ids(self) -> tuple[int, ...]: ...

    @property
    def word_ids(self) -> tuple[int, ...]: ...


class Codec(Protocol):
    """The part of `PromptCodec` the search needs."""

    pad_id: int
    eos_id: int

    def encode(self, words: Sequence[Word]) -> EncodedPrompt: ...

    def assemble(
        self, prefix_ids: Sequence[int], argument: EncodedPrompt, suffix_ids: Sequence[int]
    ) -> EncodedPrompt: ...

    def token_text(self, token_id: int) -> str: ...


@dataclass(frozen=True)
class Layout:
    """How many trigger tokens of each kind a prompt carries."""

    n_prefix: int = 0
    n_suffix: int = 5
    n_personal: int = 1

    def __post_init__(self) -> None:
        for name in ("n_prefix", "n_suffix", "n_personal"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def n_shared(self) -> int:
        return self.n_prefix + self.n_suffix

    @property
    def n_triggers(self) -> int:
        return self.n_shared + self.n_personal

    def slot_name(self, slot: int) -> str:
        """Human name of a shared slot: `prefix[i]` or `suffix[j]`."""
        return f"prefix[{slot}]" if slot < self.n_prefix else f"suffix[{slot - self.n_prefix}]"

    def as_json(self) -> dict[str, int | str]:
        return {"n_prefix": self.n_prefix, "n_suffix": self.n_suffix, "n_personal": self.n_personal,
                "template": TEMPLATE}


@dataclass(frozen=True)
class PromptTokens:
    """The current prompt: shared trigger ids plus per-user personal ids (users not listed use the default)."""

    shared: tuple[int, ...]
    personal_default: tuple[int, ...]
    personal: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def personal_for(self, user: int) -> tuple[int, ...]:
        return self.personal.get(user, self.personal_default)

    def triggers_for(self, user: int) -> tuple[int, ...]:
        """All trigger ids of one user's prompt: shared slots then personal slots."""
        return self.shared + self.personal_for(user)

    def with_shared(self, slot: int, token: int) -> PromptTokens:
        shared = list(self.shared)
        shared[slot] = token
        return replace(self, shared=tuple(shared))

    def with_personal(self, updates: Mapping[int, tuple[int, ...]]) -> PromptTokens:
        merged = dict(self.personal)
        merged.update(updates)
        return replace(self, personal=merged)

    def key(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, tuple[int, ...]], ...]]:
        """A hashable identity (caches of gradients and candidates are keyed on it)."""
        return (self.shared, self.personal_default, tuple(sorted(self.personal.items())))


class PromptBuilder:
    """Assembles automatic prompts for a fixed list of examples, encoding each argument only once."""

    def __init__(self, codec: Codec, layout: Layout, arguments: Sequence[Sequence[Word]]) -> None:
        self.codec = codec
        self.layout = layout
        self.arguments = [codec.encode(list(words)) for words in arguments]
        self._table: ArgumentTable | None = None

    def rows(self, examples: np.ndarray, triggers: np.ndarray) -> TriggerRows:
        """Many prompts at once, row r = example `examples[r]` with `triggers[r]`: what the surrogate
        scores each step, built as arrays (the same tokens as `prompt`, without Python per row)."""
        codec = self.codec
        if self._table is None:
            self._table = ArgumentTable.of(self.arguments, codec.pad_id)
        return TriggerRows(self._table, self.layout.n_prefix, examples, triggers, codec.pad_id, codec.eos_id)

    def __len__(self) -> int:
        return len(self.arguments)

    def prompt(self, index: int, triggers: Sequence[int]) -> EncodedPrompt:
        """Example `index` with trigger ids (shared slots then personal slots)."""
        n_prefix = self.layout.n_prefix
        return self.codec.assemble(list(triggers[:n_prefix]), self.arguments[index], list(triggers[n_prefix:]))

    def positions(self, index: int) -> list[int]:
        """Token positions of the triggers (same order as `triggers`) in example `index`'s prompt."""
        n_prefix, n_after = self.layout.n_prefix, self.layout.n_triggers - self.layout.n_prefix
        length = n_prefix + len(self.arguments[index].token_ids) + n_after
        return list(range(n_prefix)) + list(range(length - n_after, length))


def check_positions(prompt: Encoded, positions: Sequence[int], triggers: Sequence[int]) -> None:
    """Fail loudly if the codec put trigger tokens somewhere other than where the search looks."""
    found = [prompt.token_ids[p] for p in positions]
    if found != list(triggers):
        raise AssertionError(f"trigger tokens not at the expected positions: {found} != {list(triggers)}")
