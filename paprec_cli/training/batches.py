"""Word pairs -> padded tensors, in length-bucketed batches so CPU time is not spent on padding.

Within each window of `bucket` batches the pairs are sorted by source length, cut into batches, and
the batches are shuffled again (seeded): each batch holds prompts of similar length, yet the order of
families and users stays random. Encoding goes through the codec's cached `encode_batch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from paprec_cli.distributed import DistContext
from paprec_cli.model.encoded import EncodedPrompt
from paprec_cli.training.words import Pair

if TYPE_CHECKING:
    from paprec_cli.model.codec import PromptCodec

IGNORE = -100


@dataclass
class TrainBatch:
    """Encoder inputs plus decoder labels (IGNORE at padding); `n_tokens` counts real tokens."""

    inputs: Any  # paprec_cli.model.batching.Batch
    labels: torch.Tensor
    n_tokens: int
    weight: float = 1.0  # 0: a stand-in row for a torchrun rank whose share of a short batch is empty
    #: [B, K] token ids of each row's future window (`Pair.future`), IGNORE-padded; None when no row has one.
    future: torch.Tensor | None = None
    #: [B] bool, rows whose prompt lists candidate items (`Pair.candidates`); None when no row does.
    candidates: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Encoded:
    """One epoch's pairs, encoded."""

    sources: list[EncodedPrompt]
    targets: list[list[int]]
    #: Per pair, the token ids of its future window (one token per item: atomic ids), possibly empty.
    futures: list[list[int]] | None = None
    #: Per pair, whether its source lists candidate items (`Pair.candidates`); None when none does.
    candidates: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.sources)


def encode_pairs(codec: PromptCodec, pairs: Sequence[Pair], chunk: int = 8192) -> Encoded:
    """Encode sources and targets (targets end with EOS)."""
    sources: list[EncodedPrompt] = []
    targets: list[list[int]] = []
    futures: list[list[int]] = []
    has_future = any(p.future for p in pairs)
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        sources += codec.encode_batch([p.source for p in part])
        targets += [[*t.token_ids, codec.eos_id] for t in codec.encode_batch([p.target for p in part])]
        if has_future:
            for pair, encoded in zip(part, codec.encode_batch([p.future for p in part]), strict=True):
                if len(encoded.token_ids) != len(pair.future):
                    raise ValueError("a future window needs one token per item (atomic ids)")
                futures.append(list(encoded.token_ids))
    listed = [p.candidates for p in pairs]
    return Encoded(sources, targets, futures if has_future else None, listed if any(listed) else None)


def batch_order(lengths: Sequence[int], batch_size: int, seed: int, bucket: int = 50) -> list[np.ndarray]:
    """Index arrays of batches: pairs are already shuffled; sort by length inside windows, then
    shuffle the batches."""
    lengths_np = np.asarray(lengths)
    window = batch_size * bucket
    batches: list[np.ndarray] = []
    for start in range(0, len(lengths_np), window):
        idx = np.arange(start, min(start + window, len(lengths_np)))
        idx = idx[np.argsort(lengths_np[idx], kind="stable")]
        batches += [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    order = np.random.default_rng([seed, 2]).permutation(len(batches))
    return [batches[i] for i in order.tolist()]


def make_batch(codec: PromptCodec, encoded: Encoded, index: np.ndarray) -> TrainBatch:
    """Collate one batch on the CPU (moved to the device by the loop)."""
    inputs = codec.collate([encoded.sources[i] for i in index.tolist()])
    targets = [encoded.targets[i] for i in index.tolist()]
    width = max(len(t) for t in targets)
    labels = torch.full((len(targets), width), IGNORE, dtype=torch.long)
    for row, target in enumerate(targets):
        labels[row, : len(target)] = torch.tensor(target, dtype=torch.long)
    n_tokens = int(inputs.attention_mask.sum()) + sum(len(t) for t in targets)
    future = None
    if encoded.futures is not None:
        windows = [encoded.futures[i] for i in index.tolist()]
        width = max((len(w) for w in windows), default=0)
        if width:
            future = torch.full((len(windows), width), IGNORE, dtype=torch.long)
            for row, window in enumerate(windows):
                future[row, : len(window)] = torch.tensor(window, dtype=torch.long)
    candidates = None
    if encoded.candidates is not None:
        candidates = torch.tensor([encoded.candidates[i] for i in index.tolist()], dtype=torch.bool)
    return TrainBatch(inputs, labels, n_tokens, future=future, candidates=candidates)


def iterate_batches(
    codec: PromptCodec, encoded: Encoded, batch_size: int, seed: int, dist: DistContext | None = None
) -> Iterator[TrainBatch]:
    """The epoch's batches, in their seeded order; under torchrun, this rank's share of each *global* batch.

    `batch_size` stays the global batch, so the loss curve and resume state do not depend on the number of
    processes. DDP needs every rank in every step: an empty share becomes one zero-weight row.
    """
    for index in batch_order([len(s) for s in encoded.sources], batch_size, seed):
        if dist is None or not dist.active:
            yield make_batch(codec, encoded, index)
            continue
        start, stop = dist.bounds(len(index))
        if start < stop:
            yield make_batch(codec, encoded, index[start:stop])
        else:
            stand_in = make_batch(codec, encoded, index[:1])
            stand_in.weight = 0.0
            yield stand_in
