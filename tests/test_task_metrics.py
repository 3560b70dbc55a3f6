"""Tasks own their metrics: each built-in task declares its metrics and per-example values with their
direction, `per_example` means equal `metrics`, and the core's verdicts and model selection read the
declared direction (no list of names in the core)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from paprec_tasks import DirectTask, RatingTask, SequentialTask

from paprec_cli.paired import verdict
from paprec_cli.specs import Example, MetricSpec, Word
from paprec_cli.training.evaluation import selection_score


def _examples(targets: list[float]) -> list[Example]:
    return [Example(user=i + 1, argument=(Word.user(i + 1),), values={}, target=t) for i, t in enumerate(targets)]


def test_builtin_tasks_declare_directions() -> None:
    for task in (SequentialTask(), DirectTask()):
        assert [s.name for s in task.metric_specs] == ["HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10"]
        assert not any(s.smaller for s in (*task.metric_specs, *task.example_metric_specs))
        assert task.selection_metric() == task.metric("NDCG@10")
    rating = RatingTask()
    assert rating.metric("RMSE").smaller and rating.metric("MAE").smaller
    assert rating.metric("squared_error").smaller and rating.metric("abs_error").smaller
    assert rating.selection_metric().name == "RMSE"
    assert rating.metric("surrogate") == MetricSpec("surrogate", smaller=False, help=rating.metric("surrogate").help)
    with pytest.raises(KeyError, match="declares no metric 'HR@5'"):
        rating.metric("HR@5")


def test_ranking_per_example_means_are_the_metrics() -> None:
    task = SequentialTask()
    ranked = np.array([[3, 1, 2, 4, 5, 6, 7, 8, 9, 10], [1, *range(2, 11)], [*range(2, 12)]])
    examples = _examples([1, 1, 12])
    per = task.per_example(ranked, examples)
    assert set(per) == {s.name for s in task.example_metric_specs}
    assert per["HR@1"].tolist() == [0.0, 1.0, 0.0]
    assert per["NDCG@5"].tolist() == pytest.approx([1 / math.log2(3), 1.0, 0.0])
    for key, value in task.metrics(ranked, examples).items():
        assert per[key].mean() == pytest.approx(value)


def test_rating_per_example_errors() -> None:
    task = RatingTask()
    per = task.per_example(np.array([4.0, 2.5]), _examples([5.0, 2.0]))
    assert per["squared_error"].tolist() == [1.0, 0.25] and per["abs_error"].tolist() == [1.0, 0.5]
    metrics = task.metrics(np.array([4.0, 2.5]), _examples([5.0, 2.0]))
    assert metrics["RMSE"] == pytest.approx(math.sqrt(per["squared_error"].mean()))
    assert metrics["MAE"] == pytest.approx(per["abs_error"].mean())


def test_verdict_reads_the_declared_direction() -> None:
    lower = {"ci_low": -0.3, "ci_high": -0.1}
    assert verdict(lower, RatingTask().metric("abs_error").smaller) == "better"
    assert verdict(lower, SequentialTask().metric("HR@5").smaller) == "worse"
    assert verdict({"ci_low": -0.1, "ci_high": 0.2}, smaller=True) == "noise"


def test_selection_uses_the_first_higher_is_better_task_else_minus_errors() -> None:
    seq, rating = SequentialTask(), RatingTask()
    metrics = {"sequential": {"NDCG@10": 0.25}, "rating": {"RMSE": 0.9}}
    assert selection_score(metrics, [rating, seq]) == 0.25
    assert selection_score({"rating": {"RMSE": 0.9}}, [rating]) == -0.9
    assert selection_score({"sequential": {"NDCG@10": math.nan}}, [seq]) == -math.inf
