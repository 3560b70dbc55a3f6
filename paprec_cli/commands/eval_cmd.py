"""`paprec eval`: manual vs shared vs personalized prompts on the test split, with paired bootstrap CIs.

A gain of automatic over manual prompts is only reported as a gain when the 95% paired bootstrap
interval of the per-user difference excludes 0; otherwise the output says the difference is noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from paprec_cli.commands.common import (
    Ctx,
    DeviceOpt,
    HomeOpt,
    JsonOpt,
    PaprecTyper,
    QuietOpt,
    SeedOpt,
    VerboseOpt,
    make_ctx,
    resolve_device,
)
from paprec_cli.errors import PaprecError

if TYPE_CHECKING:  # evaluate pulls in the model stack; the CLI imports commands at startup
    from paprec_cli.evaluate import Details, Results

#: Per-example values where lower is better (rating errors); all others are higher-is-better.
LOWER_IS_BETTER = frozenset({"squared_error", "abs_error", "RMSE", "MAE"})
PARTS = ("validation", "test")


def paired_differences(details: dict[str, dict[str, Any]], part: str, n_boot: int, seed: int) -> dict[str, Any]:
    """`{comparison: {value: {"mean_diff","ci_low","ci_high","n"}}}`: variant minus baseline, per user.

    Comparisons are `references.comparisons`: every variant (shared, personalized, references) minus
    manual, then personalized minus each reference. Values are the surrogate and every per-example metric,
    averaged per user first (a rating user has several test examples), and paired on the users both
    variants were evaluated on.
    """
    from paprec_cli.metrics import paired_bootstrap
    from paprec_cli.references import comparisons

    out: dict[str, Any] = {}
    for name, (variant, baseline) in comparisons(details).items():
        auto, manual = details[variant].get(part), details[baseline].get(part)
        out[name] = {}
        if manual is None or auto is None or len(manual.users) == 0:
            continue
        for key in ("surrogate", *manual.metrics):
            mine, theirs = auto.by_user(key), manual.by_user(key)
            users = sorted(set(mine) & set(theirs))
            out[name][key] = paired_bootstrap(
                [mine[u] for u in users], [theirs[u] for u in users], n_boot=n_boot, seed=seed, alpha=0.05
            )
    return out


def verdict(key: str, stats: dict[str, Any]) -> str:
    """One word for one interval: "better" / "worse" than manual, or "noise" when the CI includes 0."""
    low, high = stats.get("ci_low"), stats.get("ci_high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "no data"
    if low <= 0 <= high:
        return "noise"
    better = (high < 0) if key in LOWER_IS_BETTER else (low > 0)
    return "better" if better else "worse"


def protocol_of(bound: Any, task: Any, data: Any, test_examples: list[Any]) -> dict[str, Any]:
    """How the numbers were produced: the dataset/split protocol plus what this task ranks over."""
    proto = dict(data.protocol())
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
    )
    return proto


def baselines_for(data: Any, task: Any, part: str) -> dict[str, Any]:
    """Popularity and item-kNN on the same examples, when the baselines module is there (else {})."""
    try:
        from paprec_cli.baselines import baseline_results
    except ImportError:
        return {}
    found = baseline_results(data, [task.name], part, tasks={task.name: task})
    return {name: {part: per_task[task.name]} for name, per_task in found.items() if task.name in per_task}


def taste_of(bound: Any) -> dict[str, Any] | None:
    """Personal tokens vs the dataset's hidden taste (datasets with a truth table only), next to chance."""
    from paprec_cli.truth import taste_agreement

    codec = bound.bundle.codec
    words = [codec.token_text(int(i)) for i in codec.candidate_vocab().tolist()]
    return taste_agreement(bound.doc, bound.dataset, words)


def reference_lines(references: dict[str, Any]) -> list[str]:
    """One line per requested reference prompt: how many users got a word, or why it is unavailable."""
    lines = []
    for name, rep in references.items():
        if not rep.get("available"):
            lines.append(f"reference {name}: unavailable: {rep.get('reason')}")
            continue
        examples = ", ".join(rep.get("missing_examples") or []) or "-"
        if "top_not_usable" in rep:
            missing = (f"most frequent attribute not one vocabulary word for {rep['top_not_usable']} "
                       f"(next usable one taken; e.g. {examples})")
        else:
            missing = (f"taste word not in the candidate vocabulary for {rep.get('not_in_vocabulary', 0)} "
                       f"(e.g. {examples})")
        lines.append(
            f"reference {name}: a word for {rep['users']} users, none for {rep['users_without_word']} "
            f"(they keep the shared prompt); {missing}"
        )
    return lines


