"""The model registry: which trained models a home holds, the default model of a dataset, and a model's
fingerprint and split seed.

Reads only `config.json`, `codec.json`, `training.json`, `tokenizer.json` and the weights' header (never the
weights), so
listing is instant. The one owner of
"which models exist": `paprec models`, `paprec search` (default model), `paprec recommend` and
prompt binding (`paprec_cli.runs`) all ask here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from paprec_cli.errors import PaprecError, os_error_message
from paprec_cli.paths import Home, sha256_file

if TYPE_CHECKING:
    import torch

    from paprec_cli.model.bundle import ModelBundle

CONFIG_FILE = "config.json"
TRAINING_FILE = "training.json"
WEIGHTS_FILE = "model.safetensors"

#: A model's JSON record as stored (`config.json`, `training.json`); {} when absent.
ModelJson = dict[str, Any]


class ModelSummary(TypedDict):
    """One row of `paprec models list --json`."""

    name: str
    path: str
    dataset: str | None
    size: str | None
    ids: str | None
    tasks: list[str]
    epochs: int | None
    best_epoch: int | None
    test: dict[str, dict[str, float]]
    created: str | None
    trained: bool
    #: Why the model's files cannot be read (one line: file, field, fix); None for a readable model.
    broken: str | None
    #: `unfinished_training`: one line when the folder holds an interrupted (or running) training's best epoch.
    unfinished: str | None


def read_model_json(path: Path) -> ModelJson:
    """A model folder's `config.json` or `training.json` ({} for a missing `training.json`), checked against its
    schema (`paprec_cli.model.records`); a damaged file is a one-line `PaprecError` naming the file and field."""
    from paprec_cli.model.records import read_config, read_training

    folder = Path(path).parent
    return read_training(folder) if Path(path).name == TRAINING_FILE else read_config(folder)


def model_folders(home: Home) -> list[Path]:
    """Folders holding a model (a `config.json`); hidden folders (temporary files, training state) skip."""
    if not home.models.is_dir():
        return []
    return sorted(
        p for p in home.models.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / CONFIG_FILE).exists()
    )


def headline(training: ModelJson) -> str:
    """The first test metric worth showing: HR@10 of the first ranking task, else RMSE."""
    for task, metrics in (training.get("test") or {}).items():
        for key in ("HR@10", "RMSE"):
            if key in metrics and metrics[key] is not None:
                return f"{task} {key} {metrics[key]:.4f}"
    return ""


def _dataset_name(record: ModelJson) -> str | None:
    dataset = record.get("dataset")
    if isinstance(dataset, dict):
        return dataset.get("name")
    return str(dataset) if dataset else None


def model_summary(folder: Path) -> ModelSummary:
    """One model's identity and headline numbers from its JSON files (a row of `paprec models list --json`);
    a model whose `config.json`, `codec.json` or `training.json` is damaged (`config.json` also when its content
    differs from its `config_sha256`), whose `tokenizer.json` is missing,
    unreadable or of another size than `codec.json` records, or whose `model.safetensors` is missing, truncated
    or damaged (its header checked against the file's size, not hashed), is a row with `broken` set (and nothing
    else)."""
    from paprec_cli.model.records import (
        PAPREC_FORMAT,
        check_config_digest,
        check_id_scheme,
        check_seen_bias,
        model_fix,
        read_codec,
    )
    from paprec_cli.model.tokenizer import read_model_tokenizer
    from paprec_cli.model.weights_check import check_safetensors

    try:
        config = read_model_json(folder / CONFIG_FILE)
        training = read_model_json(folder / TRAINING_FILE)
        if config.get("format") == PAPREC_FORMAT:
            codec = read_codec(folder)
            check_id_scheme(folder, config.get("id_scheme"), codec.id_scheme)
            read_model_tokenizer(folder, codec.text_vocab_size, model_fix(folder), codec.tokenizer_sha256)
            check_safetensors(folder / WEIGHTS_FILE, model_fix(folder))
            check_config_digest(folder, config)
            check_seen_bias(folder, config.get("seen_bias") is True, _seen_bias_tensor(folder))
    except (PaprecError, OSError) as err:  # OSError: a file the user cannot read
        why = os_error_message(err) if isinstance(err, OSError) else str(err)
        return {"name": folder.name, "path": str(folder), "dataset": None, "size": None, "ids": None, "tasks": [],
                "epochs": None, "best_epoch": None, "test": {}, "created": None, "trained": False,
                "broken": why, "unfinished": None}  # fmt: skip
    return {
        "name": folder.name,
        "path": str(folder),
        "dataset": _dataset_name(training) or _dataset_name(config),
        "size": training.get("size") or config.get("size"),
        "ids": training.get("ids") or config.get("id_scheme"),
        "tasks": training.get("tasks") or [],
        "epochs": training.get("epochs"),
        "best_epoch": training.get("best_epoch"),
        "test": training.get("test") or {},
        "created": training.get("created"),
        "trained": bool(training),
        "broken": None,
        "unfinished": unfinished_training(folder),
    }


def unfinished_training(folder: Path) -> str | None:
    """One line when the model at `folder` is not a finished training run but the best epoch so far of one that
    has a resume state (`<models>/.train-state/<name>/state.json`) without its test report: interrupted (the
    fix: `paprec train --resume NAME`), or still training in another process (its lock is held). None for a
    finished run (its `training.json` is written last), an imported or initialised model, or a model outside a
    home. Reads `state.json` as plain JSON: `paprec_cli.training.state` would import torch into `models list`."""
    import json

    from paprec_cli.locks import lock_path, writer_of
    from paprec_cli.paths import train_state_dir

    path = train_state_dir(folder) / "state.json"
    if (folder / TRAINING_FILE).is_file() or not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return (f"its training's resume state {path} cannot be read: no test report yet; see `paprec train --resume "
                f"{folder.name}`")
    if not isinstance(state, dict) or state.get("finished") is True:
        return None
    epoch, best = state.get("epoch"), state.get("best_epoch")
    recipe = (state.get("options") or {}).get("recipe") if isinstance(state.get("options"), dict) else None
    planned = recipe.get("epochs") if isinstance(recipe, dict) else None
    done = f"epoch {epoch}" + (f" of {planned}" if isinstance(planned, int) else "")
    holder = writer_of(lock_path(folder))
    if holder is not None:
        return f"still training ({holder}; {done} done, this folder holds epoch {best}, the best so far)"
    return (f"training interrupted after {done}: this folder holds epoch {best}, the best so far, with no test "
            f"report; continue with `paprec train --resume {folder.name}`")


def unfinished_warning(model: str | Path) -> str | None:
    """The warning `search` and `eval` print when `model` (a model folder) holds the best epoch so far of a
    training run that has not finished (`unfinished_training`): results would describe a half-trained model."""
    folder = Path(model)
    line = unfinished_training(folder) if folder.is_dir() else None
    return None if line is None else f"warning: model '{folder.name}': {line}"


def list_models(home: Home) -> list[ModelSummary]:
    """Every model of the home, in name order (`paprec models list`); a broken one is listed with `broken`
    set, so that one damaged folder never hides the others."""
    return [model_summary(folder) for folder in model_folders(home)]


def item_head(config: ModelJson) -> str:
    """How a model scores items (`config.json` `item_head`): "untied" (item tokens have output rows of their
    own, `-o item_head=untied`) or "tied" (the input embedding rows; recorded, or absent: every model before
    the option and every imported T5/P5 checkpoint)."""
    return "untied" if config.get("item_head") == "untied" else "tied"


def _seen_bias_tensor(folder: Path) -> torch.Tensor | None:
    """The `seen_bias` tensor of a model's weights (read alone, not the whole file); None when it holds none.
    The file's header was checked first (`check_safetensors`)."""
    from safetensors import safe_open

    from paprec_cli.model.records import SEEN_BIAS_KEY, model_fix

    try:
        with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as weights:
            return weights.get_tensor(SEEN_BIAS_KEY) if SEEN_BIAS_KEY in weights.keys() else None  # noqa: SIM118
    except Exception as err:  # safetensors' own error type: a header that parsed but data that does not
        raise PaprecError(f"{folder / WEIGHTS_FILE}: unreadable ({err}); {model_fix(folder)}") from None


