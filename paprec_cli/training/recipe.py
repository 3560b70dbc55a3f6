"""Training defaults per model size, and the resolved options of one training run.

The defaults are what measurements on synthetic, ml-100k and Beauty supported (see the CHANGELOG and
`paprec train --help`): from-scratch T5s need a higher learning rate than P5's fine-tuning recipe,
short warm-up, dropout and weight decay against over-fitting small datasets, and early stopping on
the validation metric; the auxiliary word families are on wherever items have attributes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from paprec_cli.errors import PaprecError
from paprec_cli.training.mixture import Mixture


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
    eval_batch_size: int = 256


RECIPES: dict[str, Recipe] = {
    "tiny": Recipe(lr=3e-3, batch_size=64, epochs=30, dropout=0.1, patience=4),
    "small": Recipe(lr=1e-3, batch_size=64, epochs=20, dropout=0.1, patience=3),
    "base": Recipe(lr=5e-4, batch_size=32, epochs=15, dropout=0.1, patience=3),
}


def recipe_for(size: str) -> Recipe:
    """The defaults of a size; custom sizes use small's."""
    return RECIPES.get(size, RECIPES["small"])


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
    init: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tasks"] = list(self.tasks)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainOptions:
        values = dict(obj)
        values["tasks"] = tuple(values["tasks"])
        values["recipe"] = Recipe(**_known(Recipe, values["recipe"]))
        values["mixture"] = Mixture(**_known(Mixture, values.get("mixture") or {}))
        return cls(**_known(cls, values))


def _known(kind: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in values.items() if k in names}


def check_recipe(recipe: Recipe) -> Recipe:
    """Reject values that cannot train, naming the option."""
    checks = [
        (recipe.lr > 0 and math.isfinite(recipe.lr), "--lr", "a positive learning rate such as 1e-3"),
        (recipe.batch_size >= 1, "--batch-size", "a positive integer"),
        (recipe.epochs >= 1, "--epochs", "a positive integer"),
        (0 <= recipe.warmup < 1, "warmup", "a share in [0, 1)"),
        (recipe.schedule in ("cosine", "linear"), "schedule", "cosine or linear"),
        (0 <= recipe.dropout < 1, "--dropout", "a probability in [0, 1)"),
        (recipe.weight_decay >= 0, "--weight-decay", "a non-negative number"),
        (recipe.patience >= 1, "--patience", "a positive integer"),
    ]
    for ok, option, expected in checks:
        if not ok:
            raise PaprecError(f"{option}: invalid value; expected {expected}")
    return recipe


def with_overrides(recipe: Recipe, **overrides: Any) -> Recipe:
    """`recipe` with every non-None override applied, then checked."""
    chosen = {k: v for k, v in overrides.items() if v is not None}
    return check_recipe(replace(recipe, **chosen))
