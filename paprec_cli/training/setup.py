"""Resolving what a training run works on: the dataset (importing `synthetic` on first use), the tasks,
the model name, and the options merged from the size's recipe, the command line and a resume state."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from typing import Any

from paprec_cli.checks import check_plain_name, check_seed
from paprec_cli.data import needs
from paprec_cli.data.splits import N_NEGATIVES
from paprec_cli.data.store import Dataset, dataset_exists, import_dataset, load_dataset
from paprec_cli.errors import PaprecError
from paprec_cli.model.codec import ID_SCHEMES
from paprec_cli.paths import Home
from paprec_cli.plugins import Registry
from paprec_cli.specs import TaskSpec
from paprec_cli.training.mixture import Mixture
from paprec_cli.training.recipe import (
    ITEM_HEADS,
    Recipe,
    TrainOptions,
    item_init_for,
    mixture_for,
    recipe_dataset,
    recipe_for,
    with_overrides,
)

#: Datasets `paprec train` imports by itself when missing (generated, no files needed).
AUTO_IMPORT = ("synthetic",)
SIZES = ("tiny", "small", "base")
#: Order of the built-in tasks when the dataset decides.
DEFAULT_TASK_ORDER = ("sequential", "direct", "rating")


def ensure_dataset(home: Home, name: str, registry: Registry, say: Callable[[str], None]) -> Dataset:
    """The imported dataset; `synthetic` is imported with its defaults on first use (said on stderr)."""
    if not dataset_exists(home, name) and name in AUTO_IMPORT and name in registry.datasets:
        say(f"Dataset '{name}' is not imported yet: importing it with its defaults into {home.dataset_dir(name)}")
        import_dataset(registry.dataset(name), None, home)
    check_dataset_available(home, name, registry)
    return load_dataset(home, name)


def check_dataset_available(home: Home, name: str, registry: Registry) -> None:
    """A one-line error naming the fix when `--dataset name` is neither imported nor imported on first use
    (`AUTO_IMPORT`): checked before a run takes its model name, so a refused run leaves nothing behind."""
    if not dataset_exists(home, name) and not (name in AUTO_IMPORT and name in registry.datasets):
        if name in registry.datasets:
            raise PaprecError(
                f"--dataset {name}: not imported in {home.data}; run `paprec data import {name} --from PATH` first"
            )
        imported = sorted(p.name for p in home.data.glob("*") if (p / "manifest.json").is_file()) \
            if home.data.is_dir() else []
        raise PaprecError(
            f"--dataset {name}: no dataset of that name in {home.data} (imported: {', '.join(imported) or 'none'}) "
            f"and no importer of that name (importers: {', '.join(sorted(registry.datasets))}); import one with "
            f"`paprec data import IMPORTER --from PATH --name {name}`"
        )


def resolve_tasks(
    names: Sequence[str] | None,
    dataset: Dataset,
    registry: Registry,
    negatives: int = N_NEGATIVES,
    say: Callable[[str], None] | None = None,
) -> list[TaskSpec]:
    """Requested tasks, or those the dataset supports (each task's `needs`, see `paprec_cli.data.needs`).

    The default set leaves out a task the dataset cannot support and says so in one line via `say`;
    a task named explicitly that the dataset cannot support is refused (PaprecError) naming the fix.
    """
    if not names:
        tasks = []
        for name in (t for t in DEFAULT_TASK_ORDER if t in registry.tasks):
            task = registry.task(name, "--tasks")
            reason = needs.unmet(task, dataset, negatives)
            if reason is None:
                tasks.append(task)
            elif say is not None:
                other = needs.remedy(task, dataset)
                say(f"Task {name} left out: {reason}" + (f"; to train it, {other}" if other else ""))
    else:
        tasks = [registry.task(n, "--tasks") for n in dict.fromkeys(names)]
        for task in tasks:
            reason = needs.unmet(task, dataset, negatives)
            if reason is not None:
                raise PaprecError(f"--tasks {task.name}: {reason}; {needs.fix(task, dataset)}")
    if not tasks:
        raise PaprecError("--tasks: no task to train; give e.g. --tasks sequential,direct")
    return tasks


#: `-o KEY=VALUE` settings of a training run: (type, what it is). `negatives` is a protocol setting; the
#: others change the size's recipe (`Recipe`) or mixture (`Mixture`) for this run (docs/RECIPE-18.md).
TRAIN_SETTINGS: dict[str, tuple[type, str]] = {
    "negatives": (int, "the direct task's never-seen negatives, default 99"),
    "history": (int, "most recent items a sequential prompt shows, default 20"),
    "recent": (int, "each user's most recent training examples kept per ranking task, 0 = all prefixes"),
    "warmup": (float, "share of the schedule spent warming up, in [0, 1)"),
    "seen_penalty": (float, "weight of the penalty on items the prompt already lists, 0 = off"),
    "share": (float, "share of every task's training examples drawn (seeded) per epoch, in (0, 1]"),
    "hint": (float, "attribute-hinted copies, as a share of ranking examples"),
    "history_hint": (float, "copies with their own history's most frequent attribute appended, as a share of "
                     "ranking examples (the personal slot's `history_word`)"),
    "word_item": (float, "(user, word) -> item pairs, as a share of ranking examples"),
    "item_next": (float, "item -> next item pairs, as a share of ranking examples"),
    "user_item": (float, "user -> item pairs, as a share of ranking examples"),
    "item_words": (float, "passes over item -> attribute words per epoch"),
    "future": (int, "items after the target (training sequence) trained as extra targets, 0 = off; atomic ids"),
    "future_weight": (float, "weight of those future items' loss against the next item's, default 1"),
    "user_dropout": (float, "share of training prompts whose user id becomes the unknown token, 0 = off; atomic ids"),
    "item_head": (str, "untied (item tokens get output rows of their own; atomic ids) or tied, default tied"),
    "seen_bias": (int, "1: learn a logit bias for the items the prompt lists (repeats), 0 = off; atomic ids"),
}
#: Settings that change the training data or the model's inputs: a resumed run keeps its own.
RECIPE_FIELDS = frozenset(f.name for f in fields(Recipe))
MIXTURE_FIELDS = frozenset(f.name for f in fields(Mixture))
FRESH_ONLY = (
    "history", "recent", "share", "hint", "history_hint", "word_item", "item_next", "user_item", "item_words",
    "item_head", "future", "future_weight", "user_dropout", "seen_bias",
)


def parse_train_options(pairs: Sequence[str]) -> dict[str, int | float | str]:
    """`-o KEY=VALUE` settings of a training run (`TRAIN_SETTINGS`), checked: a one-line error names the
    setting and what it expects."""
    out: dict[str, int | float | str] = {}
    known = ", ".join(f"{k}=" for k in TRAIN_SETTINGS)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in TRAIN_SETTINGS:
            raise PaprecError(f"-o {pair}: expected KEY=VALUE with KEY one of {known} (e.g. negatives=49)")
        if key in out:
            raise PaprecError(f"-o {key} given twice; give it once")
        kind, meaning = TRAIN_SETTINGS[key]
        if kind is str:
            if value not in ITEM_HEADS:
                raise PaprecError(f"-o {pair}: expected {meaning}")
            out[key] = value
            continue
        try:
            number = kind(value)
        except ValueError:
            raise PaprecError(f"-o {pair}: expected {kind.__name__ == 'int' and 'a whole number' or 'a number'} "
                              f"({meaning})") from None
        if key == "negatives":
            out[key] = needs.check_negatives(int(number))
            continue
        bounds = {"history": "a whole number >= 1", "share": "a number in (0, 1]",
                  "seen_bias": "0 or 1"}.get(key, "a number >= 0")
        if not math.isfinite(number) or number < 0 or (key == "history" and number < 1) or (
            key == "share" and not 0 < number <= 1
        ) or (key == "seen_bias" and number not in (0, 1)):
            raise PaprecError(f"-o {pair}: out of range; expected {bounds} ({meaning})")
        out[key] = number
    return out


def parse_tasks(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise PaprecError("--tasks: empty; give a comma-separated list such as sequential,direct")
    return names


def _ranks_all_items(tasks: Sequence[str]) -> bool:
    """Whether any of `tasks` ranks over all items (a ranking task without a candidate list: sequential), where
    a seen bias is trained and used. A name that is not a task counts as one (its own error comes later)."""
    from paprec_cli.plugins import load_registry

    registry = load_registry()
    for name in tasks:
        try:
            spec = registry.task(name, "--tasks")
        except PaprecError:
            return True
        if spec.kind == "ranking" and not spec.needs.negatives:
            return True
    return False


def new_options(
    *,
    dataset: str,
    tasks: Sequence[str],
    size: str,
    ids: str,
    name: str | None,
    seed: int,
    time_budget: float | None,
    init: str | None,
    overrides: dict[str, Any],
    negatives: int = N_NEGATIVES,
    tokenizer: str | None = None,
    settings: dict[str, int | float | str] | None = None,
    recipe_key: str | None = None,
) -> TrainOptions:
    """Options of a fresh run: the size's recipe and mixture for `recipe_key` (`recipe.DATASET_RECIPES`; default
    `dataset`, the import's name; `recipe.recipe_dataset` gives its importer), with command-line overrides and
    `-o` settings (`TRAIN_SETTINGS`, without `negatives`)."""
    check_seed(seed)
    if ids not in ID_SCHEMES:
        raise PaprecError(f"--ids {ids}: expected one of {', '.join(ID_SCHEMES)}")
    if time_budget is not None and time_budget <= 0:
        raise PaprecError(f"--time-budget {time_budget}: expected a positive number of seconds")
    settings = settings or {}
    recipe_changes = {k: v for k, v in settings.items() if k in RECIPE_FIELDS}
    mixture_changes: dict[str, Any] = {k: v for k, v in settings.items() if k in MIXTURE_FIELDS}
    base = recipe_for(size, recipe_key or dataset)
    recipe = with_overrides(base, **{**recipe_changes, **overrides})
    recipe = _check_item_head(item_init_for(recipe, ids, init, overrides.get("item_init")), ids, init)
    mixture = replace(mixture_for(size, recipe_key or dataset), **mixture_changes)
    if init and "seen_bias" in settings:  # either value: the model keeps what its checkpoint has
        raise PaprecError(f"-o seen_bias={settings['seen_bias']}: --init keeps the checkpoint's own head (with "
                          "its seen bias, or without one); drop -o seen_bias, or train a fresh model without --init")
    if recipe.seen_bias and tasks and not _ranks_all_items(tasks):  # nothing would train or use the bias
        if "seen_bias" in settings:
            raise PaprecError(f"-o seen_bias=1: none of --tasks {','.join(tasks)} ranks over all items (the bias "
                              "is trained and used only there); add sequential to --tasks, or drop -o seen_bias")
        recipe = replace(recipe, seen_bias=0)  # a dataset default that cannot apply
    if recipe.seen_bias and (ids != "atomic" or init) and "seen_bias" not in settings:
        recipe = replace(recipe, seen_bias=0)  # a dataset default that cannot apply (an --init model keeps its own)
    if recipe.seen_bias and ids != "atomic":
        raise PaprecError(f"-o seen_bias=1 needs atomic ids: --ids {ids} has no token per item; use --ids atomic, "
                          "or drop -o seen_bias")
    if recipe.user_dropout > 0 and ids != "atomic" and "user_dropout" not in settings:
        recipe = replace(recipe, user_dropout=0.0)  # a dataset default that cannot apply (as item_init's)
    if recipe.user_dropout > 0 and ids != "atomic":
        raise PaprecError(f"-o user_dropout={recipe.user_dropout:g}: needs --ids atomic (one token per user); drop "
                          f"-o user_dropout or train with --ids atomic")
    if mixture.future > 0 and ids != "atomic":
        raise PaprecError(f"-o future={mixture.future}: needs --ids atomic (one token per item); drop -o future "
                          f"or train with --ids atomic")
    anneal_to_budget = True
    if time_budget is None and overrides.get("epochs") is None and recipe.default_time_budget:
        time_budget, anneal_to_budget = recipe.default_time_budget, recipe.default_budget_anneals
    return TrainOptions(
        dataset=dataset,
        tasks=tuple(tasks),
        size=size,
        ids=ids,
        name=name or f"{dataset}-{size}-{ids}",
        recipe=recipe,
        mixture=mixture,
        seed=seed,
        time_budget=time_budget,
        anneal_to_budget=anneal_to_budget,
        init=init,
        negatives=negatives,
        tokenizer=tokenizer,
    )


def _check_item_head(recipe: Recipe, ids: str, init: str | None) -> Recipe:
    """An untied item head (`-o item_head=untied`) needs item rows (atomic ids) of a fresh model."""
    if recipe.item_head == "untied" and (ids != "atomic" or init):
        reason = "--init loads the checkpoint's own head" if init else f"--ids {ids} has no row per item"
        raise PaprecError(f"-o item_head=untied needs atomic ids and a fresh model: {reason}; use --ids atomic "
                          "without --init, or drop -o item_head")
    return recipe


#: What a resumed run may change: its stopping rules. Everything else would train another model than the
#: uninterrupted run (a fresh review resumed with --lr 0.01 --batch-size 64 and got no word).
RESUME_MAY_CHANGE = ("epochs", "patience")


def resumed_options(saved: TrainOptions, given: dict[str, Any], overrides: dict[str, Any]) -> TrainOptions:
    """A resumed run keeps its identity and its recipe; only the stopping rules (`RESUME_MAY_CHANGE`,
    `time_budget`) may change.

    `given` holds identity options the user passed explicitly (None when not given); a value that
    differs from the saved one is an error rather than a silent restart, and so is a recipe value
    (`overrides`, None when not given) that differs from the saved recipe's."""
    from paprec_cli.training.command import RECIPE_OPTIONS

    for option, value in given.items():
        saved_value = getattr(saved, option.lstrip("-").replace("-", "_"))
        if value is not None and value != saved_value and not (option == "--tasks" and tuple(value) == saved_value):
            used = f"used {saved_value}" if saved_value is not None else f"was started without {option}"
            raise PaprecError(f"{option} {value}: the run being resumed {used}; drop {option} or start anew")
    time_budget = overrides.pop("time_budget", None)
    for key, value in overrides.items():
        if value is None or key in RESUME_MAY_CHANGE or key not in RECIPE_FIELDS:
            continue
        if value != getattr(saved.recipe, key):
            option = RECIPE_OPTIONS.get(key, f"-o {key}")
            shown = f"{option}={value}" if option.startswith("-o ") else f"{option} {value}"
            raise PaprecError(f"{shown}: the run being resumed trains with {getattr(saved.recipe, key)}, and "
                              f"a resume trains the model the uninterrupted run would (only --epochs, --patience and "
                              f"--time-budget may change); drop {option}, or start a new run")
    recipe = with_overrides(saved.recipe, **overrides)
    return replace(saved, recipe=recipe, time_budget=time_budget, anneal_to_budget=True)


def cli_options(home: Home, *, dataset: str | None, tasks: str | None, size: str | None, ids: str | None,
                name: str | None, seed: int, time_budget: float | None, init: str | None, resume: str | None,
                overrides: dict[str, object], settings: Sequence[str] = (),
                tokenizer: str | None = None) -> TrainOptions:
    """`paprec train`'s options as given (None: not given) -> checked `TrainOptions`: a fresh run's, or,
    with `resume`, the saved run's with the allowed overrides (a one-line error for each conflict)."""
    import math

    if size is not None and size not in SIZES:
        raise PaprecError(f"--size {size}: expected one of {', '.join(SIZES)}")
    if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
        raise PaprecError(f"--time-budget {time_budget}: expected a positive number of seconds")
    task_names = parse_tasks(tasks)
    parsed = parse_train_options(settings)
    negatives = {k: int(v) for k, v in parsed.items() if k == "negatives"}
    changes = {k: v for k, v in parsed.items() if k != "negatives"}
    if resume:
        fresh = [k for k in changes if k in FRESH_ONLY]
        if fresh:
            raise PaprecError(f"-o {fresh[0]} applies to a fresh run only (it changes the training data, the "
                              f"model's inputs or its loss); drop it when using --resume")
        from paprec_cli.given import given_options
        from paprec_cli.training.state import read_state, state_dir

        if overrides.get("item_init") is not None:
            raise PaprecError("--item-init applies to a fresh run only; drop it when using --resume")
        saved = read_state(state_dir(home, resume), resume).options
        given = {"--dataset": dataset, "--size": size, "--ids": ids, "--tasks": task_names, "--init": init,
                 "--negatives": negatives.get("negatives"), "--tokenizer": tokenizer,
                 "--seed": seed if "seed" in given_options() else None,
                 "--name": name if name not in (None, resume) else None}  # fmt: skip
        return resumed_options(saved, given, {**changes, **overrides, "time_budget": time_budget})
    if dataset is None:
        raise PaprecError("--dataset is required (e.g. --dataset synthetic); see `paprec data list`")
    if init:
        ids = _init_ids(home, init, ids)
    return new_options(
        dataset=dataset, tasks=task_names or [], size=size or "tiny", ids=ids or "atomic", name=name,
        seed=seed, time_budget=time_budget, init=init, overrides=overrides, tokenizer=tokenizer, settings=changes,
        recipe_key=recipe_dataset(dataset, home.root), **negatives,
    )  # fmt: skip


def _init_ids(home: Home, init: str, ids: str | None) -> str | None:
    """The id scheme of a run started from `init`: the checkpoint's own where its files fix one (a paprec model,
    a P5 weight file), else `ids` (a Hugging Face folder). A different `--ids` is refused: the weights and
    tokenizer cannot change scheme, and the run would record one scheme while training the other."""
    from paprec_cli.model.checkpoint import checkpoint_id_scheme

    own = checkpoint_id_scheme(init, home)
    if own is None:
        return ids
    if ids is not None and ids != own:
        raise PaprecError(f"--ids {ids}: --init {init} has {own} ids (its tokenizer and weights are made for them); "
                          f"drop --ids, or train a fresh model with --ids {ids} instead of --init")
    return own


def name_taken(home: Home, name: str) -> bool:
    """True when model `name` exists in `home` or has a resumable training state (`state.json`)."""
    from paprec_cli.training.state import STATE, recover, state_dir

    folder = state_dir(home, name)
    recover(folder)
    return home.model_dir(name).exists() or (folder / STATE).is_file()


def claim_model_name(home: Home, options: TrainOptions, *, explicit: bool, force: bool) -> TrainOptions:
    """The name a fresh training run writes to, so that no existing model is replaced without `--force`.

    A name is taken when its model folder or a resumable training state (`state.json`) exists; a state
    folder left by a start interrupted before its first saved epoch holds nothing to resume and is removed.
    An explicit `--name` that is taken is refused (naming `--force`, another `--name` and `--resume`); with
    `force` the old training state is removed first (the model folder itself is replaced atomically at the
    first saved epoch). The default name `<dataset>-<size>-<ids>`, when taken, becomes the first free
    `<default>-2`, `-3`, ... (said on stderr by the caller), so the quick start can be run twice.
    Raises `PaprecError`.
    """
    import shutil

    from paprec_cli.training.state import state_dir

    def taken(name: str) -> bool:
        return name_taken(home, name)

    name = check_plain_name(options.name)
    if not taken(name):
        # a start interrupted before its first saved epoch leaves a state folder with nothing to resume
        shutil.rmtree(state_dir(home, name), ignore_errors=True)
        return options
    if force:
        shutil.rmtree(state_dir(home, name), ignore_errors=True)
        return options
    if explicit:
        raise PaprecError(
            f"--name {name}: a model or training state of that name already exists in {home.models}; pass "
            f"--force to replace it, another --name, or --resume {name} to continue it"
        )
    n = 2
    while taken(f"{name}-{n}"):
        n += 1
    return replace(options, name=f"{name}-{n}")