def seen_bias(folder: Path, config: ModelJson) -> float | None:
    """The bias a model learned for the items its prompt lists (`config.json` `seen_bias`, `-o seen_bias=1`),
    a logit shift read from its weights (negative: it ranks what the prompt lists lower); None when it has
    none (every model before the option, every T5/P5 checkpoint) or its weights cannot be read or hold no
    single finite value (`models info` then shows "learned (unreadable)"; loading the model names the damage
    and the fix)."""
    if config.get("seen_bias") is not True:
        return None
    from paprec_cli.model.records import seen_bias_value

    try:
        tensor = _seen_bias_tensor(folder)
    except PaprecError:  # unreadable weights
        return None
    return None if tensor is None else seen_bias_value(tensor)  # None when damaged: loading refuses it


def model_record(home: Home, name: str) -> tuple[Path, ModelJson, ModelJson]:
    """(folder, config, training record) of a model by name or folder; unknown names list the known ones, and a
    model `paprec models list` shows as broken (`model_summary`: a `config.json` edited since the model was saved,
    damaged files, a seen bias its weights and config disagree about) is refused with the same one line."""
    folder = Path(name) if Path(name).is_dir() else home.model_dir(name)
    if not (folder / CONFIG_FILE).exists():
        known = ", ".join(p.name for p in model_folders(home)) or "none yet"
        raise PaprecError(f"model '{name}' not found in {home.models} (known: {known}); see `paprec models list`")
    broken = model_summary(folder)["broken"]  # the checks `models list` makes: one verdict for a model
    if broken:
        raise PaprecError(broken)
    return folder, read_model_json(folder / CONFIG_FILE), read_model_json(folder / TRAINING_FILE)