def _fmt(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4f}"


def _signed(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:+.4f}"


def results_table(results: dict[str, Any], baselines: dict[str, Any], parts: list[str]) -> Table:
    caption = "popularity and item_knn: non-neural baselines on the same test examples" if baselines else None
    table = Table(title="manual vs automatic prompts", caption=caption)
    metrics = list(dict.fromkeys(m for v in results.values() for p in parts for m in (v.get(p) or {})))
    table.add_column("prompt")
    table.add_column("split")
    for metric in metrics:
        table.add_column(metric, justify="right")
    rows = [*results.items(), *baselines.items()]
    for name, by_part in rows:
        for part in parts:
            if part in by_part:
                table.add_row(name, part, *(_fmt(by_part[part].get(m)) for m in metrics))
    return table


def paired_table(paired: dict[str, Any], part: str) -> Table:
    """One row per value; each cell `mean diff [95% CI] verdict` for one comparison (variant - baseline)."""
    table = Table(
        title=f"prompt - baseline prompt, paired per user on {part}",
        caption=escape("mean [95% bootstrap CI]; 'noise' = the CI includes 0: no evidence of a difference"),
    )
    table.add_column("value")
    for name in paired:
        table.add_column(name.replace("_vs_", " - "))
    table.add_column("users", justify="right")
    keys = list(dict.fromkeys(k for per_key in paired.values() for k in per_key))
    for key in keys:
        cells, n = [], 0
        for per_key in paired.values():
            stats = per_key.get(key)
            if stats is None:
                cells.append("-")
                continue
            n = max(n, int(stats["n"]))
            interval = f"[{_signed(stats['ci_low'])}, {_signed(stats['ci_high'])}]"
            cells.append(escape(f"{_signed(stats['mean_diff'])} {interval} {verdict(key, stats)}"))
        table.add_row(key, *cells, str(n))
    return table


def summary(paired: dict[str, Any]) -> list[str]:
    """Plain sentences on the surrogate difference of each comparison, so noise is not sold as a gain."""
    lines = []
    for name, per_key in paired.items():
        stats = per_key.get("surrogate")
        if not stats:
            continue
        word = verdict("surrogate", stats)
        what, baseline = name.split("_vs_", 1)
        interval = f"{_signed(stats['ci_low'])} to {_signed(stats['ci_high'])}"
        if word == "noise":
            lines.append(
                f"{what} vs {baseline}: the 95% CI of the per-user difference ({interval}) includes 0: "
                f"no evidence that it differs from the {baseline} prompt on test"
            )
        else:
            lines.append(f"{what} vs {baseline}: {word} on test (per-user difference 95% CI {interval}, excludes 0)")
    return lines


@dataclass
class Evaluated:
    """What `evaluate_source` hands to `report`: the invocation, the bound prompts and their scores."""

    ctx: Ctx
    bound: Any  # export.BoundPrompts
    task: Any  # TaskSpec
    data: Any  # TaskData
    results: Results
    details: Details
    references: dict[str, Any]  # name -> references.Reference.report


def evaluate_source(source: str | Path, model: str | None, home: Path | None, batch_size: int | None, device: str,
                    json_out: bool, quiet: bool, verbose: bool,
                    reference_names: tuple[str, ...] = ()) -> Evaluated | None:
    """The prompts' scores on validation and test, on rank 0; None on the other ranks.

    The only part split across processes: every rank opens the same prompts and predicts its share;
    the process group ends here, so rank 0's reporting that follows waits on nobody.
    """
    from paprec_cli.data.splits import TaskData
    from paprec_cli.distributed import distributed
    from paprec_cli.evaluate import evaluate_prompts
    from paprec_cli.export import open_prompts
    from paprec_cli.references import reference_prompts
    from paprec_cli.search.config import batch_sizes

    with distributed(resolve_device(device)) as dist:
        batch_size = batch_sizes(batch_size, dist.device)[0]  # inference: the search's surrogate batch
        ctx = make_ctx(home, json_out and dist.is_main, quiet or not dist.is_main, verbose)
        bound = open_prompts(source, ctx.home, model=model)
        task = ctx.registry.task(str(bound.doc["task"]), option="the prompts' task")
        data = TaskData(bound.dataset, bound.split_seed)
        ctx.out.info(f"Evaluating {task.name} prompts from {bound.source} on '{bound.dataset.name}'")
        refs = reference_prompts(reference_names, bound.doc, data, task, bound.bundle.codec, PARTS)
        tokens = {name: ref.tokens for name, ref in refs.items() if ref.tokens is not None}
        results, details = evaluate_prompts(bound.bundle, task, data, bound.doc, parts=PARTS, batch_size=batch_size,
                                            device=dist.device, dist=dist, references=tokens)
    reports = {name: ref.report for name, ref in refs.items()}
    return Evaluated(ctx, bound, task, data, results, details, reports) if dist.is_main else None


