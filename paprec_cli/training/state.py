"""Resume state of a training run, kept beside the model folder.

`<home>/models/.train-state/<name>/` holds the *last* epoch's weights (`last.safetensors`), optimiser
and RNG state (`optimizer.pt`, tensors and numbers only, read with `weights_only=True`), the best
epoch's weights (`best.safetensors`), `state.json` (options, epoch, step, history, best), the SHA-256 of
both weight files (`checksums.json`, checked before either is read) and the codec (`codec/`, written when
the run starts). The model folder itself is rewritten atomically with
the best weights whenever validation improves, so it never holds training state. `--resume NAME`
reads this folder and continues with the next epoch.

One checkpoint, one owner, one swap (as nanoGPT writes one object): `save_state` stages the whole
folder (new files written, unchanged ones such as `codec/` and a best that did not change hard-linked
from the previous checkpoint) and swaps it in with one `atomic_path`, so weights, optimiser and
`state.json` always belong to the same epoch. A crash between the swap's two renames leaves the previous
checkpoint at `.<name>.old`; `read_state` puts it back. Checkpoints written before this layout hold the
same files in the same folder and resume unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from paprec_cli.errors import PaprecError, first_line
from paprec_cli.paths import Home, atomic_path, library_write, read_json_object, sha256_file, write_json_atomic
from paprec_cli.training.recipe import TrainOptions

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject

STATE_VERSION = 1
LAST, BEST, OPTIMIZER, STATE = "last.safetensors", "best.safetensors", "optimizer.pt", "state.json"
#: SHA-256 of the weight files as `save_state` wrote them, checked before they are read (`load_weights_file`):
#: a file changed in place (not truncated) would otherwise train on, or be reported, without a word.
CHECKSUMS = "checksums.json"


def state_dir(home: Home, name: str) -> Path:
    return home.train_state_dir(name)


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
        """The state `to_json` wrote, every field checked (ValueError naming it; `read_state` names the file):
        counts are whole numbers >= 0, `history` holds epochs 1..`epoch` in order, `best_epoch` is one of them
        (0 while none has scored) and `best_score` its finite score (null with best_epoch 0)."""
        _check_progress(obj)
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


def _check_progress(obj: dict[str, object]) -> None:
    import math

    def whole(key: str, value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} is {value!r}, expected a whole number >= 0")
        return value

    epoch = whole("epoch", obj.get("epoch"))
    whole("step", obj.get("step"))
    seconds = obj.get("seconds", 0.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds) \
            or seconds < 0:
        raise ValueError(f"seconds is {seconds!r}, expected a number of seconds >= 0")
    history = obj.get("history", [])
    if not isinstance(history, list) or len(history) != epoch:
        raise ValueError(f"history holds {len(history) if isinstance(history, list) else repr(history)} entries, "
                         f"expected one per finished epoch ({epoch})")
    for number, entry in enumerate(history, start=1):
        if not isinstance(entry, dict) or entry.get("epoch") != number:
            raise ValueError(f"history entry {number} is not epoch {number}'s record")
    best_epoch = whole("best_epoch", obj.get("best_epoch", 0))
    if best_epoch > epoch:
        raise ValueError(f"best_epoch is {best_epoch}, expected one of the finished epochs 1..{epoch}")
    best = obj.get("best_score")
    if best_epoch and (not isinstance(best, (int, float)) or isinstance(best, bool) or not math.isfinite(best)):
        raise ValueError(f"best_score is {best!r}, expected the best epoch's finite validation score")
    if not isinstance(obj.get("finished", False), bool):
        raise ValueError(f"finished is {obj.get('finished')!r}, expected true or false")


def _damaged(path: Path, err: BaseException, options: TrainOptions | None = None) -> PaprecError:
    """The error for a truncated or damaged checkpoint file: only one checkpoint is kept, so this run cannot go
    on; the fix destroys nothing that is intact (the model folder keeps the best epoch saved so far): train a new
    name with the run's options (`options`: as this command resolved them, the user's changes such as
    `--epochs` included; else read from `state.json` when it can be), or remove exactly this state."""
    folder = path.parent
    name = folder.name
    return PaprecError(f"{path}: not readable, truncated or damaged ({type(err).__name__}: {first_line(err)}); this "
                       f"training cannot be resumed; train it afresh under a new name with "
                       f"`{_fresh_command(folder, options)}` (the model '{name}', if saved, is kept), or delete the "
                       f"resume state {folder} to stop resuming it")


def _fresh_command(folder: Path, options: TrainOptions | None) -> str:
    """`paprec train` with the run's options (`training.command.train_command`) and a free name; `--home` when
    the home (three levels above `folder`) is not the one paprec uses without it."""
    from paprec_cli.training.command import train_command

    name = folder.name
    models = folder.parent.parent
    new = next(f"{name}-{n}" for n in range(2, 10_000)
               if not (folder.parent / f"{name}-{n}").exists() and not (models / f"{name}-{n}").exists())
    if options is None:
        try:
            options = RunState.from_json(json.loads((folder / STATE).read_text(encoding="utf-8"))).options
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"paprec train --dataset DATASET --name {new}"
    return train_command(options, new, models.parent)


def load_weights_file(model: nn.Module, path: Path, options: TrainOptions | None = None) -> None:
    """Weights saved by `save_state` (tied embeddings may be absent); anything else missing is an error, and a
    truncated or damaged file is a one-line `PaprecError` naming it and the fix (a fresh run with `options`)."""
    if not path.is_file():
        raise _damaged(path, FileNotFoundError("no such file"), options)
    _check_checksum(path, options)
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except Exception as err:  # safetensors raises its own error type (and OSError) for a truncated file
        raise _damaged(path, err, options) from None
    lacking = sorted(k for k in missing if "embed_tokens" not in k and "lm_head" not in k)
    if unexpected or lacking:
        raise PaprecError(f"{path}: weights do not fit the model (missing {lacking[:3]}, unexpected "
                          f"{sorted(unexpected)[:3]}); train it afresh with `{_fresh_command(path.parent, options)}`")


def _recorded_checksum(path: Path) -> str | None:
    """The SHA-256 `save_state` recorded for weight file `path`; None for a checkpoint written before the
    checksums, or one whose record is unreadable."""
    try:
        recorded = json.loads((path.parent / CHECKSUMS).read_text(encoding="utf-8")).get(path.name)
    except (OSError, ValueError, AttributeError):
        return None
    return recorded if isinstance(recorded, str) else None


def _check_checksum(path: Path, options: TrainOptions | None) -> None:
    """The damaged-file error when `path`'s SHA-256 differs from the one `save_state` recorded beside it (an
    unrecorded one is not checked)."""
    recorded = _recorded_checksum(path)
    if recorded is not None and sha256_file(path) != recorded:
        raise _damaged(path, ValueError("its content differs from the SHA-256 recorded when it was saved"), options)


def has_item_head(folder: Path) -> bool:
    """Whether the run's last checkpoint holds untied item rows (`RecLM.item_head`): a run started with
    `-o item_head=untied`, or with `--init` from such a model. False when there is no readable checkpoint (the
    restore names the damage)."""
    return _checkpoint_has(folder, "item_head")


def has_seen_bias(folder: Path) -> bool:
    """Whether the run's last checkpoint holds a seen bias (`RecLM.seen_bias`): a run started with
    `-o seen_bias=1`, or with `--init` from such a model. False when there is no readable checkpoint."""
    from paprec_cli.model.records import SEEN_BIAS_KEY

    return _checkpoint_has(folder, SEEN_BIAS_KEY)


def _checkpoint_has(folder: Path, key: str) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(folder / LAST), framework="pt") as weights:
            return key in weights.keys()  # noqa: SIM118  (a safetensors handle, not a dict)
    except Exception:  # damaged or missing: restore() reports it in one line
        return False


def save_state(folder: Path, state: RunState, model: nn.Module, optimizer: torch.optim.Optimizer, best: bool) -> None:
    """Write the checkpoint of a finished epoch as one staged folder swapped in at once: last weights
    (and best weights when this epoch is the best), optimiser and RNG state, `state.json`; everything
    else in the folder (the codec, an unchanged best) carries over from the previous checkpoint."""
    rewritten = {LAST, OPTIMIZER, STATE, CHECKSUMS} | ({BEST} if best else set())
    extra = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        extra["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic_path(folder) as staged:
        staged.mkdir(parents=True)
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.name not in rewritten:
                    _carry(entry, staged / entry.name)
        with library_write(folder / LAST):
            save_model(model, str(staged / LAST))
        if best:
            with library_write(folder / BEST):
                save_model(model, str(staged / BEST))
        with library_write(folder / OPTIMIZER):
            torch.save(extra, staged / OPTIMIZER)
        (staged / STATE).write_text(json.dumps(state.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        sums = {LAST: sha256_file(staged / LAST)}
        if (staged / BEST).is_file():  # an unchanged best keeps its recorded digest (hashed once, when written)
            sums[BEST] = (sha256_file(staged / BEST) if best else _recorded_checksum(folder / BEST)) \
                or sha256_file(staged / BEST)
        (staged / CHECKSUMS).write_text(json.dumps(sums, indent=2) + "\n", encoding="utf-8")


def _carry(source: Path, target: Path) -> None:
    """Hard-link (else copy) a file or folder of the previous checkpoint into the staged one."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(source), str(target))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def recover(folder: Path) -> None:
    """Put back the previous checkpoint if a crash interrupted a swap (only `.<name>.old` is left)."""
    backup = folder.with_name(f".{folder.name}.old")
    if not folder.exists() and backup.is_dir():
        backup.rename(folder)


