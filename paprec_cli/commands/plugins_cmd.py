"""`paprec plugins`: what is installed, and whether it loaded."""

from __future__ import annotations

from rich.table import Table

from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, make_ctx


def register(app: PaprecTyper) -> None:
    @app.command("plugins")
    def plugins(json_out: JsonOpt = False, quiet: QuietOpt = False, home: HomeOpt = None) -> None:
        """List plugins with their tasks and datasets, and any that failed to load."""
        ctx = make_ctx(home, json_out, quiet)
        data = ctx.registry.as_json()
        table = Table(title="paprec plugins")
        for column in ("kind", "name", "plugin / version", "status"):
            table.add_column(column)
        for plugin in data["plugins"]:
            table.add_row("plugin", plugin["name"], plugin["version"], plugin["status"])
        for kind in ("tasks", "datasets"):
            for entry in data[kind]:
                table.add_row(kind[:-1], entry["name"], entry["plugin"], entry["status"])
        ctx.out.show(table)
        ctx.out.result(data)
