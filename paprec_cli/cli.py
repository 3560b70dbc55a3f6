"""The `paprec` command line: a Typer app assembled from `paprec_cli.commands` and plugins."""

from __future__ import annotations

import typer

from paprec_cli import __version__
from paprec_cli.commands import (
    data_cmd,
    eval_cmd,
    export_cmd,
    models_cmd,
    plot_cmd,
    plugins_cmd,
    recommend_cmd,
    search_cmd,
    sweep_cmd,
    train_cmd,
)
from paprec_cli.commands.common import JsonUsageGroup, PaprecTyper
from paprec_cli.plugins import load_registry, register_plugin_commands

app = PaprecTyper(
    name="paprec",
    help="Find better prompts for recommendation language models (PAP-REC).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=JsonUsageGroup,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paprec {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """paprec: personalized automatic prompt search for recommendation language models."""


for module in (data_cmd, train_cmd, models_cmd, search_cmd, eval_cmd, export_cmd, recommend_cmd, plugins_cmd,
               plot_cmd, sweep_cmd):
    module.register(app)

register_plugin_commands(app, load_registry())


def main() -> None:
    app()
