"""Tables of `paprec data`: one imported dataset's statistics and provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from paprec_cli.data.stats import DatasetInfo


def info_table(info: DatasetInfo) -> Table:
    table = Table(title=f"dataset {info['name']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    lengths = info["sequence_length"]
    rows = [
        ("dataset", info["dataset"]),
        ("layout", info["layout"] or "unknown"),
        ("users", f"{info['users']:,}"),
        ("items", f"{info['items']:,}"),
        ("interactions", f"{info['interactions']:,}"),
        ("density", f"{info['density']:.5f}"),
        ("sequence length", f"min {lengths['min']}, mean {lengths['mean']}, median {lengths['median']:g}, "
         f"max {lengths['max']}"),
        ("repeat interactions", f"{info['repeat_interactions']:,}"),
        ("duplicates removed", "not recorded (imported before this was counted)"
         if info["duplicates_removed"] is None else f"{info['duplicates_removed']:,}"),
        ("ratings", "none" if info["rating_histogram"] is None
         else ", ".join(f"{k}: {v:,}" for k, v in info["rating_histogram"].items())
         + (f"; unrated: {info['unrated_interactions']:,}" if info["unrated_interactions"] else "")),
        ("items with attributes", f"{info['items_with_attributes']:,} ({info['distinct_attributes']:,} distinct)"),
        ("items with title", f"{info['items_with_title']:,}"),
        ("users with a name", f"{info['users_with_name']:,}"),
        ("indexing", info["indexing"]),
        ("tie-break", info["tie_break"]),
        ("seed", str(info["seed"])),
        ("extras", ", ".join(info["extras"]) or "none"),
        ("fingerprint", info["fingerprint"]),
    ]  # fmt: skip
    for source in info["sources"]:
        encoding = f", {source['encoding']}" if source.get("encoding") else ""
        rows.append(("source", f"{source['path']} (sha256 {source['sha256'][:12]}...{encoding})"))
    for field, value in rows:
        table.add_row(field, escape(str(value)))
    return table


def catalog_table(found: dict[str, Any], data_home: Path) -> Table:
    """`paprec data list`: registered datasets, their plugin, what is imported, and any load error."""
    table = Table(title=f"datasets (data home: {data_home})")
    for column in ("name", "plugin", "imported", "description"):
        table.add_column(column)
    broken = {entry["name"] for entry in found["imported"] if "broken" in entry}
    for row in found["datasets"]:
        names = [f"{name} (broken)" if name in broken else name for name in row["imported_as"]]
        mark = ", ".join(names) if row["imported"] else "-"
        status = "" if row["status"] == "ok" else f" [red]({escape(row['status'])})[/red]"
        table.add_row(row["name"], row["plugin"], escape(mark), escape(row["description"]) + status)
    return table
