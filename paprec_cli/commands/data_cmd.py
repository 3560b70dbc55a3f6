"""`paprec data list | import | info`: bring datasets into the data home and describe them.

Core: `paprec_cli.data.catalog` (list, checked import) and `paprec_cli.data.stats` (info).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, SeedOpt, VerboseOpt, make_ctx
from paprec_cli.data.catalog import catalog, import_checked
from paprec_cli.data.stats import DatasetInfo, describe
from paprec_cli.data.store import load_dataset

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


def _info_table(info: DatasetInfo) -> Table:
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
        found = catalog(ctx.registry, ctx.home)
        table = Table(title=f"datasets (data home: {ctx.home.data})")
        for column in ("name", "plugin", "imported", "description"):
            table.add_column(column)
        for row in found["datasets"]:
            mark = ", ".join(row["imported_as"]) if row["imported"] else "-"
            status = "" if row["status"] == "ok" else f" [red]({escape(row['status'])})[/red]"
            table.add_row(row["name"], row["plugin"], escape(mark), escape(row["description"]) + status)
        ctx.out.show(table)
        ctx.out.result(found)

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
        manifest = import_checked(ctx.registry, ctx.home, name, source, store_as=store_as, indexing=indexing,
                                  tie_break=tie_break, seed=seed, options=option or [],
                                  info=lambda line: ctx.out.info(escape(line)))
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
        keys = ("name", "dataset", "indexing", "tie_break", "seed", "fingerprint")
        ctx.out.result({**{k: manifest[k] for k in keys[:2]}, **counts, **{k: manifest[k] for k in keys[2:]},
                        "folder": str(target), "import_seconds": manifest["import_seconds"]})

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
