"""`paprec data list | import | info`: bring datasets into the data home and describe them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import typer
from rich.markup import escape
from rich.table import Table

from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, SeedOpt, VerboseOpt, make_ctx
from paprec_cli.data.store import Dataset, dataset_exists, import_dataset, list_imported, load_dataset
from paprec_cli.errors import PaprecError
from paprec_cli.specs import ImportOptions

FromOpt = Annotated[
    Path | None, typer.Option("--from", help="The raw file or folder (not needed for generated datasets).")
]
NameOpt = Annotated[str | None, typer.Option("--name", help="Store under this name (default: the dataset's).")]
IndexingOpt = Annotated[
    str,
    typer.Option(
        "--indexing",
        help="Item ids: 'random' (seeded permutation, leak-free) or 'sequential' (P5's order of first appearance).",
    ),
]
TieBreakOpt = Annotated[
    str | None,
    typer.Option(
        "--tie-break",
        help="Equal timestamps: 'source' keeps file order, 'item' sorts by item id (default: the dataset's).",
    ),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="Loader setting KEY=VALUE (repeatable), e.g. users=1000 or sep=';'."),
]

INDEXINGS = ("random", "sequential")
TIE_BREAKS = ("source", "item")


def parse_options(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings to a dict; a missing '=' or a repeated key is a user error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PaprecError(f"--option {pair}: expected KEY=VALUE (e.g. --option sep=';')")
        if key in out:
            raise PaprecError(f"--option {key} given twice; give each key once")
        out[key] = value
    return out


def describe(dataset: Dataset) -> dict[str, Any]:
    """Counts and shape statistics of an imported dataset (what `data info` prints)."""
    table = dataset.interactions
    manifest = dataset.manifest
    lengths = table.group_by("user_idx").len()["len"].to_numpy()
    users, items, n = dataset.n_users, dataset.n_items, table.height
    histogram: dict[str, int] | None = None
    if dataset.has_ratings:
        counts = table.filter(pl.col("rating").is_not_null()).group_by("rating").len().sort("rating")
        histogram = {_rating_key(r): int(c) for r, c in zip(counts["rating"], counts["len"], strict=True)}
    repeats = n - table.select("user_idx", "item_idx").unique().height
    attrs = dataset.items["attributes"]
    return {
        "name": dataset.name,
        "dataset": manifest.get("dataset", dataset.name),
        "users": users,
        "items": items,
        "interactions": n,
        "density": n / (users * items) if users and items else 0.0,
        "sequence_length": {
            "min": int(lengths.min()),
            "mean": round(float(lengths.mean()), 3),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
        "repeat_interactions": repeats,
        "rating_histogram": histogram,
        "with_timestamp": int(manifest["counts"].get("with_timestamp", 0)),
        "layout": manifest.get("layout") or manifest.get("notes", {}).get("format"),
        "duplicates_removed": manifest["counts"].get("duplicates_removed"),
        "encodings": {Path(s["path"]).name: s["encoding"] for s in manifest.get("sources", []) if s.get("encoding")},
        "items_with_attributes": int((attrs.list.len() > 0).sum()),
        "distinct_attributes": int(attrs.explode().drop_nulls().n_unique()),
        "items_with_title": int(dataset.items["title"].is_not_null().sum()),
        "indexing": manifest["indexing"],
        "tie_break": manifest["tie_break"],
        "seed": manifest.get("seed"),
        "options": manifest.get("options", {}),
        "extras": manifest.get("extras", []),
        "fingerprint": dataset.fingerprint,
        "sources": manifest.get("sources", []),
        "created": manifest.get("created"),
        "folder": str(dataset.folder),
    }


def _rating_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _info_table(info: dict[str, Any]) -> Table:
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
         else ", ".join(f"{k}: {v:,}" for k, v in info["rating_histogram"].items())),
        ("items with attributes", f"{info['items_with_attributes']:,} ({info['distinct_attributes']:,} distinct)"),
        ("items with title", f"{info['items_with_title']:,}"),
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


def register(app: PaprecTyper) -> None:
    data_app = PaprecTyper(help="Import datasets into the data home and describe them.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("list")
    def list_cmd(json_out: JsonOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False,
                 home: HomeOpt = None) -> None:  # fmt: skip
        """List registered datasets and what is imported in the data home."""
        ctx = make_ctx(home, json_out, quiet, verbose)
        registry = ctx.registry
        imported = list_imported(ctx.home)
        by_dataset: dict[str, list[str]] = {}
        for manifest in imported:
            by_dataset.setdefault(manifest.get("dataset", manifest["name"]), []).append(manifest["name"])
        rows = []
        entries = list(registry.datasets.values()) + [r for r in registry.rejected if r.name not in registry.datasets
                                                      and hasattr(r.spec, "load")]  # fmt: skip
        for entry in entries:
            spec = entry.spec
            rows.append({
                "name": entry.name,
                "plugin": entry.plugin,
                "status": entry.status,
                "description": spec.description,
                "files": spec.files,
                "needs_files": spec.needs_files,
                "imported": entry.name in by_dataset,
                "imported_as": by_dataset.get(entry.name, []),
            })  # fmt: skip
        table = Table(title=f"datasets (data home: {ctx.home.data})")
        for column in ("name", "plugin", "imported", "description"):
            table.add_column(column)
        for row in rows:
            mark = ", ".join(row["imported_as"]) if row["imported"] else "-"
            status = "" if row["status"] == "ok" else f" [red]({escape(row['status'])})[/red]"
            table.add_row(row["name"], row["plugin"], escape(mark), escape(row["description"]) + status)
        ctx.out.show(table)
        summary = [
            {"name": m["name"], "dataset": m.get("dataset"), "indexing": m.get("indexing"), **m.get("counts", {}),
             **({"broken": m["broken"]} if "broken" in m else {})}
            for m in imported
        ]
        for m in imported:
            if "broken" in m:
                ctx.out.info(escape(f"broken import '{m['name']}': {m['broken']}"))
        ctx.out.result({"datasets": rows, "imported": summary, "home": str(ctx.home.root)})

    @data_app.command("import")
    def import_cmd(
        name: Annotated[str, typer.Argument(help="A registered dataset (see `paprec data list`).")],
        source: FromOpt = None,
        store_as: NameOpt = None,
        indexing: IndexingOpt = "random",
        tie_break: TieBreakOpt = None,
        seed: SeedOpt = 0,
        option: OptionOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Read a dataset's raw files (or generate it) and store it as Parquet plus a manifest."""
        ctx = make_ctx(home, json_out, quiet, verbose)
        if indexing not in INDEXINGS:
            raise PaprecError(f"--indexing {indexing}: expected one of {', '.join(INDEXINGS)}")
        if tie_break is not None and tie_break not in TIE_BREAKS:
            raise PaprecError(f"--tie-break {tie_break}: expected one of {', '.join(TIE_BREAKS)}")
        if store_as is not None and (not store_as.strip() or any(c in store_as for c in "/\\") or store_as[0] == "."):
            raise PaprecError(f"--name {store_as!r}: expected a plain name (no slashes, not starting with '.')")
        spec = ctx.registry.dataset(name, option="NAME")
        if not spec.needs_files and source is not None:
            raise PaprecError(f"dataset '{name}' is generated and takes no --from; drop --from {source}")
        options = ImportOptions(seed=seed, extra=parse_options(option or []))
        ctx.out.info(escape(f"importing {name}" + (f" from {source}" if source else "") + " ..."))
        if dataset_exists(ctx.home, store_as or name):
            ctx.out.info(f"an import named '{store_as or name}' exists; it is replaced only if this one succeeds")
        manifest = import_dataset(
            spec,
            source.expanduser() if source is not None else None,
            ctx.home,
            name=store_as,
            indexing=indexing,  # type: ignore[arg-type]
            tie_break=tie_break,  # type: ignore[arg-type]
            options=options,
        )
        ctx.out.debug(escape(f"notes: {manifest['notes']}"))
        for report in manifest["notes"].get("reports", []):
            ctx.out.info(escape(report))
        counts = manifest["counts"]
        target = ctx.home.dataset_dir(manifest["name"])
        ctx.out.show(
            f"imported [bold]{escape(manifest['name'])}[/bold]: {counts['users']:,} users, {counts['items']:,} items, "
            f"{counts['interactions']:,} interactions ({manifest['indexing']} indexing, tie-break "
            f"{manifest['tie_break']}) in {manifest['import_seconds']:.2f}s -> {escape(str(target))}"
        )
        ctx.out.result({
            "name": manifest["name"],
            "dataset": manifest["dataset"],
            **counts,
            "indexing": manifest["indexing"],
            "tie_break": manifest["tie_break"],
            "seed": manifest["seed"],
            "fingerprint": manifest["fingerprint"],
            "folder": str(target),
            "import_seconds": manifest["import_seconds"],
        })  # fmt: skip

    @data_app.command("info")
    def info_cmd(
        name: Annotated[str, typer.Argument(help="An imported dataset name.")],
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Users, items, interactions, density, sequence lengths, ratings, indexing and sources."""
        ctx = make_ctx(home, json_out, quiet, verbose)
        info = describe(load_dataset(ctx.home, name))
        ctx.out.show(_info_table(info))
        ctx.out.result(info)
