"""Rating prediction: the star rating a user gives an item (seeded 80/10/10 split of rated interactions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from paprec_cli.metrics import as_numpy, neg_squared_error_per_example, rating_errors_per_example, rating_metrics
from paprec_cli.specs import Example, MetricSpec, Part, TaskNeeds, Template, Word

from .common import BuiltTask, ItemWords, user_values
from .templates import RATING

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData


def rating_word(rating: float) -> Word:
    """ "4" for integral ratings (P5's targets), one decimal otherwise ("3.5")."""
    value = float(rating)
    return Word(str(int(value)) if value.is_integer() else f"{value:.1f}", "rating")


class RatingTask(BuiltTask):
    """Predict the rating of a (user, item) pair; RMSE and MAE; surrogate = negative squared error."""

    name = "rating"
    needs = TaskNeeds(ratings=True)
    description = "star rating of a user-item pair (seeded 80/10/10 split of rated interactions; RMSE/MAE)"
    kind = "rating"
    argument_help = "user_U item_word (the user word, then the item word)"
    default_template = "1-1"
    metric_specs = (
        MetricSpec("RMSE", smaller=True, help="root mean squared error of the predicted rating"),
        MetricSpec("MAE", smaller=True, help="mean absolute error of the predicted rating"),
    )
    example_metric_specs = (
        MetricSpec("squared_error", smaller=True, help="(predicted - true rating)^2; its mean is MSE"),
        MetricSpec("abs_error", smaller=True, help="|predicted - true rating|; its mean is MAE"),
    )
    primary_metric = "RMSE"

    @property
    def templates(self) -> list[Template]:
        return list(RATING)

    def _build(self, data: TaskData, part: Part) -> list[Example]:
        if part not in ("train", "validation", "test"):
            raise ValueError(f"unknown split part {part!r}")
        table = data.ratings.part(part)
        words = ItemWords(data.n_items)
        inputs = getattr(data, "inputs", None)
        p5_wording = inputs is not None and inputs.name == "p5"  # P5 writes "item_873" as one word
        users: dict[int, dict[str, tuple[Word, ...]]] = {}
        out: list[Example] = []
        for user, item, rating in zip(
            table["user_idx"].to_list(), table["item_idx"].to_list(), table["rating"].to_list(), strict=True
        ):
            user_vals = users.get(user) or users.setdefault(user, user_values(data, Word.user(user)))
            item_word = Word(f"item_{item}", "item", item) if p5_wording else words.item(item)
            out.append(
                Example(
                    user=user,
                    argument=(user_vals["user"][0], item_word),
                    values={**user_vals, "item": (item_word,)},
                    target=float(rating),
                )
            )
        return out

    def target_words(self, example: Example) -> list[Word]:
        return [rating_word(example.target)]

    def metrics(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> dict[str, float]:
        pred, true = self._pred_true(predictions, examples)
        return rating_metrics(pred, true)

    def per_example(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        pred, true = self._pred_true(predictions, examples)
        return rating_errors_per_example(pred, true)

    def surrogate(self, predictions: npt.ArrayLike, examples: Sequence[Example]) -> np.ndarray:
        pred, true = self._pred_true(predictions, examples)
        return neg_squared_error_per_example(pred, true)

    @staticmethod
    def _pred_true(predictions: npt.ArrayLike, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
        pred = as_numpy(predictions).astype(np.float64).reshape(-1)
        if pred.shape[0] != len(examples):
            raise ValueError(f"rating predictions must be [N={len(examples)}] values, got shape {pred.shape}")
        true = np.fromiter((float(ex.target) for ex in examples), dtype=np.float64, count=len(examples))
        return pred, true
