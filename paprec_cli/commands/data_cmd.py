"""`paprec data list | import | info`: bring datasets into the data home and describe them.

Core: `paprec_cli.data.catalog` (list, checked import) and `paprec_cli.data.stats` (info).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, SeedOpt, VerboseOpt, make_ctx
from paprec_cli.data.catalog import catalog, import_checked
from paprec_cli.data.stats import describe
from paprec_cli.data.store import load_dataset
from paprec_cli.views import data as views

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


def register(app: PaprecTyper) -> None:
    data_app = PaprecTyper(help="Import datasets into the data home and describe them.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("list")
    def list_cmd(json_out: JsonOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False,
                 home: HomeOpt = None) -> None:  # fmt: skip
        """List registered datasets and what is imported in the data home."""
        ctx = make_ctx(home, json_out, quiet, verbose)
        found = catalog(ctx.registry, ctx.home)
        ctx.out.show(views.catalog_table(found, ctx.home.data))
        for entry in found["imported"]:
            if "broken" in entry:
                ctx.out.info(escape(f"broken import '{entry['name']}': {entry['broken']}"))
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
        force: Annotated[bool, typer.Option("--force", help="Replace an existing import of the same name.")] = False,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Read a dataset's raw files (or generate it) and store it as Parquet plus a manifest."""
        ctx = make_ctx(home, json_out, quiet, verbose)
        manifest = import_checked(ctx.registry, ctx.home, name, source, store_as=store_as, indexing=indexing,
                                  tie_break=tie_break, seed=seed, options=option or [], force=force,
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
        ctx.out.show(views.info_table(info))
        ctx.out.result(info)
