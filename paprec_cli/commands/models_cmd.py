"""`paprec models list | info NAME`: the trained models under the models home (core: `paprec_cli.registry`)."""

from __future__ import annotations

from typing import Annotated

import typer

from paprec_cli import registry
from paprec_cli.commands.common import HomeOpt, JsonOpt, PaprecTyper, QuietOpt, make_ctx
from paprec_cli.views import models as views


def register(app: PaprecTyper) -> None:
    models = PaprecTyper(help="Trained models: list them, show one.", no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list")
    def list_models(json_out: JsonOpt = False, quiet: QuietOpt = False, home: HomeOpt = None) -> None:
        """List the models under the models home with their dataset, size and headline test metric (a damaged
        model is listed as broken, with the reason)."""
        ctx = make_ctx(home, json_out, quiet)
        rows = registry.list_models(ctx.home)
        if not rows:
            ctx.out.info(f"No models in {ctx.home.models}; train one with `paprec train --dataset synthetic`.")
        else:
            ctx.out.show(views.models_table(rows, ctx.home.models))
        ctx.out.result({"models": rows})

    @models.command("info")
    def info(
        name: Annotated[str, typer.Argument(help="A model name (see `paprec models list`) or a model folder.")],
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Show a model's config and training record (metrics per epoch, baselines, sensitivity)."""
        ctx = make_ctx(home, json_out, quiet)
        folder, config, training = registry.model_record(ctx.home, name)
        ctx.out.show(views.info_table(folder, config, training))
        ctx.out.result({"name": folder.name, "path": str(folder), "item_head": registry.item_head(config),
                        "seen_bias": registry.seen_bias(folder, config), "config": config, "training": training,
                        "unfinished": registry.unfinished_training(folder)})
