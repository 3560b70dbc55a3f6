"""Prompt sensitivity: does the wording of a prompt change what the model recommends?

PAP-REC can only help a model whose output depends on the words around the fixed argument. On test
examples (a seeded sample of at most `limit`) we report, per task:

- `templates`: the metric under every manual template (the held-out one marked), and `argument_only`
  (the instruction removed), plus `spread` (best minus worst HR@10 / RMSE);
- `attribute_hint` (items with attributes; an *oracle diagnostic*, it reads the test target): one of
  the target item's attributes appended to the default template vs a random attribute appended;
- `taste` (datasets with a ground-truth `truth` table, i.e. synthetic): the user's hidden taste word
  appended vs an unrelated category word appended, with the held-out item's mean rank under each and
  the share of users whose held-out item ranks higher with the taste word. This is the check the
  search depends on: the right word should help.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from paprec_cli.data.splits import TaskData
from paprec_cli.specs import Example, TaskSpec, Word
from paprec_cli.training.evaluation import WordsBuilder, argument_only, manual_prompt, sample_examples, template_metrics

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject
    from paprec_cli.model.inference import Recommender

#: Keys reported per variant (the sensitivity table stays readable).
RANKING_KEYS = ("HR@10", "NDCG@10")
RATING_KEYS = ("RMSE", "MAE")
#: Exact target ranks need every item scored; only done for catalogues up to this size.
MAX_ITEMS_FOR_RANKS = 5000


def _keys(task: TaskSpec) -> tuple[str, ...]:
    """The built-in keys the task declares (ranking or rating), else its selection metric alone."""
    declared = {spec.name for spec in task.metric_specs}
    for keys in (RANKING_KEYS, RATING_KEYS):
        if set(keys) <= declared:
            return keys
    return (task.selection_metric().name,)


def _pick(metrics: dict[str, float], task: TaskSpec) -> dict[str, float]:
    return {k: metrics[k] for k in _keys(task) if k in metrics}


def with_words(base: WordsBuilder, words_for: dict[int, tuple[Word, ...]]) -> WordsBuilder:
    """`base` with per-user words appended (the personal-token position)."""

    def build(example: Example) -> Sequence[Word]:
        return (*base(example), *words_for.get(example.user, ()))

    return build


def template_sensitivity(
    recommender: Recommender, task: TaskSpec, examples: Sequence[Example], batch_size: int
) -> JSONObject:
    templates = {}
    for template in task.templates:
        label = f"{template.id} (held out)" if template.held_out else template.id
        measured = template_metrics(recommender, task, examples, manual_prompt(template), batch_size)
        templates[label] = _pick(measured, task)
    no_instruction = _pick(template_metrics(recommender, task, examples, argument_only, batch_size), task)
    key = _keys(task)[0]
    values = [m[key] for m in [*templates.values(), no_instruction] if key in m and np.isfinite(m[key])]
    spread = float(max(values) - min(values)) if values else float("nan")
    return {"templates": templates, "argument_only": no_instruction, f"spread_{key}": spread}


def model_target_ranks(recommender: Recommender, examples: Sequence[Example], build: WordsBuilder,
                       batch_size: int) -> np.ndarray:
    """1-based rank of each example's target among all items (ties count against it)."""
    codec = recommender.codec
    n_items = codec.n_items
    ranks: list[np.ndarray] = []
    all_items = torch.arange(1, n_items + 1, dtype=torch.long)
    step = max(1, min(batch_size, (1 << 22) // max(n_items, 1)))
    for start in range(0, len(examples), step):
        chunk = examples[start : start + step]
        batch = codec.collate(codec.encode_batch([list(build(ex)) for ex in chunk]))
        scores = recommender.score_candidates(batch, all_items.expand(len(chunk), -1)).float().cpu()
        target = torch.tensor([int(ex.target) for ex in chunk]) - 1
        own = scores.gather(1, target[:, None])
        ranks.append((scores >= own).sum(dim=1).numpy())  # itself included: rank >= 1
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def _taste_words(data: TaskData, seed: int) -> tuple[dict[int, tuple[Word, ...]], dict[int, tuple[Word, ...]]] | None:
    """Per user index: (taste word, unrelated taste-vocabulary word), or None without a truth table."""
    if "truth" not in (data.dataset.manifest.get("extras") or []):
        return None
    truth = data.dataset.extra("truth").join(data.dataset.users, on="user", how="inner")
    if "taste" not in truth.columns or truth.height == 0:
        return None
    vocabulary = sorted({w for words in truth["taste"].to_list() for w in (words or [])})
    rng = np.random.default_rng([seed, 13])
    taste: dict[int, tuple[Word, ...]] = {}
    other: dict[int, tuple[Word, ...]] = {}
    for user, words in zip(truth["user_idx"].to_list(), truth["taste"].to_list(), strict=True):
        words = list(words or [])
        unrelated = [w for w in vocabulary if w not in words]
        if not words or not unrelated:
            continue
        taste[int(user)] = (Word(words[0]),)
        other[int(user)] = (Word(unrelated[int(rng.integers(len(unrelated)))]),)
    return (taste, other) if taste else None


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """HR@10 and NDCG@10 from 1-based target ranks (the metrics module's definitions)."""
    hit = ranks <= 10
    return {
        "HR@10": float(hit.mean()) if ranks.size else float("nan"),
        "NDCG@10": float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean()) if ranks.size else float("nan"),
    }


def taste_sensitivity(
    recommender: Recommender, task: TaskSpec, data: TaskData, examples: Sequence[Example], batch_size: int, seed: int
) -> JSONObject | None:
    """Taste word vs unrelated word appended to the default template (ranking over all items)."""
    words = _taste_words(data, seed)
    if words is None or task.kind != "ranking" or data.n_items > MAX_ITEMS_FOR_RANKS:
        return None
    taste, other = words
    examples = [ex for ex in examples if ex.user in taste and ex.candidates is None]
    if not examples:
        return None
    base = manual_prompt(task.manual())
    variants = {"none": base, "taste_word": with_words(base, taste), "unrelated_word": with_words(base, other)}
    ranks = {label: model_target_ranks(recommender, examples, build, batch_size) for label, build in variants.items()}
    out: dict[str, Any] = {"template": task.manual().id, "users": len(examples)}
    out.update({label: rank_metrics(r) for label, r in ranks.items()})
    out["mean_target_rank"] = {label: float(r.mean()) for label, r in ranks.items()}
    out["taste_ranks_higher_share"] = float((ranks["taste_word"] < ranks["unrelated_word"]).mean())
    out["taste_ranks_lower_share"] = float((ranks["taste_word"] > ranks["unrelated_word"]).mean())
    return out


def attribute_hint(
    recommender: Recommender, task: TaskSpec, data: TaskData, examples: Sequence[Example], batch_size: int, seed: int
) -> JSONObject | None:
    """Oracle diagnostic: an attribute of the *test target* appended vs a random item's attribute."""
    attributes = data.dataset.item_attributes
    if task.kind != "ranking" or sum(1 for a in attributes if a) < 0.2 * max(len(attributes) - 1, 1):
        return None
    rng = np.random.default_rng([seed, 17])
    pool = [a for attrs in attributes for a in attrs]
    target: dict[int, tuple[Word, ...]] = {}
    random_: dict[int, tuple[Word, ...]] = {}
    for ex in examples:
        own = attributes[int(ex.target)]
        if own:
            target[ex.user] = tuple(Word(w) for w in str(own[int(rng.integers(len(own)))]).split())
            random_[ex.user] = tuple(Word(w) for w in str(pool[int(rng.integers(len(pool)))]).split())
    kept = [ex for ex in examples if ex.user in target]
    base = manual_prompt(task.manual())
    return {
        "oracle": True,
        "users": len(kept),
        "target_attribute": _pick(template_metrics(recommender, task, kept, with_words(base, target), batch_size),
                                  task),
        "random_attribute": _pick(template_metrics(recommender, task, kept, with_words(base, random_), batch_size),
                                  task),
    }


def prompt_sensitivity(
    recommender: Recommender,
    tasks: Sequence[TaskSpec],
    data: TaskData,
    test_examples: dict[str, list[Example]],
    batch_size: int,
    seed: int,
    limit: int | None = 500,
) -> JSONObject:
    """The whole report, per task, on a seeded sample of at most `limit` test examples."""
    report: dict[str, Any] = {"part": "test", "sample_limit": limit}
    for task in tasks:
        examples = sample_examples(test_examples[task.name], limit, seed)
        entry = {"examples": len(examples), **template_sensitivity(recommender, task, examples, batch_size)}
        for key, value in (
            ("attribute_hint", attribute_hint(recommender, task, data, examples, batch_size, seed)),
            ("taste", taste_sensitivity(recommender, task, data, examples, batch_size, seed)),
        ):
            if value is not None:
                entry[key] = value
        report[task.name] = entry
    return report