def default_model(home: Home, dataset: str) -> str:
    """The newest of `<dataset>-tiny-atomic` and its re-run versions `<dataset>-tiny-atomic-N` (a second
    `paprec train` with the default name writes `-2`, so re-running the quick start searches its own new
    model), else the single model trained on `dataset`; a one-line fix otherwise. (A model is written in a
    staged folder and renamed into place when complete, so a listed folder is a finished model.)"""
    base = f"{dataset}-tiny-atomic"
    versions = [(0, home.model_dir(base))] + [
        (int(p.name[len(base) + 1:]), p) for p in home.models.glob(f"{base}-*")
        if p.name[len(base) + 1:].isdigit()] if home.models.is_dir() else []
    ready = [(n, p) for n, p in versions if (p / CONFIG_FILE).is_file()]
    if ready:
        return str(max(ready)[1])
    found, broken = [], []
    for folder in model_folders(home):
        try:
            info = read_model_json(folder / CONFIG_FILE)
        except PaprecError:
            broken.append(folder.name)
            continue
        if (info.get("dataset") or {}).get("name") == dataset:
            found.append(folder)
    if len(found) == 1:
        return str(found[0])
    if found:
        names = ", ".join(p.name for p in found)
        raise PaprecError(f"several models are trained on '{dataset}' ({names}); choose one with --model NAME")
    unreadable = f" ({len(broken)} unreadable model folder(s): {', '.join(broken)}; see `paprec models list`)" \
        if broken else ""
    raise PaprecError(
        f"no trained model for dataset '{dataset}' in {home.models}{unreadable}; train one with "
        f"`paprec train --dataset {dataset}` or pass --model PATH"
    )


def model_fingerprint(bundle: ModelBundle) -> str:
    """16 hex digits of the weights' sha256 (recorded in config.json, else hashed from the folder);
    "unsaved" for a model that was never written."""
    config = getattr(bundle, "config", {}) or {}
    if config.get("weights_sha256"):
        return str(config["weights_sha256"])[:16]
    folder = getattr(bundle, "folder", None)
    weights = Path(folder) / "model.safetensors" if folder else None
    if weights is not None and weights.is_file():
        return sha256_file(weights)[:16]
    return "unsaved"


def split_seed(bundle: ModelBundle) -> int:
    """The seed of the splits the model was trained on (rating split, direct negatives); 0 if unrecorded."""
    config = getattr(bundle, "config", {}) or {}
    training = config.get("training") or {}
    for value in (config.get("split_seed"), training.get("split_seed"), training.get("seed"), config.get("seed")):
        if value is not None:
            return int(value)
    return 0


def split_negatives(bundle: ModelBundle) -> int:
    """The direct task's negatives per candidate list the model was trained with (`-o negatives=N`); 99 if
    unrecorded (models trained before the option existed used 99)."""
    from paprec_cli.data.splits import N_NEGATIVES

    value = (getattr(bundle, "config", {}) or {}).get("negatives")
    return int(value) if value is not None else N_NEGATIVES

