"""CUDA checks: skipped without a GPU (conftest), run by `bench/gpu.sh` users and on lent GPU machines.

They pin what the CPU tests cannot: bf16 autocast inference agrees with float32 on the CPU, and the
search's gradient capture works on the device.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_model_helpers import TINY_DIMS, codec_for, prompts
from typer.testing import CliRunner

from paprec_cli.cli import app
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


def test_cuda_train_search_eval_recommend_end_to_end(tmp_path: Path) -> None:
    """The CLI path a GPU user takes: bf16 training with fused AdamW, search, eval and recommend on CUDA."""
    home = str(tmp_path / "home")
    runner = CliRunner()

    def cli(*args: str) -> dict:
        result = runner.invoke(app, [*args, "--home", home])
        assert result.exit_code == 0, result.stderr or result.stdout
        return json.loads(result.stdout.strip().splitlines()[-1]) if "--json" in args else {}

    cli("data", "import", "synthetic", "-q", "-o", "users=60", "-o", "items=150", "-o", "length=8")
    trained = cli("train", "--dataset", "synthetic", "--size", "tiny", "--tasks", "sequential,rating", "--epochs", "2",
                  "--val-users", "30", "--device", "cuda", "--name", "gpu-tiny", "--json")  # fmt: skip
    assert trained["epochs"] == 2
    assert 0.0 <= trained["test"]["sequential"]["HR@10"] <= 1.0
    searched = cli("search", "--task", "sequential", "--dataset", "synthetic", "--model", "gpu-tiny",
                   "--val-users", "30", "--grad-examples", "32", "--max-rounds", "1", "--device", "cuda",
                   "--json")  # fmt: skip
    assert searched["stop_reason"] in {"converged", "max-rounds"}
    evaluated = cli("eval", searched["run"], "--device", "cuda", "--json")
    assert "test" in json.dumps(evaluated)
    served = cli("recommend", "--prompts", searched["run"], "--user", "1", "--device", "cuda", "--json")
    assert served
