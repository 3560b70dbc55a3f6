"""What `paprec eval` prints: the results table, paired-difference tables and the report's sentences."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from paprec_cli.paired import Paired, summary, verdict

if TYPE_CHECKING:
    from paprec_cli.eval_report import Report
    from paprec_cli.evaluate import Results


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4f}"


def _signed(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:+.4f}"


def results_table(results: Results, baselines: dict[str, dict[str, dict[str, float]]],
                  parts: list[str]) -> Table:
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


def paired_table(paired: Paired, part: str, lower_is_better: Collection[str] = ()) -> Table:
    """One row per value; each cell `mean diff [95% CI] verdict` for one automatic variant vs manual."""
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
            word = verdict(stats, key in lower_is_better)
            cells.append(escape(f"{_signed(stats['mean_diff'])} {interval} {word}"))
        table.add_row(key, *cells, str(n))
    return table




def reference_lines(references: dict[str, dict[str, object]]) -> list[str]:
    """One line per requested reference prompt: how many users got a word, or why it is unavailable."""
    lines = []
    for name, rep in references.items():
        if not rep.get("available"):
            lines.append(f"reference {name}: unavailable: {rep.get('reason')}")
            continue
        examples = ", ".join(str(e) for e in rep.get("missing_examples") or []) or "-"  # type: ignore[attr-defined]
        if "top_not_usable" in rep:
            missing = (f"best-ranked attribute not one vocabulary word for {rep['top_not_usable']} "
                       f"(next usable one taken; e.g. {examples})")
        else:
            missing = (f"taste word not in the candidate vocabulary for {rep.get('not_in_vocabulary', 0)} "
                       f"(e.g. {examples})")
        lines.append(
            f"reference {name}: a word for {rep['users']} users, none for {rep['users_without_word']} "
            f"(they keep the shared prompt); {missing}"
        )
    return lines


def report_lines(report: Report) -> Iterator[RenderableType]:
    """The result part of what `paprec eval` shows, in order: results, paired tables (two comparisons each,
    readable in 80 columns), the protocol line, verdict sentences and taste agreement (the reference
    prompts' coverage is a log line: `reference_lines`)."""
    from paprec_cli.eval_report import PARTS

    protocol = report["protocol"]
    yield results_table(report["results"], report["baselines"], list(PARTS))
    paired = report["paired"]
    names = list(paired)
    for start in range(0, len(names), 2):
        yield paired_table({n: paired[n] for n in names[start : start + 2]}, "test", report["lower_is_better"])
    keys = ("split", "evaluated", "indexing", "tie_break", "split_seed")
    yield escape("protocol: " + "; ".join(f"{k}={protocol.get(k)}" for k in keys))
    sample = protocol.get("user_sample")
    if isinstance(sample, dict):
        yield escape(f"users: a seeded sample of {sample['users']:,} of {sample['of']:,} test users (--users, seed "
                     f"{sample['seed']}): every score and interval is on these users only")
    for line in summary(paired):
        yield escape(line)
    taste = report["taste_agreement"]
    if taste is not None and taste.get("agreement") is not None:
        yield (f"personal tokens vs hidden taste: {taste['agreement']:.3f} of {taste['users']} users "
               f"(chance {taste['chance']:.3f}); an attribute word for {taste['attribute_share']:.3f} of them")
