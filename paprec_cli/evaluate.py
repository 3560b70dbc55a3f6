"""Evaluation of the manual, shared-automatic and personalized-automatic prompts of one task.

`evaluate_prompts` scores the three prompt variants on validation and test with the task's full metrics,
and returns the per-example values that `paprec eval` needs for paired bootstrap differences. The
search itself never calls this on the test split before it has finished.

- manual: the task's default (or the document's) template, rendered with each example's `values`;
- shared: the automatic layout with the shared tokens and the default personal token(s) for everyone;
- personalized: each user's own personal tokens where the search found some, else the default;
- references (optional, `paprec_cli.references`): further per-user prompts scored the same way.

Under torchrun (`dist`), each rank predicts a contiguous share of whole batches of the single-process
batch order and the predictions are gathered to every rank before any metric is computed, so results,
per-example values and their order are exactly those of one process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from paprec_cli.metrics import RANKING_KEYS, as_numpy, hits_at_k, ndcg_per_example
from paprec_cli.search.layout import Layout, PromptBuilder, PromptTokens
from paprec_cli.specs import Example, TaskSpec

if TYPE_CHECKING:
    from paprec_cli.distributed import DistContext

VARIANTS = ("manual", "shared", "personalized")


@dataclass
class PerExample:
    """One variant on one split: example users, per-example surrogate and per-example metric values
    (ranking: HR@k/NDCG@k; rating: squared_error, abs_error), all aligned with `users`."""

    users: np.ndarray
    surrogate: np.ndarray
    metrics: dict[str, np.ndarray]

    def by_user(self, key: str = "surrogate") -> dict[int, float]:
        """Mean per user (rating users have several examples), for paired comparisons across variants."""
        values = self.surrogate if key == "surrogate" else self.metrics[key]
        out: dict[int, list[float]] = {}
        for user, value in zip(self.users.tolist(), values.tolist(), strict=True):
            out.setdefault(int(user), []).append(float(value))
        return {u: float(np.mean(v)) for u, v in out.items()}


Results = dict[str, dict[str, dict[str, float]]]
Details = dict[str, dict[str, PerExample]]


def layout_of(doc: dict[str, Any]) -> Layout:
    layout = doc["layout"]
    return Layout(int(layout["n_prefix"]), int(layout["n_suffix"]), int(layout["n_personal"]))


def _ids(tokens: Sequence[dict[str, Any]]) -> tuple[int, ...]:
    return tuple(int(t["id"]) for t in tokens)


def tokens_of(doc: dict[str, Any], personalized: bool) -> PromptTokens:
    """The document's prompt as `PromptTokens` (without per-user tokens unless `personalized`)."""
    shared = doc["shared"]
    personal = {int(u): _ids(t) for u, t in (doc.get("personal") or {}).items()} if personalized else {}
    return PromptTokens(
        shared=_ids(shared.get("prefix", [])) + _ids(shared.get("suffix", [])),
        personal_default=_ids(shared.get("personal_default", [])),
        personal=personal,
    )


def manual_prompts(codec: Any, task: TaskSpec, examples: Sequence[Example],
                   template_id: str | None = None) -> list[Any]:
    template = task.manual(template_id)
    rendered = []
    for ex in examples:
        values: dict[str, Sequence[Any]] = dict(ex.values)
        rendered.append(template.render(values))
    return list(codec.encode_batch(rendered))


def automatic_prompts(codec: Any, layout: Layout, examples: Sequence[Example], tokens: PromptTokens) -> list[Any]:
    builder = PromptBuilder(codec, layout, [ex.argument for ex in examples])
    return [builder.prompt(i, tokens.triggers_for(ex.user)) for i, ex in enumerate(examples)]


def per_example_metrics(task: TaskSpec, predictions: Any, examples: Sequence[Example]) -> dict[str, np.ndarray]:
    """Per-example values whose means are the task's metrics (for paired bootstrap intervals)."""
    targets = np.asarray([float(ex.target) for ex in examples])
    if task.kind == "rating":
        error = as_numpy(predictions).astype(np.float64).reshape(-1) - targets
        return {"squared_error": error**2, "abs_error": np.abs(error)}
    ranked = as_numpy(predictions)
    out: dict[str, np.ndarray] = {}
    for key in RANKING_KEYS:
        name, k = key.split("@")
        fn = hits_at_k if name == "HR" else ndcg_per_example
        out[key] = np.asarray(fn(ranked, targets.astype(np.int64), int(k)), dtype=np.float64)
    return out


