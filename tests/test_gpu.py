"""CUDA checks: skipped without a GPU (conftest), run by `bench/gpu.sh` users and on lent GPU machines.

They pin what the CPU tests cannot: bf16 autocast inference agrees with float32 on the CPU, and the
search's gradient capture works on the device.
"""

from __future__ import annotations

import pytest
import torch
from test_model_helpers import TINY_DIMS, codec_for, prompts

from paprec_cli.model import Recommender, collate, create_model

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("scheme", ["atomic", "subword"])
def test_cuda_ranking_agrees_with_cpu(scheme: str) -> None:
    codec = codec_for(scheme)
    bundle = create_model(TINY_DIMS, codec, seed=3)
    batch = collate(codec.encode_batch(prompts(8)))
    cpu = Recommender(bundle.model, codec, "cpu").rank_all(batch, 5).cpu()
    gpu_batch = collate(codec.encode_batch(prompts(8)), device="cuda")
    gpu = Recommender(bundle.model.to("cuda"), codec, "cuda").rank_all(gpu_batch, 5).cpu()
    # bf16 may swap near-ties, but the top item and most of the top 5 must agree.
    assert (cpu[:, 0] == gpu[:, 0]).float().mean() >= 0.75
    overlap = [len(set(a.tolist()) & set(b.tolist())) / 5 for a, b in zip(cpu, gpu, strict=True)]
    assert sum(overlap) / len(overlap) >= 0.6


def test_cuda_nll_gradient_reaches_the_embeddings() -> None:
    codec = codec_for("atomic")
    bundle = create_model(TINY_DIMS, codec, seed=3)
    model = bundle.model.to("cuda")
    model.requires_grad_(False)
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    handle = model.t5.shared.register_forward_hook(hook)
    try:
        batch = collate(codec.encode_batch(prompts(4)), device="cuda")
        targets = [[codec.item_token_ids()[0].item(), codec.eos_id]] * 4
        Recommender(model, codec, "cuda").nll(batch, targets).sum().backward()
    finally:
        handle.remove()
    assert captured and captured[0].grad is not None
    assert torch.isfinite(captured[0].grad).all()
    assert all(p.grad is None for p in model.parameters())
