"""Resume state of a training run, kept beside the model folder.

`<home>/models/.train-state/<name>/` holds the *last* epoch's weights (`last.safetensors`), optimiser
and RNG state (`optimizer.pt`, tensors and numbers only, read with `weights_only=True`), the best
epoch's weights (`best.safetensors`) and `state.json` (options, epoch, step, history, best). The model
folder itself is rewritten atomically with the best weights whenever validation improves, so it never
holds training state. `--resume NAME` reads this folder and continues with the next epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from paprec_cli.errors import PaprecError
from paprec_cli.paths import Home, atomic_path, write_json_atomic
from paprec_cli.training.recipe import TrainOptions

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject

STATE_VERSION = 1


def state_dir(home: Home, name: str) -> Path:
    return home.models / ".train-state" / name


@dataclass
class RunState:
    """What `state.json` records; `history` has one entry per finished epoch."""

    options: TrainOptions
    epoch: int = 0  # epochs finished
    step: int = 0
    seconds: float = 0.0  # training wall time so far (all sessions)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("-inf")
    finished: bool = False

    def to_json(self) -> JSONObject:
        return {
            "version": STATE_VERSION,
            "options": self.options.to_json(),
            "epoch": self.epoch,
            "step": self.step,
            "seconds": self.seconds,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score if self.best_epoch else None,
            "finished": self.finished,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RunState:
        best = obj.get("best_score")
        return cls(
            options=TrainOptions.from_json(obj["options"]),
            epoch=int(obj["epoch"]),
            step=int(obj["step"]),
            seconds=float(obj.get("seconds", 0.0)),
            history=list(obj.get("history", [])),
            best_epoch=int(obj.get("best_epoch", 0)),
            best_score=float("-inf") if best is None else float(best),
            finished=bool(obj.get("finished", False)),
        )


def save_weights(model: nn.Module, path: Path) -> None:
    """Safetensors, with tied T5 embeddings handled by `safetensors.torch.save_model`."""
    with atomic_path(path) as tmp:
        save_model(model, str(tmp))


def load_weights(model: nn.Module, path: Path) -> None:
    missing, unexpected = load_model(model, str(path), strict=False)
    if unexpected or [k for k in missing if "embed_tokens" not in k and "lm_head" not in k]:
        raise PaprecError(f"{path}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def save_state(folder: Path, state: RunState, model: nn.Module, optimizer: torch.optim.Optimizer, best: bool) -> None:
    """Write last weights (and best weights when this epoch is the best), optimiser, RNG, state.json."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / "last.safetensors")
    if best:
        save_weights(model, folder / "best.safetensors")
    extra = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        extra["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic_path(folder / "optimizer.pt") as tmp:
        torch.save(extra, tmp)
    write_json_atomic(folder / "state.json", state.to_json())


def read_state(folder: Path, name: str) -> RunState:
    path = folder / "state.json"
    if not path.exists():
        raise PaprecError(f"--resume {name}: no training state at {folder}; start it with `paprec train --name {name}`")
    try:
        return RunState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise PaprecError(f"--resume {name}: {path} is damaged ({err}); train again without --resume") from err


def restore(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Last weights, optimiser moments and RNG state, as saved after the last finished epoch."""
    load_weights(model, folder / "last.safetensors")
    extra = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    torch.set_rng_state(extra["torch_rng"])
    if "cuda_rng" in extra and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(extra["cuda_rng"])