def sharded_predictions(recommender: Any, task: TaskSpec, examples: Sequence[Example], prompts: Sequence[Any],
                        batch_size: int, dist: DistContext | None = None) -> np.ndarray:
    """`predict.predictions` of all examples, each rank running a contiguous share of whole batches.

    The shares are cut from the single-process batch order (prompts sorted by length), so every batch,
    and hence every prediction, is the one a single process computes; gathered back in example order.
    """
    from paprec_cli.model import predict

    if dist is None or not dist.active:
        return predict.predictions(recommender, task, examples, prompts, batch_size)
    batches = predict.batch_indices(prompts, batch_size)  # predict's own order, so shards hold whole batches
    order = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    start, stop = dist.bounds(len(order), align=batch_size)
    mine = order[start:stop].tolist()
    local = predict.predictions(recommender, task, [examples[i] for i in mine], [prompts[i] for i in mine],
                                batch_size)
    gathered = np.concatenate(dist.all_gather_object(local))
    out = np.empty_like(gathered)
    out[order] = gathered
    return out


def score_prompts(recommender: Any, task: TaskSpec, examples: Sequence[Example], prompts: Sequence[Any],
                  batch_size: int, dist: DistContext | None = None) -> tuple[dict[str, float], PerExample]:
    """Task metrics and per-example values of one prompt per example (predictions split over `dist`)."""
    examples = list(examples)
    if not examples:
        return {}, PerExample(np.zeros(0, np.int64), np.zeros(0), {})
    preds = sharded_predictions(recommender, task, examples, list(prompts), batch_size, dist)
    metrics = {k: float(v) for k, v in task.metrics(preds, examples).items()}
    detail = PerExample(
        users=np.asarray([ex.user for ex in examples], dtype=np.int64),
        surrogate=np.asarray(task.surrogate(preds, examples), dtype=np.float64),
        metrics=per_example_metrics(task, preds, examples),
    )
    return metrics, detail


def evaluate_prompts(bundle: Any, task: TaskSpec, data: Any, prompts_doc: dict[str, Any],
                     parts: Sequence[str] = ("validation", "test"), batch_size: int = 256,
                     device: str | None = None, recommender: Any = None,
                     dist: DistContext | None = None,
                     references: Mapping[str, PromptTokens] | None = None) -> tuple[Results, Details]:
    """({variant: {part: {metric: value}}}, {variant: {part: PerExample}}) for manual/shared/personalized.

    `references` (e.g. `paprec_cli.references`' oracle / history_word prompts) are scored as further
    variants under their own names, after the three above.

    With `dist`, every rank must call this with the same arguments: each predicts its share, all get
    the full results.
    """
    from paprec_cli.model import Recommender

    rec = recommender or Recommender(bundle.model, bundle.codec, device)
    codec, layout = rec.codec, layout_of(prompts_doc)
    variants = {"shared": tokens_of(prompts_doc, False), "personalized": tokens_of(prompts_doc, True)}
    variants.update(references or {})
    results: Results = {v: {} for v in (*VARIANTS, *variants)}
    details: Details = {v: {} for v in (*VARIANTS, *variants)}
    for part in parts:
        examples = task.examples(data, part)  # type: ignore[arg-type]
        prompts = manual_prompts(codec, task, examples, prompts_doc.get("manual_template"))
        manual = score_prompts(rec, task, examples, prompts, batch_size, dist)
        results["manual"][part], details["manual"][part] = manual
        for name, tokens in variants.items():
            if name == "personalized" and not tokens.personal:  # nobody has own tokens: same prompts as shared
                results[name][part], details[name][part] = results["shared"][part], details["shared"][part]
                continue
            prompts = automatic_prompts(codec, layout, examples, tokens)
            results[name][part], details[name][part] = score_prompts(rec, task, examples, prompts, batch_size, dist)
    return results, details


def split_seed(bundle: Any) -> int:
    """The seed of the splits the model was trained on (rating split, direct negatives); 0 if unrecorded."""
    config = getattr(bundle, "config", {}) or {}
    training = config.get("training") or {}
    for value in (config.get("split_seed"), training.get("split_seed"), training.get("seed"), config.get("seed")):
        if value is not None:
            return int(value)
    return 0
