"""`paprec eval`'s core: score a run's (or a prompts file's) prompts, then assemble the report.

`evaluate_source` is the part split across torchrun processes: every rank opens the same prompts and
predicts its share (`paprec_cli.evaluate`). `build_report` runs on rank 0 alone: paired per-user
differences with verdicts (`paprec_cli.paired`), popularity and item-kNN on the same examples, the
protocol description, and taste agreement on datasets with a hidden taste (`paprec_cli.taste`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from paprec_cli.paired import Paired, paired_differences

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData
    from paprec_cli.distributed import DistContext
    from paprec_cli.evaluate import Details, Results, UserSample
    from paprec_cli.paths import Home
    from paprec_cli.plugins import Registry
    from paprec_cli.runs import BoundPrompts
    from paprec_cli.specs import Example, TaskSpec
    from paprec_cli.taste import TasteAgreement

PARTS = ("validation", "test")


@dataclass
class Evaluated:
    """The bound prompts, their task and splits, and their scores on validation and test."""

    bound: BoundPrompts
    task: TaskSpec
    data: TaskData
    results: Results
    details: Details
    #: The decoding used, with P5 decoding's generated / dropped (non-item) sequence counts.
    decoding: dict[str, object] = field(default_factory=lambda: {"name": "paprec"})
    #: Reference prompts asked for: name -> `references.Reference.report` (words found, or why unavailable).
    references: dict[str, dict[str, object]] = field(default_factory=dict)
    #: The seeded user sample every number is computed on (`--users N`); None: all users.
    sample: UserSample | None = None


class Report(TypedDict):
    """The object `paprec eval --json` prints."""

    run: str | None
    prompts: str
    task: str
    dataset: str
    results: Results
    paired: Paired
    protocol: dict[str, object]
    baselines: dict[str, dict[str, dict[str, float]]]
    taste_agreement: TasteAgreement | None
    references: dict[str, dict[str, object]]  # oracle / history_word: users with a word, or why unavailable
    lower_is_better: list[str]  # the values whose task declares lower as better (`MetricSpec.smaller`)


def evaluate_source(source: str | Path, home: Home, registry: Registry, model: str | None, batch_size: int | None,
                    dist: DistContext, info: Callable[[str], None], tokenizer: str | None = None,
                    decoding: str | None = None, reference_names: tuple[str, ...] = (), users: int | None = None,
                    seed: int = 0) -> Evaluated:
    """The prompts' scores on validation and test; every rank must call it with the same arguments.

    `tokenizer`: a HF/P5 checkpoint's T5 tokenizer; `decoding`: "paprec" or "p5" (default: the run's);
    `reference_names`: reference prompts to score next to the run's (`paprec_cli.references`);
    `users`: score a seeded sample of this many test users (`evaluate.sample_users` with `seed`); None: all."""
    from paprec_cli.data.splits import TaskData
    from paprec_cli.evaluate import evaluate_prompts, sample_users
    from paprec_cli.model import Recommender
    from paprec_cli.references import reference_prompts
    from paprec_cli.registry import split_negatives, unfinished_warning
    from paprec_cli.runs import open_prompts
    from paprec_cli.search.config import batch_sizes

    batch = batch_sizes(batch_size, dist.device)[0]  # inference: the search's surrogate batch
    bound = open_prompts(source, home, model=model, tokenizer=tokenizer)
    task = registry.task(str(bound.doc["task"]), option="the prompts' task")
    data = TaskData(bound.dataset, bound.split_seed, split_negatives(bound.bundle), inputs=bound.inputs)
    info(f"Evaluating {task.name} prompts from {bound.source} on '{bound.dataset.name}'")
    sample = sample_users(task, data, users, seed)
    if users is not None and sample is None:
        info(f"--users {users:,}: not fewer than the users with a test example, so every user is scored")
    if sample is not None:
        info(f"--users {users:,}: a seeded sample (seed {seed}) of {len(sample.users):,} of the {sample.of:,} users "
             "with a test example; every score below is on these users only")
    if bound.bundle.folder is not None and (unfinished := unfinished_warning(bound.bundle.folder)) is not None:
        info(unfinished)
    decoding = decoding or bound.decoding  # default: the decoding the run's search used
    rec = Recommender(bound.bundle.model, bound.bundle.codec, dist.device, decoding=decoding)
    refs = reference_prompts(reference_names, bound.doc, data, task, bound.bundle.codec, PARTS,
                             only=sample.users if sample is not None else None)
    tokens = {name: ref.tokens for name, ref in refs.items() if ref.tokens is not None}
    results, details = evaluate_prompts(bound.bundle, task, data, bound.doc, parts=PARTS, batch_size=batch,
                                        device=dist.device, recommender=rec, dist=dist, references=tokens,
                                        sample=sample)
    decoded: dict[str, object] = {"name": decoding, **(rec.p5_counts if decoding == "p5" else {})}
    warning = p5_warning(rec.p5_counts) if decoding == "p5" else None
    if warning is not None:
        info(warning)
        decoded["warning"] = warning
    reports: dict[str, dict[str, object]] = {name: dict(ref.report) for name, ref in refs.items()}
    return Evaluated(bound, task, data, results, details, decoded, reports, sample)


def p5_warning(counts: dict[str, int]) -> str | None:
    """The warning of `--decoding p5` when every generated sequence was dropped (none is an item id of the
    dataset): every ranking metric is then 0 by construction, not a measurement of the prompts. None else."""
    generated, dropped = int(counts.get("generated", 0)), int(counts.get("dropped", 0))
    if generated == 0 or dropped < generated:
        return None
    return (f"warning: --decoding p5 dropped all {generated} generated sequences (none is an item id of the "
            f"dataset), so every ranking metric is 0; check that the checkpoint was trained on this dataset "
            f"with its indexing, or use --decoding paprec")


def protocol_of(bound: BoundPrompts, task: TaskSpec, data: TaskData, test_examples: list[Example]) -> dict[str, object]:
    """How the numbers were produced: the dataset/split protocol plus what this task ranks over."""
    proto: dict[str, object] = dict(data.protocol())
    if task.kind == "rating":
        evaluated = "predicted rating vs held-out rating (RMSE, MAE)"
    elif test_examples and test_examples[0].candidates is not None:
        evaluated = f"ranking over {len(test_examples[0].candidates)} candidates (held-out positive + negatives)"
    else:
        evaluated = "ranking over all items"
    proto.update(
        task=task.name,
        evaluated=evaluated,
        manual_template=bound.doc.get("manual_template") or task.default_template,
        split_seed=bound.split_seed,
        test_examples=len(test_examples),
        model=str(bound.doc.get("model")),
        model_fingerprint=bound.doc.get("model_fingerprint"),
        tokenizer_sha256=bound.bundle.codec.tokenizer_sha256,
        expects_indexing=bound.bundle.config.get("expects_indexing"),
    )
    return proto


def baselines_for(data: TaskData, task: TaskSpec, part: str,
                  sample: UserSample | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Popularity and item-kNN on the same examples (`sample`'s users only when given), when the baselines
    module is there (else {})."""
    try:
        from paprec_cli.baselines import baseline_results
    except ImportError:
        return {}
    found = baseline_results(data, [task.name], part, tasks={task.name: task},
                             users=sample.users if sample is not None else None)
    return {name: {part: per_task[task.name]} for name, per_task in found.items() if task.name in per_task}