def report(found: Evaluated, n_boot: int, seed: int, with_baselines: bool) -> None:
    """Paired differences, baselines, tables and the `--json` line: what one process prints."""
    ctx, bound, task, data, results = found.ctx, found.bound, found.task, found.data, found.results
    paired = paired_differences(found.details, "test", n_boot, seed)
    baselines = baselines_for(data, task, "test") if with_baselines else {}
    protocol = protocol_of(bound, task, data, task.examples(data, "test"))
    ctx.out.show(results_table(results, baselines, list(PARTS)))
    names = list(paired)
    for start in range(0, len(names), 2):  # two comparisons per table: readable in 80 columns
        ctx.out.show(paired_table({n: paired[n] for n in names[start : start + 2]}, "test"))
    ctx.out.show(
        escape(
            "protocol: "
            + "; ".join(f"{k}={protocol.get(k)}" for k in ("split", "evaluated", "indexing", "tie_break", "split_seed"))
        )
    )
    for line in summary(paired):
        ctx.out.show(escape(line))
    for line in reference_lines(found.references):
        ctx.out.show(escape(line))
    taste = taste_of(bound)
    if taste is not None and taste.get("agreement") is not None:
        ctx.out.show(
            f"personal tokens vs hidden taste: {taste['agreement']:.3f} of {taste['users']} users "
            f"(chance {taste['chance']:.3f}); an attribute word for {taste['attribute_share']:.3f} of them"
        )
    ctx.out.result(
        {
            "run": str(bound.run) if bound.run is not None else None,
            "prompts": str(bound.source),
            "task": task.name,
            "dataset": bound.dataset.name,
            "results": results,
            "paired": paired,
            "protocol": protocol,
            "baselines": baselines,
            "taste_agreement": taste,
            "references": found.references,
        }
    )


def register(app: PaprecTyper) -> None:
    @app.command("eval")
    def eval_prompts(
        run: Annotated[str | None, typer.Argument(help="Run folder or run name under <home>/runs.")] = None,
        prompts: Annotated[
            Path | None, typer.Option("--prompts", help="A prompts file (paprec export-prompts) instead of a run.")
        ] = None,
        model: Annotated[
            str | None, typer.Option("--model", help="Model path or name (default: the one the prompts name).")
        ] = None,
        n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the paired CIs.")] = 1000,
        baselines: Annotated[
            bool, typer.Option("--baselines/--no-baselines", help="Also report popularity and item-kNN.")
        ] = True,
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", help="Prompts per model batch (default 256; 2048 on CUDA).")
        ] = None,
        references: Annotated[
            str,
            typer.Option("--references", help="Reference prompts: comma list of oracle,history_word; all; none."),
        ] = "all",
        device: DeviceOpt = "auto",
        seed: SeedOpt = 0,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Evaluate manual, shared and personalized prompts of a run (or a prompts file) on validation and test.

        Reference prompts (default: all the run and dataset allow) put one word per user in the run's
        personal slot after its shared tokens: `oracle` the hidden taste word (synthetic), `history_word`
        the most frequent attribute of the user's training items; unavailable ones say why.

        The prompts name their task, dataset and model; for automatic vs manual the per-user paired
        difference is reported with a 95% bootstrap confidence interval. Under torchrun the model's
        predictions are split across processes; rank 0 alone prints (docs/DISTRIBUTED.md).
        """
        if (run is None) == (prompts is None):
            raise PaprecError("give a run (paprec eval RUN) or --prompts FILE, not both and not neither")
        if n_boot < 1 or (batch_size is not None and batch_size < 1):
            raise PaprecError("--n-boot and --batch-size must be integers >= 1")
        from paprec_cli.references import parse_references

        names = parse_references(references)
        source: str | Path = run if run is not None else prompts  # type: ignore[assignment]
        found = evaluate_source(source, model, home, batch_size, device, json_out, quiet, verbose, names)
        if found is not None:  # rank 0 (or the only process)
            report(found, n_boot, seed, baselines)
