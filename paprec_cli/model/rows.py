"""Many prompts as arrays: fixed encoded arguments with per-row trigger tokens around them.

A search step scores candidates x validation examples rows (Beauty: 5 x 22,363 rows per step). Building
each row as an `EncodedPrompt` (`PromptCodec.assemble`) and collating it row by row cost about 25 us a row
in Python: minutes of host time over a full search, and more than a GPU needs to score the row. Here the
arguments are padded into one table once, and a batch is cut from it with numpy indexing; the tensors are
the ones `assemble` + `collate` produce, token for token (tests/test_model_rows.py checks it).

`predict.predictions` and the search's scorers take either a plain list of `EncodedPrompt` or a
`TriggerRows`; `as_rows` gives both the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from paprec_cli.model.batching import Batch, collate, to_device
from paprec_cli.model.codec import MAX_WORD_ID, PromptCodec
from paprec_cli.model.encoded import EncodedPrompt


@runtime_checkable
class PromptRows(Protocol):
    """Rows a batch can be cut from without materialising every prompt."""

    def __len__(self) -> int: ...

    def lengths(self) -> np.ndarray:
        """[R] tokens per row, EOS not counted (what `len(EncodedPrompt)` says)."""

    def collate(self, index: np.ndarray, device: torch.device | str | None = None) -> Batch:
        """The rows `index`, in that order, as one padded batch (EOS appended)."""

    def subset(self, index: np.ndarray) -> PromptRows:
        """The rows `index` as rows of their own."""


class EncodedRows:
    """A list of `EncodedPrompt` seen as `PromptRows`."""

    def __init__(self, prompts: Sequence[EncodedPrompt], pad_id: int, eos_id: int) -> None:
        self.prompts, self.pad_id, self.eos_id = list(prompts), pad_id, eos_id

    def __len__(self) -> int:
        return len(self.prompts)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(p) for p in self.prompts), dtype=np.int64, count=len(self.prompts))

    def collate(self, index: np.ndarray, device: torch.device | str | None = None) -> Batch:
        return collate([self.prompts[i] for i in index], device, pad_id=self.pad_id, eos_id=self.eos_id)

    def subset(self, index: np.ndarray) -> EncodedRows:
        return EncodedRows([self.prompts[i] for i in index], self.pad_id, self.eos_id)


#: What `predict.predictions` and the search's scorers accept.
Prompts = PromptRows | Sequence[EncodedPrompt]


def as_rows(prompts: Prompts, codec: PromptCodec) -> PromptRows:
    """`prompts` unchanged if they are rows already, else the list wrapped with the codec's pad and EOS."""
    if isinstance(prompts, PromptRows):
        return prompts
    return EncodedRows(prompts, codec.pad_id, codec.eos_id)


@dataclass(frozen=True)
class ArgumentTable:
    """Encoded arguments padded into arrays, built once per example set."""

    ids: np.ndarray  # [N, L] token ids, `pad_id` after each argument's end
    words: np.ndarray  # [N, L] whole-word ids, 0 after the end
    lengths: np.ndarray  # [N]
    last_word: np.ndarray  # [N] highest word id of the argument (0 when it is empty)

    @classmethod
    def of(cls, arguments: Sequence[EncodedPrompt], pad_id: int) -> ArgumentTable:
        lengths = np.fromiter((len(a) for a in arguments), dtype=np.int64, count=len(arguments))
        width = int(lengths.max(initial=0))
        ids = np.full((len(arguments), width), pad_id, dtype=np.int64)
        words = np.zeros((len(arguments), width), dtype=np.int64)
        for row, arg in enumerate(arguments):
            ids[row, : len(arg)] = arg.token_ids
            words[row, : len(arg)] = arg.word_ids
        return cls(ids, words, lengths, words.max(axis=1, initial=0))

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


class TriggerRows:
    """Row r is argument `example[r]` with `triggers[r]` around it: the first `n_prefix` before it, the
    rest after it, each trigger its own word (the layout of `PromptCodec.assemble`)."""

    def __init__(self, table: ArgumentTable, n_prefix: int, example: np.ndarray, triggers: np.ndarray,
                 pad_id: int, eos_id: int) -> None:
        example = np.asarray(example, dtype=np.int64)
        triggers = np.asarray(triggers, dtype=np.int64).reshape(len(example), -1)
        if not 0 <= n_prefix <= triggers.shape[1]:
            raise ValueError(f"n_prefix {n_prefix} outside 0..{triggers.shape[1]} triggers")
        self.table, self.n_prefix, self.example, self.triggers = table, n_prefix, example, triggers
        self.pad_id, self.eos_id = pad_id, eos_id

    def __len__(self) -> int:
        return int(self.example.shape[0])

    def lengths(self) -> np.ndarray:
        return self.table.lengths[self.example] + self.triggers.shape[1]

    def subset(self, index: np.ndarray) -> TriggerRows:
        index = np.asarray(index, dtype=np.int64)
        return TriggerRows(self.table, self.n_prefix, self.example[index], self.triggers[index],
                           self.pad_id, self.eos_id)

    def arrays(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(token ids, word ids, attention mask) of rows `index`, each [B, longest + 1]."""
        index = np.asarray(index, dtype=np.int64)
        if index.size == 0:
            raise ValueError("collate() needs at least one row")
        example, triggers = self.example[index], self.triggers[index]
        n_pre, n_after = self.n_prefix, triggers.shape[1] - self.n_prefix
        arg_len = self.table.lengths[example]
        total = arg_len + n_pre + n_after  # tokens before EOS
        width, arg_width = int(total.max()) + 1, int(arg_len.max())
        rows = np.arange(len(index))[:, None]
        ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
        words = np.zeros((len(index), width), dtype=np.int64)
        ids[:, :n_pre] = triggers[:, :n_pre]
        words[:, :n_pre] = np.arange(1, n_pre + 1)
        inside = np.arange(arg_width)[None, :] < arg_len[:, None]
        ids[:, n_pre : n_pre + arg_width] = self.table.ids[example, :arg_width]
        words[:, n_pre : n_pre + arg_width] = np.where(inside, self.table.words[example, :arg_width] + n_pre, 0)
        after = n_pre + arg_len[:, None] + np.arange(n_after)[None, :]
        ids[rows, after] = triggers[:, n_pre:]
        first_after = self.table.last_word[example] + n_pre + 1
        words[rows, after] = first_after[:, None] + np.arange(n_after)[None, :]
        ids[rows[:, 0], total] = self.eos_id
        np.minimum(words, MAX_WORD_ID, out=words)
        mask = (np.arange(width)[None, :] <= total[:, None]).astype(np.int64)
        return ids, words, mask

    def collate(self, index: np.ndarray, device: torch.device | str | None = None) -> Batch:
        ids, words, mask = self.arrays(index)
        return to_device(Batch(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(words)), device)

    def prompt(self, row: int) -> EncodedPrompt:
        """Row `row` as an `EncodedPrompt` (for checks; batches never go through it)."""
        ids, words, _ = self.arrays(np.asarray([row]))
        n = int(self.lengths()[row])
        return EncodedPrompt(tuple(int(t) for t in ids[0, :n]), tuple(int(w) for w in words[0, :n]))