def taste_of(bound: BoundPrompts, sample: UserSample | None = None) -> TasteAgreement | None:
    """Personal tokens vs the dataset's hidden taste (datasets with a truth table only), next to chance
    (`sample`'s users only when given)."""
    from paprec_cli.taste import taste_agreement

    codec = bound.bundle.codec
    words = [codec.token_text(int(i)) for i in codec.candidate_vocab().tolist()]
    return taste_agreement(bound.doc, bound.dataset, words, only=sample.users if sample is not None else None)


def build_report(found: Evaluated, n_boot: int, seed: int, with_baselines: bool) -> Report:
    """Paired differences (test, `n_boot` resamples, `seed`), baselines and protocol: what rank 0 prints."""
    bound, task, data = found.bound, found.task, found.data
    paired = paired_differences(found.details, "test", n_boot, seed)
    test_examples = task.examples(data, "test")  # type: ignore[arg-type]
    if found.sample is not None:
        test_examples = found.sample.keep(test_examples)
    values = {key for per_key in paired.values() for key in per_key} | {
        key for per_part in found.results.values() for metrics in per_part.values() for key in metrics}
    return {
        "run": str(bound.run) if bound.run is not None else None,
        "prompts": str(bound.source),
        "task": task.name,
        "dataset": bound.dataset.name,
        "results": found.results,
        "paired": paired,
        "protocol": {**protocol_of(bound, task, data, test_examples), "decoding": found.decoding,
                     "user_sample": found.sample.report() if found.sample is not None else None},
        "baselines": baselines_for(data, task, "test", found.sample) if with_baselines else {},
        "taste_agreement": taste_of(bound, found.sample),
        "references": found.references,
        "lower_is_better": sorted(key for key in values if task.metric(key).smaller),
    }