def mark_finished(folder: Path, state: RunState) -> None:
    """Record that the run finished (its best model is saved): `state.json` alone changes."""
    write_json_atomic(folder / STATE, state.to_json())


def read_state(folder: Path, name: str) -> RunState:
    """The saved state of run `name`; a missing or damaged one is a one-line error naming the fix."""
    recover(folder)
    path = folder / STATE
    if not path.exists():
        from paprec_cli.locks import lock_path, writer_of

        model = folder.parent.parent / name
        holder = writer_of(lock_path(model))
        if holder is not None:  # a train in its first epoch: its state is written when that epoch ends
            raise PaprecError(f"--resume {name}: model '{name}' is being trained by {holder} (lock "
                              f"{lock_path(model)}) and has no finished epoch yet; wait until it ends (resume it "
                              "if it stops after saving an epoch), or stop it")
        raise PaprecError(f"--resume {name}: no training state at {folder}; start it with `paprec train --dataset "
                          f"DATASET --name {name}`")
    fix = (f"remove the damaged resume state {folder} (a finished model in {folder.parent.parent} is not touched) "
           f"and train again, or train under another --name")
    data = read_json_object(path, fix)
    try:
        return RunState.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise PaprecError(f"{path}: damaged training state ({type(err).__name__}: {err}); {fix}") from None


def restore(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
            options: TrainOptions | None = None, best_expected: bool = False) -> None:
    """Last weights, optimiser moments and RNG state, as saved after the last finished epoch; a damaged file's
    error suggests training `options` (the resumed run's, with the user's changes) afresh. `best_expected`: the
    state names a best epoch, so its weights (read after the last epoch, for the test report) must be there
    now, not found missing after the epochs are spent."""
    if best_expected and not (folder / BEST).is_file():
        raise _damaged(folder / BEST, FileNotFoundError("no such file"), options)
    load_weights_file(model, folder / LAST, options)
    path = folder / OPTIMIZER
    try:
        extra = torch.load(path, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(extra["optimizer"])
        torch.set_rng_state(extra["torch_rng"])
    except Exception as err:  # truncated (EOF / zip errors), or not the dict `save_state` writes
        raise _damaged(path, err, options) from None
    if "cuda_rng" in extra and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(extra["cuda_rng"])
