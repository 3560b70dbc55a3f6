"""The training checkpoint is one staged folder swapped in at once (`training.state.save_state`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from paprec_cli.errors import PaprecError
from paprec_cli.training import state as run_state
from paprec_cli.training.recipe import TrainOptions, recipe_for


def _options() -> TrainOptions:
    return TrainOptions(dataset="synthetic", tasks=("sequential",), size="tiny", ids="atomic", name="m",
                        recipe=recipe_for("tiny"))


def _model(value: float) -> nn.Module:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(value)
    return model


def _save(folder: Path, epoch: int, value: float, best: bool) -> None:
    model = _model(value)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = run_state.RunState(_options(), epoch=epoch, step=10 * epoch, best_epoch=epoch if best else 1,
                               best_score=float(epoch), history=[{"epoch": n} for n in range(1, epoch + 1)])
    run_state.save_state(folder, state, model, optimizer, best)


def _weight(path: Path) -> float:
    model = _model(0.0)
    run_state.load_weights_file(model, path)
    return float(model.weight.detach()[0, 0])


def test_one_swap_carries_the_codec_and_an_unchanged_best(tmp_path: Path) -> None:
    folder = tmp_path / ".train-state" / "m"
    (folder / "codec").mkdir(parents=True)
    (folder / "codec" / "codec.json").write_text("{}", encoding="utf-8")
    _save(folder, 1, 1.0, best=True)
    _save(folder, 2, 2.0, best=False)
    assert sorted(p.name for p in folder.iterdir()) == ["best.safetensors", "checksums.json", "codec",
                                                         "last.safetensors", "optimizer.pt", "state.json"]
    assert (folder / "codec" / "codec.json").read_text(encoding="utf-8") == "{}"
    assert _weight(folder / run_state.LAST) == 2.0
    assert _weight(folder / run_state.BEST) == 1.0  # epoch 1 stays the best
    saved = run_state.read_state(folder, "m")
    assert (saved.epoch, saved.step, saved.best_epoch) == (2, 20, 1)
    assert not list(folder.parent.glob(".m.*"))  # no staging or backup left behind
    _save(folder, 3, 3.0, best=True)
    assert _weight(folder / run_state.BEST) == 3.0


def test_a_swap_interrupted_between_its_renames_resumes_from_the_previous_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    _save(folder, 1, 1.0, best=True)
    folder.rename(folder.with_name(".m.old"))  # what a crash after the first rename leaves
    assert run_state.read_state(folder, "m").epoch == 1
    assert _weight(folder / run_state.LAST) == 1.0


def test_a_missing_state_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(PaprecError, match="--resume m: no training state"):
        run_state.read_state(tmp_path / "m", "m")


def test_a_start_interrupted_before_its_first_epoch_does_not_take_the_name(tmp_path: Path) -> None:
    """SIGTERM in epoch 1 leaves `.train-state/<name>/codec` and no `state.json`: nothing to resume, so the
    same training starts again under the same name instead of leaking `<name>-2`."""
    from dataclasses import dataclass

    from paprec_cli.paths import Home
    from paprec_cli.training.setup import claim_model_name
    from paprec_cli.training.state import state_dir

    @dataclass(frozen=True)
    class Named:
        name: str

    home = Home.resolve(tmp_path)
    options = Named("synthetic-tiny-atomic")
    (state_dir(home, options.name) / "codec").mkdir(parents=True)
    assert claim_model_name(home, options, explicit=False, force=False) is options  # type: ignore[arg-type]
    assert not state_dir(home, options.name).exists()
    (state_dir(home, options.name)).mkdir(parents=True)
    (state_dir(home, options.name) / "state.json").write_text("{}")  # a resumable state keeps the name taken
    assert claim_model_name(home, options, explicit=False, force=False).name == "synthetic-tiny-atomic-2"  # type: ignore[arg-type]
