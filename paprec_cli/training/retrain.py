"""The exact `paprec train ... --force` command that makes a model folder again: the fix a damaged model's error
gives (`model.records.model_fix`), runnable as printed, as `data.reimport` gives a broken dataset's.

Read from what the folder records, without loading the model: the options of the run in `training.json`
(`TrainOptions`, every run since issue #16), turned into a command line by `command.train_command`; else the
facts `config.json` records (dataset, size, id scheme, seed, tasks, negatives, item head, seen bias, prompt
history and dropout where they differ from today's recipe for the dataset: a model whose
training did not finish, or made by the API); None when neither says enough (both damaged). From config.json
alone the command is exact only in what config.json records: the learning rate, epochs, `user_dropout`, the
mixture and the other training settings are today's defaults for the dataset, which may differ from the run's.
"""

from __future__ import annotations

import json
from pathlib import Path

from paprec_cli.training.command import train_command
from paprec_cli.training.recipe import TrainOptions


def retrain_command(folder: Path) -> str | None:
    """`paprec train ... --name NAME --force` (shell-quoted; `--home` when the home above `folder` is not the
    one paprec uses without it) that trains the model in `folder` afresh as it was trained; None when its
    files do not record enough."""
    folder = Path(folder)
    options = _from_training(folder)
    if options is not None:
        return f"{train_command(options, folder.name, folder.parent.parent)} --force"
    return _from_config(folder)


def _read(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _from_training(folder: Path) -> TrainOptions | None:
    record = _read(folder / "training.json")
    options = record.get("options") if record else None
    if not isinstance(options, dict):
        return None
    try:
        return TrainOptions.from_json(options)
    except (TypeError, ValueError, KeyError, AttributeError):  # an edited record: fall back to config.json
        return None


def _from_config(folder: Path) -> str | None:
    """The command from `config.json`'s facts (a model without a readable `training.json`)."""
    import shlex

    from paprec_cli.data.splits import N_NEGATIVES
    from paprec_cli.inputs import PAPREC
    from paprec_cli.model.sizes import MODEL_SIZES
    from paprec_cli.paths import home_option
    from paprec_cli.training.recipe import recipe_dataset, recipe_for

    config = _read(folder / "config.json")
    dataset = config.get("dataset") if config else None
    name = dataset.get("name") if isinstance(dataset, dict) else None
    if config is None or not isinstance(name, str) or not name or config.get("size") not in MODEL_SIZES:
        return None
    tasks, seed, negatives = config.get("tasks"), config.get("seed", 0), config.get("negatives")
    args = ["paprec", "train", "--dataset", name]
    if isinstance(tasks, list) and tasks:
        args += ["--tasks", ",".join(str(t) for t in tasks)]
    args += ["--size", str(config["size"]), "--ids", str(config.get("id_scheme") or "atomic"),
             "--seed", str(seed if isinstance(seed, int) else 0)]
    if isinstance(negatives, int) and negatives != N_NEGATIVES:
        args += ["-o", f"negatives={negatives}"]
    if config.get("item_head") == "untied":
        args += ["-o", "item_head=untied"]
    today = recipe_for(str(config["size"]), recipe_dataset(name, folder.parent.parent))  # without options
    if config.get("seen_bias") is True:
        args += ["-o", "seen_bias=1"]
    elif args[args.index("--ids") + 1] == "atomic" and today.seen_bias:
        args += ["-o", "seen_bias=0"]
    # config.json records input_history only where it differs from paprec's default (`run._config_extra`)
    history, dims = config.get("input_history", PAPREC.history), config.get("dims")
    if isinstance(history, int) and not isinstance(history, bool) and history != today.history:
        args += ["-o", f"history={history}"]  # the prompts the model was trained on (#18 changed ML-100K's)
    dropout = dims.get("dropout_rate") if isinstance(dims, dict) else None
    if isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and float(dropout) != today.dropout:
        args += ["--dropout", f"{float(dropout):g}"]
    return shlex.join([*args, "--name", folder.name, *home_option(folder.parent.parent), "--force"])
