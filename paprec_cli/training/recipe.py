"""Training defaults per model size, and the resolved options of one training run.

The defaults are what measurements on synthetic, ml-100k and Beauty supported (see the CHANGELOG and
`paprec train --help`): from-scratch T5s need a higher learning rate than P5's fine-tuning recipe,
short warm-up, dropout and weight decay against over-fitting small datasets, and early stopping on
the validation metric; the auxiliary word families are on wherever items have attributes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paprec_cli.errors import PaprecError
from paprec_cli.training.item_init import ITEM_INITS
from paprec_cli.training.mixture import Mixture

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject


#: What `Recipe.seen_penalty_kind` may be.
SEEN_PENALTIES = ("pairwise", "unlikelihood")
#: What `Recipe.item_head` may be.
ITEM_HEADS = ("tied", "untied")


@dataclass(frozen=True)
class Recipe:
    """Optimisation settings of one size (every field can be overridden from the command line)."""

    lr: float
    batch_size: int
    epochs: int
    warmup: float = 0.05  # share of the planned steps spent warming up
    schedule: str = "cosine"  # "cosine" or "linear" decay to `min_lr_ratio * lr`
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    dropout: float = 0.1
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    patience: int = 3  # epochs without validation improvement before stopping
    val_users: int = 2000  # validation users sampled (seeded) per task for model selection
    #: Test examples per task in the closing prompt-sensitivity report (every template, plus word probes).
    sensitivity_examples: int = 500
    eval_batch_size: int = 256
    #: Start the whole-word embedding at zero (fresh models only): measured to shorten the plateau
    #: before a from-scratch model starts using its input tokens.
    zero_whole_word: bool = True
    #: How a fresh model's item and user rows start (atomic ids only; `item_init.py`): "cooccurrence"
    #: (training co-occurrence) or "random" (T5's initialisation).
    item_init: str = "random"
    #: Weight of a penalty on the items the prompt already lists, at the first target position (atomic ids
    #: only; `loop.seen_item_penalty`): for datasets where a user never meets an item twice (MovieLens
    #: ratings); 0 (off) where repeats are possible. Ranking and evaluation are unchanged: every item is
    #: still ranked. `seen_penalty_kind`: "pairwise" (BPR against the target) or "unlikelihood".
    seen_penalty: float = 0.0
    seen_penalty_kind: str = "pairwise"
    #: Weight of the future-window loss (`loop.future_loss`) against the next item's cross-entropy, where
    #: `Mixture.future` > 0: 1 weighs the window's mean log-probability as much as the next item's.
    future_weight: float = 1.0
    #: Share of training prompts whose user id is replaced by the unknown token (`loop.drop_users`; atomic
    #: ids). Evaluation and search always show the real id. 0: off.
    user_dropout: float = 0.0
    #: "untied": the item tokens get output rows of their own, started as copies of their input rows
    #: (`RecLM.untie_items`; atomic ids only), so the model can stop ranking the prompt's own items first
    #: (issue #18). "tied": T5's LM head, the item rows shared with the input (P5's layout).
    item_head: str = "tied"
    #: 1: the model learns one logit bias for the items its prompt lists (`RecLM.add_seen_bias`; atomic ids, a
    #: fresh model): how likely a user is to meet an item again, learned from the data (issue #18). 0: off.
    seen_bias: int = 0
    #: Most recent items a sequential prompt shows (paprec's own models; recorded in the model's config as
    #: `input_history`, so search, eval and serving write the same prompts). Shorter is faster to train.
    history: int = 20
    #: Cap (seconds) applied when neither --epochs nor --time-budget is given: tiny is the CPU quick
    #: start and should finish in minutes on any machine. The run stops there if not done; the schedule
    #: still follows the epochs (`TrainOptions.anneal_to_budget`), so results do not depend on speed.
    default_time_budget: float | None = None
    #: Whether that default budget also shapes the schedule (the learning rate anneals within it, as for
    #: a --time-budget the user gives): for recipes measured as budgets (docs/RECIPE-18.md).
    default_budget_anneals: bool = False


RECIPES: dict[str, Recipe] = {
    # Measured on synthetic (CHANGELOG). Tiny is the 3-minute CPU quick start. From random rows it spent
    # 3-4 of its ~10 epochs at popularity level (lr 3e-3 and 2e-3 never left it); from co-occurrence rows
    # (`item_init`) it is past that after one epoch and then over-fits within 2-3 epochs, so tiny trains 4
    # epochs at a lower lr with dropout. Validation (300 users) and the sensitivity report (250 test examples
    # per task) stay small; validating on all 600 users did not pick better epochs (test 0.167 and 0.160
    # against 0.172 and 0.192 for the same seeds).
    "tiny": Recipe(
        lr=5e-4, batch_size=64, epochs=4, dropout=0.1, patience=3, default_time_budget=150.0,
        val_users=300, sensitivity_examples=250, item_init="cooccurrence",
    ),
    "small": Recipe(lr=5e-4, batch_size=64, epochs=15, dropout=0.1, patience=3),
    "base": Recipe(lr=3e-4, batch_size=32, epochs=15, dropout=0.1, patience=3),
}


#: Training data mixtures per size. Tiny runs on a CPU in minutes, so each epoch draws a tenth of the
#: direct and rating examples and spends the rest on sequential and the cheap auxiliary families. With
#: co-occurrence rows the sequential signal dominates and words steered less (taste word vs unrelated word,
#: mean target rank 101.9 vs 108.1); twice the hinted and (user, word) -> item pairs restored it (three
#: seeds: 93.0/87.8/88.9 vs 119.1/127.3/121.4) at the same test HR@10 (CHANGELOG).
#: `history_hint` (issue #14): half as many again sequential examples carry their own history's most frequent
#: attribute at the end of the prompt, where the personal token sits. Without it the tiny model read every word
#: there as the target's attribute and the `history_word` reference gained +0.013 HR@10 [-0.005, +0.033] over
#: manual (oracle +0.030); with it +0.030 [+0.012, +0.050] (oracle +0.047), seed 0, 2 epochs (docs/ABLATION-14.md).
MIXTURES: dict[str, Mixture] = {
    "tiny": Mixture(hint=0.8, word_item=0.5, item_next=0.4, history_hint=0.5,
                    task_share={"direct": 0.1, "rating": 0.1}),
    "small": Mixture(item_next=0.5),
    "base": Mixture(item_next=0.5),
}


#: Per-dataset changes to a size's recipe and mixture, measured on that dataset (docs/RECIPE-18.md).
#: Keys are (dataset name, size); values name `Recipe` or `Mixture` fields. A dataset not listed trains
#: with its size's defaults.
DATASET_RECIPES: dict[tuple[str, str], dict[str, float | int | str | bool]] = {
    # Synthetic, tiny (the quick start; docs/RECIPE-18.md, "Session 20"): the generator rarely gives a user an
    # item twice, and the learned seen bias (`seen_bias`) took test HR@10 to 0.192 / 0.192 / 0.183 (seeds 0-2,
    # `--epochs 4`, one thread; popularity 0.087, 2.1-2.2x) from 0.168 (seed 0, the same conditions) and the
    # quick start's 0.167 / 0.182 / 0.167 (session 19, two threads); on two threads 0.170 / 0.187 / 0.180.
    # Validating on all 600 users (session 21): 300 users' noise chose epoch 1 (test 0.170, 1.96x) for the
    # quick start's own run; the NDCG@10 of all 600 never kept epoch 1 on 4 runs scored epoch by epoch, whose
    # epoch-1 models scored 0.170-0.183 on test and later ones 0.177-0.193. The quick start's command, seeds 0-2:
    # 0.190 / 0.182 / 0.185 (two threads), 0.192 / 0.192 / 0.185 (one thread, --epochs 4); 2.10-2.21x
    # (docs/RECIPE-18.md, "Session 21"). It costs about 2 s of validation per epoch.
    ("synthetic", "tiny"): {"seen_bias": 1, "val_users": 600},
    # ML-100K, tiny, sequential (docs/RECIPE-18.md): a 600 s budget on a loaded 2-core CPU buys ~60k
    # examples, a fifth of one epoch of the default mixture (264k pairs, 97k sequential), which stayed at
    # popularity level (test HR@10 0.050). Only sequential pairs, each user's 20 most recent prefixes, 10
    # history items (about twice the examples/s) and lr 2e-3 reached 0.086 / 0.081 / 0.081 (seeds 0-2); lr
    # 4e-3 (0.062) and all prefixes drawn a fifth per epoch (0.067) were worse (seed 0). Session 15 (whole
    # template words in the tokenizer, 7 epochs at ~200 examples/s): 0.071 / 0.081 / 0.084 with 300 validation
    # users, whose noise picked epochs 1 / 3 / 3; validating on all 943 users picked 6 / 4 / 6 and reached
    # 0.093 / 0.088 / 0.091. Item-kNN: 0.118, not beaten yet. Session 17: the model leaned on the user's id
    # (another user's id in the prompt: test HR@10 0.090 -> 0.031); `user_dropout` 0.5 (half of the training
    # prompts show the unknown token instead) made it read the history: 0.104 / 0.104 / 0.100 (seeds 0-2, quiet
    # machine, 10-11 epochs; docs/RECIPE-18.md, "Session 17"). Still below item-kNN. Session 18: about half of
    # the top 10 were movies the user had already rated; a learned seen bias (`seen_bias`) for the items the prompt
    # lists, 30 of them instead of 10, and no dropout (1.5-1.7x the examples per second: 340 instead of 200 at
    # 30 history items) reached 0.149 / 0.142 / 0.150 (seeds 0-2; docs/RECIPE-18.md, "Sessions 18-19"): above
    # item-kNN's 0.118 while both rank every item, below its 0.191 once both skip the user's known items.
    ("ml-100k", "tiny"): {
        "lr": 2e-3, "epochs": 100, "patience": 100, "history": 30, "recent": 20, "val_users": 1000,
        "user_dropout": 0.5, "seen_bias": 1, "dropout": 0.0,
        "hint": 0.0, "word_item": 0.0, "item_next": 0.0, "item_words": 0.0, "history_hint": 0.0,
        "default_time_budget": 600.0, "default_budget_anneals": True,
    },
}


def recipe_dataset(dataset: str, home_root: Path | None) -> str:
    """The `DATASET_RECIPES` key of imported dataset `dataset` in the home at `home_root`: the importer that made
    it (its manifest's `dataset`, e.g. "ml-100k" for an import named "ml-100k-item"), so that a dataset imported
    under another name trains with its kind's measured recipe; `dataset` itself when the manifest cannot tell
    (no home, not imported yet: the run's own checks say so)."""
    import json

    from paprec_cli.paths import Home

    if home_root is None:
        return dataset
    try:
        manifest = json.loads((Home(home_root).dataset_dir(dataset) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return dataset
    kind = manifest.get("dataset") if isinstance(manifest, dict) else None
    return kind if isinstance(kind, str) and kind else dataset


def recipe_for(size: str, dataset: str | None = None) -> Recipe:
    """The defaults of a size (custom sizes use small's), with `dataset`'s measured changes."""
    recipe = RECIPES.get(size, RECIPES["small"])
    changes = _dataset_changes(size, dataset, Recipe)
    return replace(recipe, **changes) if changes else recipe


def mixture_for(size: str, dataset: str | None = None) -> Mixture:
    """The training mixture of a size, with `dataset`'s measured changes."""
    mixture = MIXTURES.get(size, MIXTURES["small"])
    changes = _dataset_changes(size, dataset, Mixture)
    return replace(mixture, **changes) if changes else mixture


def _dataset_changes(size: str, dataset: str | None, kind: type) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    given = DATASET_RECIPES.get((dataset or "", size), {})
    return {k: v for k, v in given.items() if k in names}


@dataclass(frozen=True)
class TrainOptions:
    """Everything that determines a training run; stored in the resume state and in training.json."""

    dataset: str
    tasks: tuple[str, ...]
    size: str
    ids: str
    name: str
    recipe: Recipe
    mixture: Mixture = field(default_factory=Mixture)
    seed: int = 0
    time_budget: float | None = None
    #: Whether the learning-rate schedule anneals within `time_budget` (a budget the user asked for) or
    #: follows the planned epochs with the budget only as a stop (a size's default cap): a capped run that
    #: finishes in time is then the same on a fast and on a slow machine.
    anneal_to_budget: bool = True
    init: str | None = None
    #: Never-seen negatives per direct-task candidate list (`-o negatives=N`; P5's 99 by default).
    negatives: int = 99
    #: The T5 tokenizer (`tokenizer.json` / `spiece.model` file or folder) for a T5/P5 `init`; None: beside it.
    tokenizer: str | None = None

    def to_json(self) -> JSONObject:
        out = asdict(self)
        out["tasks"] = list(self.tasks)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainOptions:
        """The options a state or `training.json` recorded, each field checked against its type and the
        recipe against `check_recipe`. Raises ValueError naming the field (the reader names the file)."""
        values = dict(obj)
        if not isinstance(values.get("tasks"), list) or not all(isinstance(t, str) for t in values["tasks"]):
            raise ValueError(f"tasks is {values.get('tasks')!r}, expected a list of task names")
        values["tasks"] = tuple(values["tasks"])
        for kind, key in ((Recipe, "recipe"), (Mixture, "mixture")):
            if not isinstance(values.get(key) or {}, dict):
                raise ValueError(f"{key} is {values.get(key)!r}, expected an object")
            _check_types(kind, values.get(key) or {}, f"{key}.")
        values["recipe"] = Recipe(**_known(Recipe, values["recipe"]))
        values["mixture"] = Mixture(**_known(Mixture, values.get("mixture") or {}))
        known = _known(cls, values)
        _check_types(cls, {k: v for k, v in known.items() if k not in ("tasks", "recipe", "mixture")}, "")
        if known.get("ids") not in ("atomic", "subword"):
            raise ValueError(f"ids is {known.get('ids')!r}, expected atomic or subword")
        mixture: Mixture = values["mixture"]
        for name in ("hint", "word_item", "item_words", "item_next", "user_item", "history_hint", "recent", "future"):
            if getattr(mixture, name) < 0:
                raise ValueError(f"mixture.{name} is {getattr(mixture, name)!r}, expected a number >= 0")
        if not 0 < mixture.share <= 1 or any(not 0 <= v <= 1 for v in mixture.task_share.values()):
            raise ValueError(f"mixture.share {mixture.share!r} or mixture.task_share {mixture.task_share!r}: expected "
                             "a share in (0, 1] and shares in [0, 1]")
        problem = recipe_problem(values["recipe"])
        if problem is not None:
            option = problem[0].removeprefix("-o ").lstrip("-")
            raise ValueError(f"the recipe's {option} cannot train; expected {problem[1]}")
        return cls(**known)


def _check_types(kind: type, values: dict[str, object], prefix: str) -> None:
    """ValueError for the first value of `values` that is not of its `kind` field's declared type (a bool is
    not a number, a float is not an int, NaN and infinities are not numbers)."""
    import types
    import typing

    hints = typing.get_type_hints(kind)

    def fits(hint: object, value: object) -> bool:
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            return any(fits(arg, value) for arg in typing.get_args(hint))
        if hint is type(None):
            return value is None
        if hint is bool:
            return isinstance(value, bool)
        if hint is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if hint is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if hint is str:
            return isinstance(value, str)
        if typing.get_origin(hint) is dict:
            return isinstance(value, dict) and all(isinstance(k, str) and fits(typing.get_args(hint)[1], v)
                                                   for k, v in value.items())
        return True

    for name, value in values.items():
        if name in hints and not fits(hints[name], value):
            raise ValueError(f"{prefix}{name} is {value!r}, expected {getattr(hints[name], '__name__', hints[name])}")


def _known(kind: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in values.items() if k in names}


def check_recipe(recipe: Recipe) -> Recipe:
    """Reject values that cannot train, naming the option."""
    problem = recipe_problem(recipe)
    if problem is not None:
        raise PaprecError(f"{problem[0]}: invalid value; expected {problem[1]}")
    return recipe


def recipe_problem(recipe: Recipe) -> tuple[str, str] | None:
    """(option, what it expects) of the first value of `recipe` that cannot train; None when all can."""
    checks = [
        (recipe.lr > 0 and math.isfinite(recipe.lr), "--lr", "a positive learning rate such as 1e-3"),
        (recipe.batch_size >= 1, "--batch-size", "a positive integer"),
        (recipe.epochs >= 1, "--epochs", "a positive integer"),
        (0 <= recipe.warmup < 1, "warmup", "a share in [0, 1)"),
        (recipe.schedule in ("cosine", "linear"), "schedule", "cosine or linear"),
        (0 <= recipe.dropout < 1, "--dropout", "a probability in [0, 1)"),
        (recipe.weight_decay >= 0, "--weight-decay", "a non-negative number"),
        (recipe.patience >= 1, "--patience", "a positive integer"),
        (recipe.val_users >= 1, "--val-users", "a positive integer (validation users per epoch)"),
        (recipe.item_init in ITEM_INITS, "--item-init", " or ".join(ITEM_INITS)),
        (recipe.history >= 1, "-o history", "a positive number of items"),
        (recipe.seen_penalty >= 0 and math.isfinite(recipe.seen_penalty), "-o seen_penalty", "a weight >= 0"),
        (recipe.seen_penalty_kind in SEEN_PENALTIES, "seen_penalty_kind", " or ".join(SEEN_PENALTIES)),
        (recipe.item_head in ITEM_HEADS, "-o item_head", " or ".join(ITEM_HEADS)),
        (0 <= recipe.user_dropout <= 1, "-o user_dropout", "a share in [0, 1]"),
        (recipe.seen_bias in (0, 1), "-o seen_bias", "0 or 1"),
    ]
    for ok, option, expected in checks:
        if not ok:
            return option, expected
    return None


def with_overrides(recipe: Recipe, **overrides: Any) -> Recipe:
    """`recipe` with every non-None override applied, then checked."""
    chosen = {k: v for k, v in overrides.items() if v is not None}
    return check_recipe(replace(recipe, **chosen))


def item_init_for(recipe: Recipe, ids: str, init: str | None, asked: str | None) -> Recipe:
    """Co-occurrence rows need a row per item (atomic ids) and a fresh model; a size default that cannot
    apply is recorded as "random", an explicit request that cannot apply is an error."""
    if not recipe.item_init.startswith("cooccurrence") or (ids == "atomic" and not init):
        return recipe
    if asked is not None:
        reason = "--init loads every row from the checkpoint" if init else f"--ids {ids} has no row per item"
        raise PaprecError(f"--item-init {recipe.item_init}: {reason}; use --ids atomic without --init, or drop "
                          f"--item-init")
    return replace(recipe, item_init="random")
