"""`paprec train` end to end: data, model, epochs with validation and model selection, test report.

Each epoch: render the epoch's multitask pairs, train (stopping early when `--time-budget` is spent),
validate every task on a seeded sample of validation users with its default manual template, keep the
best epoch's weights (the model folder is rewritten whenever validation improves), save the resume
state, and stop after `patience` epochs without improvement. Then the best weights are scored on the
full test split next to the popularity and item-kNN baselines, prompt sensitivity is measured, and
`training.json` is written into the model folder.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

import numpy as np
import torch

from paprec_cli import __version__
from paprec_cli.baselines import baseline_results
from paprec_cli.data.splits import TaskData
from paprec_cli.data.store import Dataset
from paprec_cli.distributed import DistContext
from paprec_cli.errors import Interrupted, PaprecError
from paprec_cli.inputs import PAPREC, InputProtocol
from paprec_cli.output import Output
from paprec_cli.paths import Home
from paprec_cli.plugins import Registry
from paprec_cli.progress import epoch_bar, heartbeat
from paprec_cli.specs import Example, TaskSpec
from paprec_cli.training import state as run_state
from paprec_cli.training.batches import encode_pairs, iterate_batches
from paprec_cli.training.evaluation import evaluate_tasks, sample_examples, selection_metric, selection_score
from paprec_cli.training.item_init import apply_cooccurrence_init
from paprec_cli.training.loop import Clock, EpochStats, Trainer, cpu_threads
from paprec_cli.training.mixture import TrainingData
from paprec_cli.training.recipe import TrainOptions
from paprec_cli.training.sensitivity import prompt_sensitivity
from paprec_cli.training.setup import ensure_dataset, resolve_tasks

if TYPE_CHECKING:
    from paprec_cli.model.bundle import ModelBundle
    from paprec_cli.model.codec import IdScheme
    from paprec_cli.model.inference import Recommender

TRAINING_FORMAT = "paprec-training"


class TrainingResult(TypedDict, total=False):
    """What `paprec train --json` prints (empty on torchrun ranks other than 0)."""

    model: str
    name: str
    test: dict[str, dict[str, float]]
    validation: dict[str, dict[str, float]]
    baselines: dict[str, dict[str, dict[str, float]]]
    sensitivity: dict[str, Any]
    epochs: int
    best_epoch: int
    stopped: str
    seconds: float
    unchanged: str  # `--resume` of a finished run: nothing trained or written; what to raise to train on


@dataclass
class TrainingSession:
    """Everything one training invocation works with (built once, passed around; no globals)."""

    options: TrainOptions
    home: Home
    out: Output
    device: str
    dataset: Dataset
    data: TaskData
    tasks: list[TaskSpec]
    training: TrainingData
    bundle: ModelBundle
    state: run_state.RunState
    validation: dict[str, list[Example]] = field(default_factory=dict)
    dist: DistContext | None = None  # torchrun ranks (rank 0 writes); None = one process
    saved_epoch: int = 0  # the last epoch whose resume state is on disk (state.epoch runs ahead while saving)

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main

    @property
    def model_dir(self) -> Path:
        return self.home.model_dir(self.options.name)

    @property
    def state_dir(self) -> Path:
        return run_state.state_dir(self.home, self.options.name)


def open_session(
    options: TrainOptions,
    home: Home,
    out: Output,
    registry: Registry,
    device: str,
    resume: bool,
    dist: DistContext | None = None,
) -> TrainingSession:
    """Load data, build or restore the codec and model; for a resume, read the saved state."""
    dataset = ensure_dataset(home, options.dataset, registry, out.info)
    tasks = resolve_tasks(list(options.tasks), dataset, registry, options.negatives, out.info)
    options = _with_tasks(options, [t.name for t in tasks])
    data = TaskData(dataset, options.seed, options.negatives, inputs=training_inputs(options))
    training = TrainingData(data, tasks, options.mixture, options.seed)
    folder = run_state.state_dir(home, options.name)
    from paprec_cli.model import PromptCodec, create_model  # lazily: the model package pulls in transformers

    if resume:
        saved = run_state.read_state(folder, options.name)
        if saved.options.dataset != options.dataset:
            raise PaprecError(f"--resume {options.name}: state belongs to dataset {saved.options.dataset}")
        codec = PromptCodec.load(folder / "codec", fix=f"remove the damaged resume state {folder} (a finished model "
                                                       "is not touched) and train again, or use another --name")
        if codec.id_scheme != options.ids:
            raise PaprecError(f"{folder / run_state.STATE}: records --ids {options.ids}, but the run's codec has "
                              f"{codec.id_scheme} ids (state.json edited or damaged); remove the resume state "
                              f"{folder} and train again, or use another --name")
        if run_state.has_seen_bias(folder):  # what the checkpoint holds is what the run trains and records
            options = replace(options, recipe=replace(options.recipe, seen_bias=1))
        if codec.dataset_fingerprint and codec.dataset_fingerprint != dataset.fingerprint:
            raise PaprecError(
                f"--resume {options.name}: dataset '{dataset.name}' changed since training started "
                f"(fingerprint {codec.dataset_fingerprint} -> {dataset.fingerprint}); train anew"
            )
        bundle = _with_item_head(create_model(options.size, codec, options.seed, dropout=options.recipe.dropout),
                                 options, untied=run_state.has_item_head(folder),
                                 seen=run_state.has_seen_bias(folder))
        state = run_state.RunState(options, saved.epoch, saved.step, saved.seconds, saved.history,
                                   saved.best_epoch, saved.best_score)  # fmt: skip
    else:
        bundle = _fresh_bundle(options, dataset, training, home)
        if options.init:  # record what the checkpoint brought (training.json, the resume state), not the default 0
            brought = int(bundle.model.seen_bias is not None)
            options = replace(options, recipe=replace(options.recipe, seen_bias=brought))
        state = run_state.RunState(options)
        if dist is None or dist.is_main:
            folder.mkdir(parents=True, exist_ok=True)
            bundle.codec.save(folder / "codec")
    bundle.model.to(device)
    return TrainingSession(options, home, out, device, dataset, data, tasks, training, bundle, state, dist=dist,
                           saved_epoch=state.epoch)


def training_inputs(options: TrainOptions) -> InputProtocol:
    """paprec's input protocol with the recipe's history length (`Recipe.history`, default 20)."""
    if options.recipe.history == PAPREC.history:
        return PAPREC
    return InputProtocol(history=options.recipe.history)


def _with_tasks(options: TrainOptions, names: list[str]) -> TrainOptions:
    from dataclasses import replace

    return replace(options, tasks=tuple(names))


def _fresh_bundle(options: TrainOptions, dataset: Dataset, training: TrainingData, home: Home) -> ModelBundle:
    """A new codec and model, or the weights of `--init` (paprec folder, HF T5 folder, P5 .pth)."""
    from paprec_cli.model import build_codec, create_model, load_model

    ids = cast("IdScheme", options.ids)  # checked against ID_SCHEMES when the options were made
    if options.init:
        # Checks users, items and fingerprint against the dataset; HF/P5 layouts get the codec from it.
        tokenizer = Path(options.tokenizer) if options.tokenizer else None
        loaded = load_model(options.init, home, dataset=dataset, id_scheme=ids, tokenizer=tokenizer)
        if loaded.codec.id_scheme != ids:  # `setup._init_ids` reads it first; never record the wrong scheme
            raise PaprecError(f"--init {options.init} has {loaded.codec.id_scheme} ids, but the run records "
                              f"--ids {ids}; start it again with --ids {loaded.codec.id_scheme}")
        # the run's dropout, as recorded in training.json and used again by --resume (not the checkpoint's)
        loaded.model.set_dropout(options.recipe.dropout)
        dims = loaded.config.get("dims")
        if isinstance(dims, dict):
            dims["dropout_rate"] = options.recipe.dropout
        if not str(loaded.config.get("init", "")).startswith(("hf:", "p5:")):  # a paprec model: its own origin
            loaded.config["init"] = f"model:{options.init}"  # was the checkpoint's ("scratch"), not this run's
        return loaded
    codec = build_codec(dataset, ids, training.texts())
    codec.rating_readout = rating_readout_for(dataset)
    bundle = create_model(options.size, codec, options.seed, dropout=options.recipe.dropout)
    if options.recipe.zero_whole_word:
        torch.nn.init.zeros_(bundle.model.whole_word.weight)
    if options.recipe.item_init.startswith("cooccurrence"):
        data = training.data
        apply_cooccurrence_init(bundle.model.t5.shared.weight, codec.user_offset, codec.item_offset,
                                data.loo.train, data.n_users, data.n_items, options.seed,
                                users=options.recipe.item_init == "cooccurrence")
    return _with_item_head(bundle, options)


def _with_item_head(bundle: ModelBundle, options: TrainOptions, untied: bool = False,
                    seen: bool = False) -> ModelBundle:
    """`bundle` with the item rows of its head untied when the recipe asks (`-o item_head=untied`) or `untied`
    (a resumed run whose checkpoint has them, e.g. one started with `--init` from an untied model), after the
    co-occurrence start so that the head starts from the same rows; a resumed run then loads its own. Likewise
    a seen bias (`-o seen_bias=1`, or `seen`: the checkpoint has one), started at 0. The options were checked
    when the run was made (`setup._check_item_head`: atomic ids, a fresh model)."""
    codec = bundle.codec
    if options.recipe.item_head == "untied" or untied:
        bundle.model.untie_items(codec.item_offset, codec.n_items)
        bundle.config["item_head"] = "untied"
    if (options.recipe.seen_bias or seen) and bundle.model.seen_bias is None:
        bundle.model.add_seen_bias(codec.item_offset, codec.n_items)
        bundle.config["seen_bias"] = True
    return bundle


def rating_readout_for(dataset: Dataset) -> Literal["expected", "decoded"]:
    """How a model trained on `dataset` reads ratings: its targets are `rating_word`s, "4" for integral
    ratings (read as the expected digit) and "3.5" otherwise (read as the greedy decoded number)."""
    ratings = dataset.interactions["rating"].drop_nulls()
    integral = ratings.len() == 0 or bool((ratings == ratings.round(0)).all())
    return "expected" if integral else "decoded"


def validation_examples(session: TrainingSession) -> dict[str, list[Example]]:
    limit = session.options.recipe.val_users
    return {
        task.name: sample_examples(task.examples(session.data, "validation"), limit, session.options.seed)
        for task in session.tasks
    }


def _recommender(session: TrainingSession) -> Recommender:
    from paprec_cli.model import Recommender

    return Recommender(session.bundle.model, session.bundle.codec, session.device)


def _save_best(session: TrainingSession, training_json: dict[str, Any] | None = None) -> None:
    """Rewrite the model folder atomically (with training.json at the end of the run)."""
    session.bundle.config.update(_config_extra(session))
    extra = {"training.json": training_json} if training_json is not None else None
    from paprec_cli.model import save_model

    save_model(session.bundle, session.model_dir, extra_json=extra)


def _config_extra(session: TrainingSession) -> dict[str, Any]:
    return {"trained_on": session.options.dataset, "tasks": list(session.options.tasks), "seed": session.options.seed,
            "negatives": session.options.negatives,
            **({"input_history": session.options.recipe.history}
               if session.options.recipe.history != PAPREC.history else {})}  # fmt: skip


def train_epochs(session: TrainingSession, say: Callable[[str], None]) -> str:
    """Run epochs until done, out of patience or out of time; returns why it stopped."""
    options, recipe, state = session.options, session.options.recipe, session.state
    # Planned steps from one fixed draw (epoch 0's; epoch sizes vary a little with the seeded shares), so that a
    # resumed run schedules its learning rate exactly as the uninterrupted run did.
    planned = recipe.epochs * max(1, -(-len(session.training.epoch(0)) // recipe.batch_size))
    trainer = Trainer(
        session.bundle.model, recipe, session.device, planned, options.time_budget, Clock(), dist=session.dist,
        anneal_to_budget=options.anneal_to_budget, item_tokens=_item_tokens(session),
        user_tokens=_user_tokens(session), unk_id=session.bundle.codec.unk_id, seed=options.seed,
    )
    trainer.step = state.step
    if state.epoch:
        run_state.restore(session.state_dir, session.bundle.model, trainer.optimizer, options,
                          best_expected=state.best_epoch > 0)
    session.validation = validation_examples(session)
    if not state.epoch:  # said once, where a run starts
        sizes = {name: len(examples) for name, examples in session.validation.items()}
        say("Validation each epoch: " + ", ".join(f"{name} {n:,} users" for name, n in sizes.items())
            + f" (--val-users {recipe.val_users:,}: at most that many, a seeded sample)")
    stopped = "epochs"
    while state.epoch < recipe.epochs:  # the budget is checked after each step: an epoch always starts
        epoch = state.epoch + 1
        pairs = session.training.epoch(epoch)
        encoded = encode_pairs(session.bundle.codec, pairs)
        n_batches = -(-len(encoded) // recipe.batch_size)
        with epoch_bar(session.out.err, epoch, recipe.epochs, n_batches) as bar:
            stats = trainer.run_epoch(
                iterate_batches(
                    session.bundle.codec, encoded, recipe.batch_size, options.seed + epoch, dist=session.dist
                ),
                bar,
            )
        improved = _end_epoch(session, trainer, epoch, stats, pairs, say)
        if stats.stopped_by_budget:
            stopped = "time_budget"
            break
        if not improved and epoch - state.best_epoch >= recipe.patience:
            stopped = "early_stopping"
            break
    return stopped


def _item_tokens(session: TrainingSession) -> tuple[int, int] | None:
    """[first, end) token ids of the items (atomic ids), for the unlikelihood term; None otherwise."""
    codec = session.bundle.codec
    return (codec.item_offset, codec.item_offset + codec.n_items) if codec.id_scheme == "atomic" else None


def _user_tokens(session: TrainingSession) -> tuple[int, int] | None:
    """[first, end) token ids of the users (atomic ids), for `Recipe.user_dropout`; None otherwise. A tokenizer
    without an unknown token cannot hide the id: refused rather than training without the dropout."""
    codec = session.bundle.codec
    if session.options.recipe.user_dropout > 0 and codec.unk_id < 0:
        raise PaprecError(f"-o user_dropout={session.options.recipe.user_dropout:g}: the tokenizer has no unknown "
                          f"token to put in place of the user id; train with paprec's own tokenizer (no "
                          f"--tokenizer) or -o user_dropout=0")
    return (codec.user_offset, codec.user_offset + codec.n_users) if codec.id_scheme == "atomic" else None


def _end_epoch(
    session: TrainingSession, trainer: Trainer, epoch: int, stats: EpochStats, pairs: list, say: Callable[[str], None]
) -> bool:
    """Validate, record, save best model and resume state; True when validation improved."""
    state = session.state
    val_start = time.perf_counter()
    metrics = evaluate_tasks(
        _recommender(session), session.tasks, session.validation, session.options.recipe.eval_batch_size
    )
    score = selection_score(metrics, session.tasks)
    improved = bool(np.isfinite(score)) and score > state.best_score
    state.epoch, state.step = epoch, trainer.step
    state.seconds += stats.seconds + (time.perf_counter() - val_start)
    state.history.append({
        "epoch": epoch, "loss": round(stats.loss, 5), "lr": trainer.lr_now(), "steps": stats.steps,
        "examples": stats.examples, "examples_per_s": round(stats.examples_per_s, 1),
        "tokens_per_s": round(stats.tokens / stats.seconds, 1) if stats.seconds else 0.0,
        "train_seconds": round(stats.seconds, 2), "validation_seconds": round(time.perf_counter() - val_start, 2),
        "partial": stats.stopped_by_budget, "families": session.training.family_counts(pairs),
        "validation": metrics, "score": score, "threads": torch.get_num_threads(),
    })  # fmt: skip
    if improved:
        state.best_epoch, state.best_score = epoch, score
    if session.is_main:  # every rank holds the same weights (DDP); rank 0 alone writes them
        # The resume state first: a failure (a full disk) between the two never leaves a model without it.
        run_state.save_state(session.state_dir, state, session.bundle.model, trainer.optimizer, improved)
        session.saved_epoch = epoch
        if improved:
            _save_best(session)
    primary = selection_metric(session.tasks, metrics)
    lower = sorted({t.selection_metric().name for t in session.tasks if t.name in metrics})
    selected = f"{primary[0]} {primary[1]}" if primary is not None else f"-mean({','.join(lower)})"
    mark = " (best)" if improved else ""
    say(f"epoch {epoch}: loss {stats.loss:.4f}, {stats.examples_per_s:,.0f} ex/s, validation {_headline(metrics)}; "
        f"selection: {selected} {score:.4f}{mark}")
    return improved


def _headline(metrics: dict[str, dict[str, float]]) -> str:
    parts = []
    for task, values in metrics.items():
        key = next((k for k in ("HR@10", "RMSE", *values) if k in values), "")  # a plugin's: its first metric
        if key:
            parts.append(f"{task} {key} {values[key]:.4f}")
    return ", ".join(parts)


def final_report(session: TrainingSession, stopped: str, wall: float) -> TrainingResult:
    """Best weights on the test split, baselines, sensitivity; writes training.json; returns the result."""
    state, options = session.state, session.options
    if state.best_epoch == 0:
        raise PaprecError("training stopped before one validation; raise --time-budget or --epochs")
    run_state.load_weights_file(session.bundle.model, session.state_dir / run_state.BEST, options)
    recommender = _recommender(session)
    batch = options.recipe.eval_batch_size
    test_examples = {task.name: task.examples(session.data, "test") for task in session.tasks}
    session.out.info("Scoring the best epoch on the test split, baselines and prompt sensitivity ...")
    with heartbeat(session.out.err, "scoring the best epoch"):
        test = evaluate_tasks(recommender, session.tasks, test_examples, batch)
        tasks_by_name = {t.name: t for t in session.tasks}
        baselines = baseline_results(session.data, list(tasks_by_name), "test", tasks=tasks_by_name)
        sensitivity = prompt_sensitivity(
            recommender, session.tasks, session.data, test_examples, batch, options.seed,
            limit=options.recipe.sensitivity_examples,
        )
    best = next(h for h in state.history if h["epoch"] == state.best_epoch)
    result: TrainingResult = {
        "model": str(session.model_dir),
        "name": options.name,
        "test": test,
        "validation": best["validation"],
        "baselines": baselines,
        "sensitivity": sensitivity,
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped": stopped,
        "seconds": round(wall, 2),
    }
    _save_best(session, training_record(session, result))
    state.finished = True
    run_state.mark_finished(session.state_dir, state)
    return result


def training_record(session: TrainingSession, result: TrainingResult) -> dict[str, Any]:
    """The content of training.json."""
    import transformers

    options, dataset = session.options, session.dataset
    return {
        "format": TRAINING_FORMAT,
        "format_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "name": options.name,
        "dataset": {
            "name": dataset.name, "fingerprint": dataset.fingerprint, "indexing": dataset.manifest.get("indexing"),
            "users": dataset.n_users, "items": dataset.n_items,
        },
        "protocol": session.data.protocol(),
        "tokenizer_sha256": session.bundle.codec.tokenizer_sha256,
        "tasks": list(options.tasks),
        "families": session.training.families(),
        "held_out_templates": {t.name: [x.id for x in t.templates if x.held_out] for t in session.tasks},
        "size": options.size,
        "ids": options.ids,
        "options": options.to_json(),
        "device": session.device,
        "versions": {
            "paprec": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
        },
        "history": session.state.history,
        "train_seconds": round(session.state.seconds, 2),
        **{k: v for k, v in result.items() if k not in ("model", "name")},
    }  # fmt: skip


def claim_and_lock(options: TrainOptions, home: Home, out: Output, resume: bool, dist: DistContext | None, *,
                   force: bool, explicit_name: bool) -> TrainOptions:
    """Rank 0 picks the name the run writes (see `setup.claim_model_name`) and locks that name alone for
    writing; every rank gets the same options. A default name that is taken (the quick start run twice) is
    neither written nor locked, so `eval`, `recommend` and `search` can read that model meanwhile, and a
    reader holding it does not stop the run."""
    from paprec_cli.checks import check_plain_name
    from paprec_cli.locks import acquire, lock_path, release
    from paprec_cli.training.setup import claim_model_name, name_taken

    check_plain_name(options.name, "--resume" if resume else "--name")  # before any lock file is made

    def lock(name: str) -> Path:
        path = lock_path(home.model_dir(name))
        acquire(path, f"model '{name}'")
        return path

    def claim() -> TrainOptions:
        default = not (resume or explicit_name or force)
        if default and name_taken(home, options.name):
            while True:  # lock the free name picked, then check that no run finished it in between
                claimed = claim_model_name(home, options, explicit=False, force=False)
                held = lock(claimed.name)
                if not name_taken(home, claimed.name):
                    break
                release(held)
        else:
            held = lock(options.name)
            if resume:
                return options
            claimed = claim_model_name(home, options, explicit=explicit_name, force=force)
            if claimed.name != options.name:  # taken while this run waited for the lock
                lock(claimed.name)
                release(held)
        if claimed.name != options.name:
            out.info(f"A model named '{options.name}' exists; training '{claimed.name}' (use --name to choose, "
                     f"--force to replace '{options.name}')")
        return claimed

    return dist.run_on_main(claim) if dist is not None else claim()


def nothing_to_do(state: run_state.RunState, options: TrainOptions) -> str | None:
    """Why a finished run that `--resume` with `options` would not train further (what to raise to go on):
    every planned epoch is done, or early stopping's patience is already spent; None when there is work (a
    run stopped by its time budget continues)."""
    if not state.finished:
        return None
    recipe = options.recipe
    if state.epoch >= recipe.epochs:
        return "raise --epochs to train on"
    if state.epoch - state.best_epoch >= recipe.patience:
        return (f"early stopping's patience ({recipe.patience} epochs without a better validation) is spent; "
                "raise --patience to train on")
    return None


def finished_result(home: Home, options: TrainOptions) -> TrainingResult | None:
    """The result of a finished run read back from its model's `training.json` (checked, as `models info`
    reads it) when `--resume` has nothing to do; None when there is work left (or no `training.json`, as
    after a crash before the final report, which then runs again). Reads only: a resume with nothing to do
    writes nothing, so the model, its fingerprint and `training.json` stay byte for byte as they were."""
    from paprec_cli.model.records import read_training

    state = run_state.read_state(run_state.state_dir(home, options.name), options.name)
    why = nothing_to_do(state, options)
    if why is None:
        return None
    record = read_training(home.model_dir(options.name))
    if not record:
        return None
    result: dict[str, Any] = {"model": str(home.model_dir(options.name)), "name": options.name, "unchanged": why}
    result.update({key: record[key] for key in TrainingResult.__annotations__ if key in record and key not in result})
    return cast(TrainingResult, result)


def train(
    options: TrainOptions,
    home: Home,
    out: Output,
    registry: Registry,
    device: str,
    resume: bool = False,
    dist: DistContext | None = None,
    *,
    force: bool = False,
    explicit_name: bool = True,
) -> TrainingResult:
    """Train (or resume) and return the `--json` result (an empty dict on torchrun ranks other than 0).

    A fresh run never replaces an existing model without `force` (see `setup.claim_model_name`); the
    model is locked for writing for the whole run, so a search reading it, or a second train, is refused.
    """
    from paprec_cli.training.setup import check_dataset_available

    wall = time.perf_counter()
    if not resume:  # a resumed run's dataset and tasks are checked against its state when the session opens
        check_dataset_available(home, options.dataset, registry)
        for name in options.tasks:  # an unknown task is refused before the run takes its model name
            registry.task(name, "--tasks")
    options = claim_and_lock(options, home, out, resume, dist, force=force, explicit_name=explicit_name)
    if device.startswith("cpu"):
        out.debug(f"CPU training with {cpu_threads(device)} thread(s) (OMP_NUM_THREADS sets it)")
    if resume:
        done = finished_result(home, options)
        if done is not None:
            out.info(f"Model '{options.name}' is finished ({done['epochs']} epochs, best {done['best_epoch']}); "
                     f"nothing to do, nothing written ({done['unchanged']})")
            return done if dist is None or dist.is_main else {}
    torch.manual_seed(options.seed)
    session = open_session(options, home, out, registry, device, resume, dist)
    say = out.info
    if resume:
        _same_threads(session, device, say)
    counts = session.training.family_counts(session.training.epoch(session.state.epoch + 1))
    say(f"Training {options.name}: {', '.join(f'{k} {v}' for k, v in counts.items())} pairs per epoch on {device}")
    try:
        stopped = train_epochs(session, say)
        if not session.is_main:  # the test report reads rank 0's files and needs no other rank
            return {}
        return final_report(session, stopped, time.perf_counter() - wall)
    except (KeyboardInterrupt, OSError) as exc:
        raise stopped_early(session, exc, resume) from None


def _same_threads(session: TrainingSession, device: str, say: Callable[[str], None]) -> None:
    """A resumed CPU run uses the intra-op thread count its last epoch recorded: the count changes the order of
    torch's sums, and `cpu_threads` picks it by timing, so a resume on a busier or quieter machine would
    otherwise train another model than the uninterrupted run. `OMP_NUM_THREADS` still wins when set."""
    import os

    recorded = session.state.history[-1].get("threads") if session.state.history else None
    if not device.startswith("cpu") or os.environ.get("OMP_NUM_THREADS") or not isinstance(recorded, int) \
            or isinstance(recorded, bool) or recorded < 1 or recorded == torch.get_num_threads():
        return
    torch.set_num_threads(recorded)
    say(f"CPU threads: {recorded}, as the run's earlier epochs used (the thread count changes the model's numerics)")


def stopped_early(session: TrainingSession, exc: KeyboardInterrupt | OSError, resume: bool) -> BaseException:
    """What a training run stopped by Ctrl-C / SIGTERM or an OS error (a full disk while saving) raises.

    With an epoch's resume state on disk: `Interrupted` (exit 130) or a `PaprecError` (exit 2) that says which
    epochs are saved and gives `paprec train --resume NAME`. Without one (stopped in the first epoch, or its
    checkpoint could not be written): the fresh run's state folder (its codec alone) is removed, so no
    half-started model is left and the same command starts afresh; the error is returned as it came (an
    `OSError` names the path and the fix at the error boundary)."""
    from paprec_cli.errors import os_error_message

    name, saved = session.options.name, session.saved_epoch
    if not session.is_main:
        return exc
    if saved:
        report = "" if session.state.finished else " (the test report is not written yet)"
        hint = f"epochs 1-{saved} are saved{report}; continue with: paprec train --resume {name}"
        if isinstance(exc, KeyboardInterrupt):
            return Interrupted(hint)
        problem = os_error_message(exc).split("; ")[0]
        return PaprecError(f"{problem}; epochs 1-{saved} are saved{report}: free some space (or fix the folder's "
                           f"permissions), then continue with: paprec train --resume {name}")
    if not resume:
        import shutil

        shutil.rmtree(session.state_dir, ignore_errors=True)
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted(f"no epoch was finished, nothing is saved; run the same command again to start {name} "
                           f"afresh")
    return exc
