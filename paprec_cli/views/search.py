"""What `paprec search` prints at the end: manual vs shared vs personalized prompts, validation and test."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from paprec_cli.export import Document


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def result_table(doc: Document) -> Table:
    """Metrics as rows; manual / shared / personalized on validation, then on test, as columns."""
    results = doc["results"]
    parts = [p for p in ("validation", "test") if any(p in v for v in results.values())]
    metrics: list[str] = []
    for variant in results.values():
        for values in variant.values():
            metrics.extend(k for k in values if k not in metrics)
    table = Table(title=f"{doc['task']} on {doc['dataset']}: manual vs automatic prompts")
    table.add_column("metric", no_wrap=True)
    columns = [(variant, part) for part in parts for variant in results]
    for variant, part in columns:
        table.add_column(f"{variant}\n{'val' if part == 'validation' else part}", justify="right")
    for metric in metrics:
        table.add_row(metric, *[_fmt(results[v].get(p, {}).get(m)) for v, p in columns for m in [metric]])
    table.add_row("surrogate*", *[_fmt(doc["surrogate"].get(v)) if p == "validation" else "" for v, p in columns])
    table.caption = "* the search's selection measure on its validation sample"
    sample = doc.get("search", {}).get("evaluation")
    if isinstance(sample, dict):
        table.caption += (f"; val/test columns: a seeded sample of {sample['users']:,} of {sample['of']:,} test users "
                          "(--eval-users)")
    return table
