"""An encoded prompt: token ids plus P5's whole-word ids. The value the codec produces and batching pads;
it sits below both so that neither imports the other's module for it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt's token ids and whole-word ids (1-based word numbers; no EOS yet)."""

    token_ids: tuple[int, ...]
    word_ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.token_ids)
