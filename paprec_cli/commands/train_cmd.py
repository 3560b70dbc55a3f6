"""`paprec train`: train a P5-style RLM and report it next to popularity and item-kNN."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from paprec_cli.commands.common import (
    DeviceOpt,
    HomeOpt,
    JsonOpt,
    PaprecTyper,
    QuietOpt,
    SeedOpt,
    TokenizerOpt,
    VerboseOpt,
    make_ctx,
    tokenizer_arg,
)
from paprec_cli.views import train as views


def register(app: PaprecTyper) -> None:
    @app.command("train")
    def train(
        dataset: Annotated[
            str | None, typer.Option("--dataset", "-d", help="An imported dataset ('synthetic' imports itself).")
        ] = None,
        tasks: Annotated[
            str | None,
            typer.Option(
                "--tasks",
                help="Comma-separated tasks (default: all the dataset supports). The first ranking task listed "
                "picks the best epoch (its validation NDCG@10).",
            ),
        ] = None,
        size: Annotated[
            str | None, typer.Option("--size", help="Model size: tiny, small (P5-small) or base (P5-base).")
        ] = None,
        ids: Annotated[
            str | None, typer.Option("--ids", help="Item/user ids: atomic (one token each) or subword (P5's digits).")
        ] = None,
        epochs: Annotated[int | None, typer.Option("--epochs", help="Maximum epochs (default per size).")] = None,
        time_budget: Annotated[
            float | None,
            typer.Option(
                "--time-budget",
                help="Stop after this many seconds (the learning rate anneals within them), then validate and save "
                "the best. Tiny caps at 150 s unless --epochs is given; that cap does not shape the schedule "
                "(synthetic: 4 epochs in 106-152 s, test HR@10 0.182-0.192 over 3 seeds and 1 or 2 threads, 2.10-2.21x "
                "popularity). "
                "ml-100k tiny defaults to 600 s, which "
                "bought 6-11 epochs of sequential examples (140-400 examples/s, as fast as the machine ran) on a "
                "2-core CPU and test HR@10 0.142-0.150 over 3 seeds (popularity 0.050, item-kNN 0.118; with known "
                "items removed from both rankings item-kNN leads, 0.191 against 0.176); Beauty "
                "tiny, 300 s: 0.029; 7200 s with the seen bias and user-id dropout: 0.041 (item-kNN 0.060; the full "
                "command is in the README's training table). "
                "small and base: no budget measured yet (a GPU's work; on a 2-core CPU one Beauty epoch "
                "takes hours). "
                "docs/RECIPE-18.md has the measurements.",
            ),
        ] = None,
        lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (default per size).")] = None,
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", help="Training batch size (default per size).")
        ] = None,
        patience: Annotated[
            int | None, typer.Option("--patience", help="Stop after this many epochs without validation gain.")
        ] = None,
        dropout: Annotated[
            float | None,
            typer.Option("--dropout", help="Dropout rate (default per size; ml-100k tiny: 0). With --init it "
                         "replaces the checkpoint's rate."),
        ] = None,
        weight_decay: Annotated[
            float | None, typer.Option("--weight-decay", help="AdamW weight decay (default per size).")
        ] = None,
        item_init: Annotated[
            str | None,
            typer.Option(
                "--item-init",
                help="Fresh atomic-id models: start item/user rows from training co-occurrence "
                "('cooccurrence', tiny's default; 'cooccurrence-items': item rows only) or T5's random init "
                "('random').",
            ),
        ] = None,
        val_users: Annotated[
            int | None,
            typer.Option("--val-users", help="At most this many validation users per epoch, a seeded sample (all of "
                         "them when the dataset has fewer; default per size and dataset)."),
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="Model name (default <dataset>-<size>-<ids>).")] = None,
        resume: Annotated[
            str | None,
            typer.Option("--resume", help="Continue the named run from its last finished epoch (the same model as "
                         "an uninterrupted run); --time-budget here is this command's own budget."),
        ] = None,
        init: Annotated[
            str | None, typer.Option("--init", help="Start from weights: a paprec model, HF T5 folder or P5 .pth.")
        ] = None,
        option: Annotated[
            list[str] | None,
            typer.Option("--option", "-o", help="Setting KEY=VALUE: negatives=N (direct-task negatives, default 99; "
                         "recorded in the protocol); recipe changes for a fresh run: history=N (items a sequential "
                         "prompt shows), recent=N (each user's N most recent training examples), share=F (part of "
                         "the examples drawn per epoch), hint=, history_hint=, word_item=, item_next=, user_item=, "
                         "item_words= "
                         "(auxiliary families), warmup=F, seen_penalty=W (penalty on the prompt's own items), "
                         "user_dropout=P (share of training prompts whose user id becomes the unknown token; "
                         "atomic ids; ml-100k tiny: 0.5), future=K / future_weight=W (the next K training items as "
                         "extra targets of sequential prompts; atomic ids; tried, off), "
                         "item_head=untied (item tokens get output rows of their own; atomic ids), seen_bias=1 (a "
                         "learned logit bias for the items the prompt lists, how likely a repeat is; atomic ids; "
                         "synthetic and ml-100k tiny: on)."),
        ] = None,
        tokenizer: TokenizerOpt = None,
        force: Annotated[
            bool, typer.Option("--force", help="Replace an existing model of the same --name (and its state).")
        ] = False,
        seed: SeedOpt = 0,
        device: DeviceOpt = "auto",
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Train a P5-style recommendation LM (multitask, multi-template, words that steer) and report
        test metrics next to popularity and item-kNN, plus prompt sensitivity."""
        from paprec_cli.distributed import DistContext, resolve_device
        from paprec_cli.training import setup
        from paprec_cli.training.run import train as run_training

        # Under torchrun every rank runs this; rank 0 alone writes the model and prints (docs/DISTRIBUTED.md).
        dist = DistContext.from_env(resolve_device(device))
        ctx = make_ctx(home, json_out and dist.is_main, quiet or not dist.is_main, verbose)
        overrides: dict[str, Any] = {
            "lr": lr, "batch_size": batch_size, "epochs": epochs, "patience": patience, "dropout": dropout,
            "weight_decay": weight_decay, "val_users": val_users, "item_init": item_init,
        }  # fmt: skip
        options = setup.cli_options(ctx.home, dataset=dataset, tasks=tasks, size=size, ids=ids, name=name, seed=seed,
                                    time_budget=time_budget, init=init, resume=resume, overrides=overrides,
                                    settings=option or [], tokenizer=tokenizer_arg(tokenizer))
        result = run_training(options, ctx.home, ctx.out, ctx.registry, dist.device, resume=bool(resume), dist=dist,
                              force=force, explicit_name=name is not None)
        dist.destroy()
        if not dist.is_main:
            return
        ctx.out.show(views.results_table(result))
        sens = views.sensitivity_table(result.get("sensitivity") or {})
        if sens is not None:
            ctx.out.show(sens)
        if not result.get("unchanged"):
            ctx.out.info(f"Model saved to {result['model']} ({result['epochs']} epochs, best {result['best_epoch']}, "
                         f"stopped by {result['stopped'].replace('_', ' ')}, {result['seconds']:.0f} s)")  # fmt: skip
        ctx.out.result(result)
