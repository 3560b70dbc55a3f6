"""The `paprec train` command line that starts a run's options afresh: the fix a message gives when a run
cannot go on (a damaged resume checkpoint). It must run as printed and train what the user asked for: every
option that differs from what `paprec train` would choose by itself is written out (`setup.new_options` is
the inverse, checked by `tests/test_review_16e.py`)."""

from __future__ import annotations

import shlex
from pathlib import Path

from paprec_cli.data.splits import N_NEGATIVES
from paprec_cli.paths import home_option
from paprec_cli.training.recipe import TrainOptions, item_init_for, mixture_for, recipe_dataset, recipe_for

#: Recipe fields with a `paprec train` option of their own.
RECIPE_OPTIONS = {"lr": "--lr", "batch_size": "--batch-size", "epochs": "--epochs", "patience": "--patience",
                  "dropout": "--dropout", "weight_decay": "--weight-decay", "val_users": "--val-users"}
#: Recipe fields set with `-o KEY=VALUE` (`setup.TRAIN_SETTINGS`).
RECIPE_SETTINGS = ("history", "warmup", "seen_penalty", "item_head", "future_weight", "user_dropout", "seen_bias")
#: Mixture fields set with `-o KEY=VALUE`.
MIXTURE_SETTINGS = ("recent", "share", "hint", "history_hint", "word_item", "item_next", "user_item", "item_words",
                    "future")


def train_command(options: TrainOptions, name: str, home: Path | None = None) -> str:
    """`paprec train ...` (shell-quoted) that trains `options` afresh under `name`: dataset, tasks (unless the
    dataset decides them: none resolved yet), size, ids and seed always; recipe numbers, `-o` settings, the time
    budget, `--init` and `--tokenizer` where they differ from the size's defaults for the dataset; `--home` when
    `home` is not where paprec looks without one (PAPREC_HOME, else the platform folder). Recipe fields no
    option sets (the schedule's shape) are the size's, so they are not written."""
    key = recipe_dataset(options.dataset, home)  # the importer's recipe, as `setup.cli_options` chose it
    base = recipe_for(options.size, key)
    mixture = mixture_for(options.size, key)
    recipe = options.recipe
    args = ["paprec", "train", "--dataset", options.dataset,
            *(["--tasks", ",".join(options.tasks)] if options.tasks else []),
            "--size", options.size, "--ids", options.ids, "--seed", str(options.seed)]
    capped_by_default = options.time_budget is not None and not options.anneal_to_budget
    for key, flag in RECIPE_OPTIONS.items():
        value = getattr(recipe, key)
        # --epochs also turns off the size's default cap, which a run without one must not get back
        if value != getattr(base, key) or (key == "epochs" and base.default_time_budget and not capped_by_default):
            args += [flag, str(value)]
    if options.time_budget is not None and not capped_by_default:
        args += ["--time-budget", f"{options.time_budget:g}"]
    if recipe.item_init != item_init_for(base, options.ids, options.init, None).item_init:
        args += ["--item-init", recipe.item_init]
    if options.init:
        args += ["--init", options.init]
    if options.tokenizer:
        args += ["--tokenizer", options.tokenizer]
    settings = [(key, getattr(recipe, key), getattr(base, key)) for key in RECIPE_SETTINGS]
    settings += [(key, getattr(options.mixture, key), getattr(mixture, key)) for key in MIXTURE_SETTINGS]
    settings.append(("negatives", options.negatives, N_NEGATIVES))
    for key, value, default in settings:
        if key == "seen_bias" and (options.init or options.ids != "atomic"):
            continue  # the dataset's default gave way there (an --init model keeps its own; --init refuses it)
        if value != default:
            args += ["-o", f"{key}={value}"]
    args += ["--name", name, *home_option(home)]
    return shlex.join(args)
