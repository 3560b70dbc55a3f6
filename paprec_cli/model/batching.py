"""Padded encoder batches: one place that appends EOS and pads, so every caller agrees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from paprec_cli.model.encoded import EncodedPrompt

PAD_ID = 0  # T5's and paprec's tokenizers both put <pad> at 0 ...
EOS_ID = 1  # ... and </s> at 1


@dataclass
class Batch:
    """Encoder inputs, right-padded: `whole_word_ids` is 0 at EOS and padding."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    whole_word_ids: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.input_ids.to(device, non_blocking=True),
            self.attention_mask.to(device, non_blocking=True),
            self.whole_word_ids.to(device, non_blocking=True),
        )

    def select(self, index: torch.Tensor | slice) -> Batch:
        return Batch(self.input_ids[index], self.attention_mask[index], self.whole_word_ids[index])


def collate(
    prompts: Sequence[EncodedPrompt],
    device: torch.device | str | None = None,
    *,
    pad_id: int = PAD_ID,
    eos_id: int = EOS_ID,
) -> Batch:
    """Append EOS (word id 0) to each prompt and right-pad to the longest with `pad_id`.

    Built in numpy and moved once (pinned memory on CUDA), so collation is not the bottleneck."""
    if not prompts:
        raise ValueError("collate() needs at least one prompt")
    width = max(len(p) for p in prompts) + 1
    ids = np.full((len(prompts), width), pad_id, dtype=np.int64)
    wids = np.zeros((len(prompts), width), dtype=np.int64)
    mask = np.zeros((len(prompts), width), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        n = len(prompt.token_ids)
        ids[row, :n] = prompt.token_ids
        ids[row, n] = eos_id
        wids[row, :n] = prompt.word_ids
        mask[row, : n + 1] = 1
    return to_device(Batch(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(wids)), device)


def host_to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A CPU tensor on `device`; to CUDA through pinned memory, so the copy does not wait for queued GPU work
    (a plain copy from pageable memory synchronises the stream)."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def to_device(batch: Batch, device: torch.device | str | None) -> Batch:
    """A CPU-built batch on `device` (through pinned memory on CUDA); unchanged when `device` is None."""
    if device is None:
        return batch
    device = torch.device(device)
    if device.type == "cuda":
        batch = Batch(
            batch.input_ids.pin_memory(), batch.attention_mask.pin_memory(), batch.whole_word_ids.pin_memory()
        )
    return batch.to(device)
