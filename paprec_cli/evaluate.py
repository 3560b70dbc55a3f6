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

from paprec_cli.export import layout_of, tokens_of
from paprec_cli.search.layout import Layout, PromptBuilder, PromptTokens
from paprec_cli.specs import Example, TaskSpec

if TYPE_CHECKING:

    from paprec_cli.data.splits import TaskData
    from paprec_cli.distributed import DistContext
    from paprec_cli.export import Document
    from paprec_cli.model.bundle import ModelBundle
    from paprec_cli.model.codec import PromptCodec
    from paprec_cli.model.encoded import EncodedPrompt
    from paprec_cli.model.inference import Recommender

VARIANTS = ("manual", "shared", "personalized")
#: The random stream of `sample_users`: distinct from the search's validation-user and gradient streams (101, 102);
#: `search.vocab.initial_tokens` draws its random start from the same (seed, 103) stream, a draw of words that
#: has nothing to do with which users are scored (kept so that recorded samples reproduce).
RNG_EVAL_USERS = 103


@dataclass(frozen=True)
class UserSample:
    """A seeded sample of the users with a test example (`paprec eval --users N`, `paprec search
    --eval-users N`): every variant, reference and baseline is scored on these users' validation and test
    examples only, so paired differences stay paired; the confidence intervals are then over `len(users)`
    users and say nothing about the users left out beyond what a random sample does."""

    users: frozenset[int]
    of: int  # users with a test example, the population sampled from
    seed: int

    def keep(self, examples: Sequence[Example]) -> list[Example]:
        """The examples of sampled users, in their order."""
        return [ex for ex in examples if ex.user in self.users]

    def report(self) -> dict[str, int]:
        """`{"users", "of", "seed"}`, as recorded in `paprec eval --json`'s protocol and in prompts.json."""
        return {"users": len(self.users), "of": self.of, "seed": self.seed}


def sample_users(task: TaskSpec, data: TaskData, n: int | None, seed: int) -> UserSample | None:
    """A seeded sample of `n` of the users with a test example of `task`, or None (all users) when `n` is
    None or at least their number. The draw depends on `seed` and the user set only (numpy's
    `default_rng([seed, RNG_EVAL_USERS])`, without replacement, over the sorted user indices)."""
    if n is None:
        return None
    users = sorted({ex.user for ex in task.examples(data, "test")})  # type: ignore[arg-type]
    if n >= len(users):
        return None
    chosen = np.random.default_rng([seed, RNG_EVAL_USERS]).choice(np.asarray(users, dtype=np.int64), n,
                                                                   replace=False)
    return UserSample(frozenset(int(u) for u in chosen.tolist()), len(users), seed)


@dataclass
class PerExample:
    """One variant on one split: example users, per-example surrogate and per-example metric values
    (the task's `per_example`, keyed as its `example_metric_specs`), all aligned with `users`."""

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


def manual_prompts(codec: PromptCodec, task: TaskSpec, examples: Sequence[Example],
                   template_id: str | None = None) -> list[EncodedPrompt]:
    template = task.manual(template_id)
    rendered = []
    for ex in examples:
        values: dict[str, Sequence[Any]] = dict(ex.values)
        rendered.append(template.render(values))
    return list(codec.encode_batch(rendered))


def automatic_prompts(codec: PromptCodec, layout: Layout, examples: Sequence[Example],
                      tokens: PromptTokens) -> list[EncodedPrompt]:
    builder = PromptBuilder(codec, layout, [ex.argument for ex in examples])
    return [builder.prompt(i, tokens.triggers_for(ex.user)) for i, ex in enumerate(examples)]


def sharded_predictions(recommender: Recommender, task: TaskSpec, examples: Sequence[Example],
                        prompts: Sequence[EncodedPrompt],
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


def score_prompts(recommender: Recommender, task: TaskSpec, examples: Sequence[Example],
                  prompts: Sequence[EncodedPrompt],
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
        metrics=task.per_example(preds, examples),
    )
    return metrics, detail


def evaluate_prompts(bundle: ModelBundle, task: TaskSpec, data: TaskData, prompts_doc: Document,
                     parts: Sequence[str] = ("validation", "test"), batch_size: int = 256,
                     device: str | None = None, recommender: Recommender | None = None,
                     dist: DistContext | None = None,
                     references: Mapping[str, PromptTokens] | None = None,
                     sample: UserSample | None = None) -> tuple[Results, Details]:
    """({variant: {part: {metric: value}}}, {variant: {part: PerExample}}) for manual/shared/personalized.

    `references` (e.g. `paprec_cli.references`' oracle / history_word prompts) are scored as further
    variants under their own names, after the three above. `sample`: score only these users' examples
    (`sample_users`); None: every example.

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
        if sample is not None:
            examples = sample.keep(examples)
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
