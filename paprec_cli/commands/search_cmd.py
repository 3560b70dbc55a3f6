"""`paprec search`: find shared and personalized trigger tokens for a frozen model (PAP-REC)."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from paprec_cli.commands.common import (
    DecodingOpt,
    DeviceOpt,
    HomeOpt,
    JsonOpt,
    PaprecTyper,
    QuietOpt,
    SeedOpt,
    SeparatorOpt,
    TokenizerOpt,
    VerboseOpt,
    make_ctx,
    tokenizer_arg,
)
from paprec_cli.given import given_options
from paprec_cli.progress import heartbeat, search_progress
from paprec_cli.search.config import DEFAULT_PROTOCOL
from paprec_cli.views import search as views

if TYPE_CHECKING:
    pass

HELP = (
    "Search trigger tokens for a frozen recommendation model (PAP-REC).\n\n"
    "The prompt keeps the task's argument (user, history or candidates) and surrounds it with shared trigger "
    "tokens and per-user personal tokens, chosen by gradients on training examples and kept only when they "
    "improve a signal on validation users (--protocol: guarded, the default, or paper, as published). Writes a "
    "run directory (manifest, trajectory, resumable state, prompts.json) and prints manual vs shared vs "
    "personalized on validation and test.\n"
)

Opt = typer.Option
MODEL_HELP = ("Model folder or name (default: the newest of <dataset>-tiny-atomic and its re-run versions -2, -3, ..., "
              "else the one model trained on the dataset).")
SELECTION_HELP = ("surrogate (the task's metric, NDCG@5 + HR@5), loss (the target's NLL) or rank (NDCG@50 of the "
                  "target: dense, read off the ranking); default: the protocol's (guarded: rank, paper: surrogate, "
                  "transfer and history: loss).")
PROTOCOL_HELP = ("guarded (the default: manual start, each user's personal token starts at a training-history "
                 "attribute word, --personal-init auto, candidates = gradient top-5 + 5 history words, NDCG@50 of the "
                 "validation and last training example, shared flips confirmed on held-out users by a paired "
                 "z > 1.645, personal margin 0.5, 1 round), paper (PAP-REC as published: random start, 20 rounds, "
                 "NDCG@5 + HR@5 on one validation example per user, top-5, strict improvement), history or "
                 "transfer (experiments, docs/ABLATION-14.md). Options below override it.")
ROUNDS_HELP = "Stop after this many shared+personal rounds (guarded 1, history 2, paper and transfer 20)."
PERSONAL_INIT_HELP = ("Personal token start: auto (liked or history, whichever scores higher on the search users' "
                      "validation examples; history without ratings), liked (each user's training-history "
                      "attribute word with the largest sum of rating minus the training ratings' midpoint; the most "
                      "frequent one on a dataset without ratings), history (the most frequent one) or default (one "
                      "shared draw); guarded: auto, history: history, others: default.")
HISTORY_CAND_HELP = ("Each user's M best training-history attribute words (ranked as --personal-init ranks them) added "
                     "to the personal candidates (guarded and history 5, others 0).")
SHARED_HELP = "--no-shared: keep the initial shared tokens and search only the personal ones."
SEARCH_EXAMPLES_HELP = ("Each user's last N training examples scored with the validation one (paper 0, others 1).")
HOLDOUT_HELP = "Share of users held out to confirm each shared flip (paper 0, others 0.5)."
MARGIN_HELP = ("A personal token is kept only if the user's signal improves by more than this (paper 0, guarded 0.5 "
               "NDCG@50, transfer 0.1 and history 1.0 nats).")
SHARED_Z_HELP = ("A shared flip is kept only if its per-user improvement on the confirming users (held-out, else all) "
                 "exceeds Z standard errors (paired one-sided z-test; guarded 1.645 = 95%; others 0 = any "
                 "improvement).")
SCREEN_HELP = ("Early elimination: score each shared slot's candidates on this seeded share of the choosing users "
               "first; only those that improve it are scored on the rest (guarded 0.25; others 0 = off).")
BUDGET_HELP = ("Stop cleanly once this many seconds have passed. Checked between steps: the step under way "
               "finishes first (a personal step on Beauty-sized data can take minutes on a CPU).")
BATCH_HELP = ("Rows per forward pass, for the surrogate and the gradients (default: 256; on CUDA 2048 for the "
              "surrogate and 512 for gradients).")
EVALUATOR_HELP = "fast (all candidates in batched exact ranking) or beam (20-beam generate, one candidate at a time)."
INIT_HELP = (
    "Starting prompt: random (seeded whole words, as PAP-REC) or manual (the task's manual template words "
    "around the argument; sets --n-prefix/--n-suffix). Default: the protocol's (paper and transfer: random, "
    "guarded and history: manual; giving --n-prefix/--n-suffix starts from random words)."
)
TEMPLATE_HELP = ("The manual prompt: a template id of the task (e.g. 2-4; default the task's, 2-3 for "
                 "sequential). --init manual starts from its words; eval compares against it. With a P5 checkpoint, "
                 "templates that name the user (2-4..2-6, 2-13, 5-5, 5-6, 1-6) use the dataset's user names.")
EVAL_USERS_HELP = ("The closing evaluation (manual, shared and personalized on validation and test) scores a seeded "
                   "sample of N users with a test example instead of all (recorded in prompts.json; the prompts do "
                   "not change; may be given on --resume). For datasets too large to score whole on a CPU.")
RUN_DIR_HELP = "Run folder (default: <home>/runs/<time>-<task>-<dataset>)."
RESUME_HELP = "Continue an interrupted run (its folder, or its name under <home>/runs)."


def register(app: PaprecTyper) -> None:
    app.command("search", help=HELP)(search_command)


def search_command(
    task: Annotated[str | None, Opt("--task", help="Task to search prompts for (sequential, direct, rating).")] = None,
    dataset: Annotated[str | None, Opt("--dataset", help="Imported dataset to search on.")] = None,
    model: Annotated[str | None, Opt("--model", help=MODEL_HELP)] = None,
    tokenizer: TokenizerOpt = None,
    separator: SeparatorOpt = None,
    decoding: DecodingOpt = "paprec",
    n_prefix: Annotated[
        int | None, Opt("--n-prefix", help="Shared trigger tokens before the argument (default 0).")
    ] = None,
    n_suffix: Annotated[
        int | None, Opt("--n-suffix", help="Shared trigger tokens after the argument (default 5).")
    ] = None,
    init: Annotated[str | None, Opt("--init", help=INIT_HELP)] = None,
    n_personal: Annotated[int, Opt("--n-personal", help="Personalized tokens per user (0: shared only).")] = 1,
    protocol: Annotated[str, Opt("--protocol", help=PROTOCOL_HELP)] = DEFAULT_PROTOCOL,
    top_k: Annotated[int | None, Opt("--top-k", help="Candidates per slot, from the gradient ranking (5).")] = None,
    val_users: Annotated[int | None, Opt("--val-users", help="Seeded sample of validation users.")] = None,
    grad_examples: Annotated[int, Opt("--grad-examples", help="Training examples for the shared gradient.")] = 256,
    max_rounds: Annotated[int | None, Opt("--max-rounds", help=ROUNDS_HELP)] = None,
    time_budget: Annotated[float | None, Opt("--time-budget", help=BUDGET_HELP)] = None,
    selection: Annotated[str | None, Opt("--selection", help=SELECTION_HELP)] = None,
    search_examples: Annotated[int | None, Opt("--search-examples", help=SEARCH_EXAMPLES_HELP)] = None,
    holdout: Annotated[float | None, Opt("--holdout", help=HOLDOUT_HELP)] = None,
    personal_margin: Annotated[float | None, Opt("--personal-margin", help=MARGIN_HELP)] = None,
    personal_init: Annotated[str | None, Opt("--personal-init", help=PERSONAL_INIT_HELP)] = None,
    history_candidates: Annotated[int | None, Opt("--history-candidates", help=HISTORY_CAND_HELP)] = None,
    search_shared: Annotated[bool, Opt("--shared/--no-shared", help=SHARED_HELP)] = True,
    shared_z: Annotated[float | None, Opt("--shared-z", help=SHARED_Z_HELP)] = None,
    shared_screen: Annotated[float | None, Opt("--shared-screen", help=SCREEN_HELP)] = None,
    template: Annotated[str | None, Opt("--template", help=TEMPLATE_HELP)] = None,
    evaluator: Annotated[str, Opt("--evaluator", help=EVALUATOR_HELP)] = "fast",
    batch_size: Annotated[int | None, Opt("--batch-size", help=BATCH_HELP)] = None,
    eval_users: Annotated[int | None, Opt("--eval-users", help=EVAL_USERS_HELP)] = None,
    allow_list: Annotated[Path | None, Opt("--allow-list", help="File of allowed trigger words, one per line.")] = None,
    run_dir: Annotated[Path | None, Opt("--run-dir", help=RUN_DIR_HELP)] = None,
    resume: Annotated[str | None, Opt("--resume", help=RESUME_HELP)] = None,
    force: Annotated[bool, Opt("--force", help="Write the run into a --run-dir that holds other files.")] = False,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    home: HomeOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    from paprec_cli.distributed import distributed, resolve_device
    from paprec_cli.search import runner

    request = runner.SearchRequest(task, dataset, model, n_prefix, n_suffix, init, n_personal, top_k, val_users,
                                   grad_examples, max_rounds, time_budget, selection, evaluator, batch_size,
                                   allow_list, run_dir, resume, seed, tokenizer_arg(tokenizer), protocol,
                                   search_examples, holdout, personal_margin, separator, decoding, force,
                                   personal_init, history_candidates, search_shared, shared_z, template,
                                   shared_screen, eval_users, given_options())
    # Under torchrun every rank runs this; rank 0 alone writes the run folder and prints (see docs/DISTRIBUTED.md).
    with distributed(resolve_device(device)) as dist:
        ctx = make_ctx(home, json_out and dist.is_main, quiet or not dist.is_main, verbose)
        out = ctx.out
        started = runner.start(request, ctx.home, ctx.registry, dist, note=out.debug, info=out.info)
        session, run = started.session, started.run
        recorded = runner.recorded_result(run)  # a finished run: a resume reports its prompts.json
        if recorded is not None:
            out.info(f"{run.path} has finished; its recorded results follow (paprec eval {run.path} scores them "
                     "again, with reference prompts and intervals)")
        elif started.resumed:
            out.info(f"Resuming {run.path} at step {started.state.steps if started.state else 0}")
        if session.left_out:
            out.info(f"--init manual: left out the template words {' '.join(session.left_out)} "
                     f"({runner.LEFT_OUT_WHY}): the search starts from a prompt without them")
        if session.start_note:
            out.info(session.start_note)
        out.info(f"Run directory: {run.path}")
        writer = run if dist.is_main else None  # the other ranks compute their share and write nothing
        layout = session.config.layout
        per_round = layout.n_shared + (1 if layout.n_personal else 0)
        config = session.config
        with _interrupts(run.path), search_progress(out, per_round, config.max_rounds, config.time_budget) as observe:
            state = runner.search(session, writer, started.state, observe)
        final = state.history[-1] if state.history else state.initial_value
        out.info(f"Search stopped ({state.stop_reason}) after {state.round} round(s), {state.seconds:.1f}s: surrogate "
                 f"{state.initial_value:.4f} ({session.config.init} initial prompt"
                 f"{', with history words' if state.initial.personal else ''}"
                 f"{', manual words left out: ' + ' '.join(session.left_out) if session.left_out else ''}) -> "
                 f"{final:.4f}{'' if recorded else '; evaluating'}")
        if recorded is not None:
            doc = recorded
        else:  # the closing evaluation: the state is saved, a resume redoes it
            if config.eval_users is not None:
                out.info(f"--eval-users {config.eval_users}: the closing evaluation scores a seeded sample (seed "
                         f"{config.seed}) of {config.eval_users:,} users with a test example (all of them when there "
                         "are no more)")
            with _interrupts(run.path), heartbeat(out.err, "evaluating manual, shared and personalized prompts"):
                doc = runner.finalize(session, writer, state)
        warning = runner.below_manual(doc, session.left_out)
        if dist.is_main:
            out.show(views.result_table(doc))
        if warning and dist.is_main:
            sys.stderr.write(warning + "\n")
        out.result({"run": str(run.path), "results": doc["results"], "surrogate": doc["surrogate"],
                    "stop_reason": state.stop_reason, "seconds": doc["search"]["seconds"], "warning": warning,
                    "history_start": state.history_start, "evaluation": doc["search"].get("evaluation")})


@contextlib.contextmanager
def _interrupts(path: Path) -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C; either ends with a one-line resume hint (the state is already saved, and the
    manifest holds every option, `--eval-users` included)."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except KeyboardInterrupt:
        sys.stderr.write(f"Interrupted; the run is saved. Continue with: paprec search --resume {path}\n")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
