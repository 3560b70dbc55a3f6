"""Loss gradients at the trigger positions, captured with a forward hook on the token embedding.

The model stays frozen: the hook on `model.t5.shared` replaces the embedding output of the encoder
input with a detached leaf that requires grad, so backward stops there and the weights get no grad.
Results are *sums* over a set of examples grouped by an id (one group for shared slots, one per user
for personal slots), so that a sharded run can all_reduce them before averaging.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from paprec_cli.model.codec import EncodedPrompt


class EmbeddingCapture:
    """Makes the first call of the embedding module after `arm()` return a grad-requiring leaf.

    T5 calls the shared embedding for the decoder input too; only the first call (the encoder's prompt,
    embedded by `RecLM.embed` before the T5 forward) is captured.
    """

    def __init__(self) -> None:
        self.leaf: torch.Tensor | None = None
        self._armed = False

    def arm(self) -> None:
        self.leaf = None
        self._armed = True

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
        if not self._armed:
            return None
        self._armed = False
        self.leaf = output.detach().requires_grad_(True)
        return self.leaf


@contextlib.contextmanager
def capture_embeddings(embedding: nn.Module) -> Iterator[EmbeddingCapture]:
    capture = EmbeddingCapture()
    handle = embedding.register_forward_hook(capture.hook)
    try:
        yield capture
    finally:
        handle.remove()


def gradient_sums(
    loss_fn: Callable[[Sequence[EncodedPrompt], Sequence[Sequence[int]]], torch.Tensor],
    embedding: nn.Embedding,
    prompts: Sequence[EncodedPrompt],
    targets: Sequence[Sequence[int]],
    positions: Sequence[Sequence[int]],
    groups: Sequence[int],
    n_groups: int,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group sums of d(loss_i)/d(embedding) at each example's trigger positions.

    loss_fn(prompts, targets) -> [B] per-example losses (e.g. teacher-forced NLL); positions[i] lists
    example i's T trigger token positions. Returns (sums [n_groups, T, d] on CPU in float64, counts [n_groups]):
    float64 so that a sharded run's all_reduce of partial sums matches this sum to far below float32 precision.
    Per-example losses are independent, so the gradient of their sum at example i is example i's gradient.
    """
    n_trig = len(positions[0]) if positions else 0
    sums: torch.Tensor | None = None
    counts = torch.zeros(n_groups, dtype=torch.long)
    with capture_embeddings(embedding) as capture:
        for start in range(0, len(prompts), batch_size):
            stop = min(start + batch_size, len(prompts))
            capture.arm()
            with torch.enable_grad():
                losses = loss_fn(prompts[start:stop], targets[start:stop])
                if capture.leaf is None:
                    raise RuntimeError("the embedding hook did not fire: is it the model's input embedding?")
                losses.float().sum().backward()
            grad = capture.leaf.grad
            assert grad is not None
            rows = torch.arange(stop - start, device=grad.device).unsqueeze(1)
            where = torch.tensor([list(p) for p in positions[start:stop]], device=grad.device, dtype=torch.long)
            picked = grad[rows, where].cpu().double()  # [B, T, d]
            if sums is None:
                sums = torch.zeros(n_groups, n_trig, picked.shape[-1], dtype=picked.dtype)
            ids = torch.tensor(list(groups[start:stop]), dtype=torch.long)
            sums.index_add_(0, ids, picked)
            counts.index_add_(0, ids, torch.ones_like(ids))
    if sums is None:
        sums = torch.zeros(n_groups, n_trig, embedding.embedding_dim, dtype=torch.float64)
    return sums, counts
