"""One search from options to `prompts.json`: load, sample, search (resumably), evaluate, write.

`prepare` loads everything a search needs; `search` runs the schedule and saves after every step;
`finalize` evaluates manual / shared / personalized prompts and writes the result. The command layer
adds only progress display and tables.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from paprec_cli import __version__
from paprec_cli.choices import Evaluator, Init, Selection
from paprec_cli.data import needs
from paprec_cli.data.splits import TaskData
from paprec_cli.data.store import Dataset, load_dataset
from paprec_cli.distributed import DistContext
from paprec_cli.errors import PaprecError
from paprec_cli.evaluate import Details, Results, evaluate_prompts, sample_users
from paprec_cli.export import Document
from paprec_cli.inputs import inputs_for
from paprec_cli.model.checkpoint import lock_model_for_reading
from paprec_cli.paths import Home
from paprec_cli.plugins import Registry
from paprec_cli.progress import NOTE
from paprec_cli.registry import model_fingerprint, split_negatives, split_seed, unfinished_warning
from paprec_cli.search.config import DEFAULT_PROTOCOL, PROTOCOLS, SearchConfig, batch_sizes, protocol_options
from paprec_cli.search.layout import PromptTokens
from paprec_cli.search.problem import ModelProblem
from paprec_cli.search.result import prompts_document
from paprec_cli.search.resume import given_values, resumed_config
from paprec_cli.search.rundir import RunDir, RunManifest
from paprec_cli.search.schedule import Schedule, ScheduleConfig, overall, paired_z, start_state
from paprec_cli.search.state import SearchState, tokens_to_json
from paprec_cli.search.surrogate import SURROGATE_BEAMS, make_scorer, per_user_means
from paprec_cli.search.vocab import candidate_vocabulary, initial_tokens, manual_start
from paprec_cli.specs import Example, TaskSpec

if TYPE_CHECKING:
    from paprec_cli.model.bundle import ModelBundle
    from paprec_cli.model.inference import Recommender

RUN_FORMAT = "paprec-run/1"
RNG_VAL_USERS, RNG_GRAD = 101, 102
#: Called after every step with the state and the step's trajectory record (an empty record: the search stopped
#: on its budget), and once before the first step with `{NOTE: text}` when the search has something to say
#: (the guarded history start's decision, `history_start_note`): a message, not a step.
Observer = Callable[[SearchState, dict[str, Any]], None]


@dataclass
class SearchSession:
    config: SearchConfig
    task: TaskSpec
    dataset: Dataset
    data: TaskData
    bundle: ModelBundle
    recommender: Recommender
    vocab: torch.Tensor
    problem: ModelProblem
    initial: PromptTokens
    model_fingerprint: str
    device: str
    dist: DistContext | None = None  # torchrun ranks; None = one process
    left_out: tuple[str, ...] = ()  # --init manual: template words that could not become triggers
    #: The ranking rule of the users' history words (`history_start`): "count", "liked", or None (none used).
    start_rule: str | None = None
    #: One line on a `--personal-init liked` that fell back to counting (a dataset without ratings), else None.
    start_note: str | None = None
    #: `--personal-init auto`'s choice between the liked and the counted words (`choose_history_rule`), or None
    #: (no choice made: another init, no ratings, or a resume that reads the run's recorded rule).
    start_choice: dict[str, float | str | None] | None = None


# -- sampling ----------------------------------------------------------------------------------------
def sample_validation(examples: list[Example], n_users: int | None, seed: int) -> list[Example]:
    """All validation examples of a seeded sample of `n_users` users (all users when None)."""
    users = sorted({ex.user for ex in examples})
    if n_users is not None and n_users < len(users):
        chosen = set(int(u) for u in np.random.default_rng([seed, RNG_VAL_USERS]).choice(users, n_users, replace=False))
        examples = [ex for ex in examples if ex.user in chosen]
    return examples


def sample_training(examples: list[Example], users: set[int], n: int, per_user: int,
                    seed: int) -> tuple[list[Example], list[Example]]:
    """(shared: seeded sample of `n` examples, personal: each user's last `per_user` examples)."""
    shared, personal, _ = sample_training_split(examples, users, n, per_user, seed, 0)
    return shared, personal


def sample_training_split(examples: list[Example], users: set[int], n: int, per_user: int, seed: int,
                          search: int) -> tuple[list[Example], list[Example], list[Example]]:
    """(shared gradient sample, personal gradient examples, extra search examples).

    Each user's last `search` training examples become search examples (scored with the validation ones);
    the `per_user` examples before them give the user's personal gradient, so a personal candidate is
    accepted on examples it was not chosen on. `search` = 0: the paper's sampling (last `per_user`)."""
    picks = np.random.default_rng([seed, RNG_GRAD]).choice(len(examples), min(n, len(examples)), replace=False)
    shared = [examples[int(i)] for i in sorted(picks)]
    mine: dict[int, list[Example]] = {}
    for ex in examples:
        if ex.user in users:
            mine.setdefault(ex.user, []).append(ex)
    personal: list[Example] = []
    extra: list[Example] = []
    for user in sorted(mine):
        own = mine[user]
        cut = max(len(own) - search, 0) if search > 0 else len(own)
        extra.extend(own[cut:])
        if per_user > 0:
            personal.extend(own[max(cut - per_user, 0):cut])
    return shared, personal, extra


# -- preparation -------------------------------------------------------------------------------------
def prepare(config: SearchConfig, registry: Registry, home: Home, device: str,
            note: Callable[[str], None] = lambda _: None, dist: DistContext | None = None,
            history_rule: str | None = None) -> SearchSession:
    """Load the dataset and model and build the search problem. `history_rule`: a resumed run's recorded
    rule (manifest `history_rule`), used instead of choosing again under `--personal-init auto`."""
    from paprec_cli.model import Recommender, load_model

    task = registry.task(config.task)
    if config.manual_template:
        task.manual(config.manual_template)
    dataset = load_dataset(home, config.dataset)
    lock_model_for_reading(config.model, home)
    bundle = load_model(config.model, home, dataset=dataset,
                        tokenizer=Path(config.tokenizer) if config.tokenizer else None)
    if bundle.folder is not None:
        config = replace(config, model=str(Path(bundle.folder).resolve()))
    bundle.model.requires_grad_(False)
    bundle.model.eval()
    if config.split_seed is None:
        config = replace(config, split_seed=split_seed(bundle))
    inputs = inputs_for(bundle.config, dataset.source_name, config.separator, config.seed)
    data = TaskData(dataset, config.split_seed or 0, split_negatives(bundle), inputs=inputs)
    reason = needs.unmet(task, dataset, data.negatives)
    if reason is not None:
        raise PaprecError(f"--task {task.name}: {reason}; search another task or retrain with -o negatives=N")
    recommender = Recommender(bundle.model, bundle.codec, device, decoding=config.decoding)
    vocab = candidate_vocabulary(bundle.codec, Path(config.allow_list) if config.allow_list else None)
    shared: tuple[int, ...] | None = None
    left_out: tuple[str, ...] = ()
    if config.init == "manual":
        start = manual_start(bundle.codec, vocab, task.manual(config.manual_template))
        config = replace(config, n_prefix=len(start.prefix), n_suffix=len(start.suffix))
        shared, left_out = start.prefix + start.suffix, start.skipped
    initial = initial_tokens(vocab, config.layout, config.seed, shared)
    note("building examples")
    validation = sample_validation(task.examples(data, "validation"), config.val_users, config.seed)
    if not validation:
        raise PaprecError(f"dataset '{dataset.name}' has no validation examples for task '{task.name}'")
    users = {ex.user for ex in validation}
    from paprec_cli.references import training_weights

    rated = config.personal_init in ("liked", "auto") and training_weights(data, task.kind) is not None
    rule, start_note = start_rule(config, dataset, rated)
    base = initial
    pool, initial = history_start(config, data, task.kind, users, bundle.codec, vocab, base, rule or "count")
    n_validation = len(validation)
    shared_grad, personal_grad, extra = sample_training_split(
        task.examples(data, "train"), users, config.grad_examples, config.personal_grad_examples, config.seed,
        config.search_examples)
    validation = validation + extra  # search examples: validation first (the paper's set when extra is empty)
    rows, grad_rows = batch_sizes(config.batch_size, device)
    scorer = make_scorer(recommender, task, config.selection, config.evaluator, rows)
    problem = ModelProblem(recommender, task, config.layout, vocab, top_k=config.top_k, scorer=scorer,
                           validation=validation, n_validation=n_validation, shared_grad=shared_grad,
                           personal_grad=personal_grad, personal_pool=pool,
                           batch_size=grad_rows, dist=dist)
    choice: dict[str, float | str | None] | None = None
    if config.personal_init == "auto" and rule == "liked":  # both rules can start: choose on validation
        counted_pool, counted = history_start(config, data, task.kind, users, bundle.codec, vocab, base, "count")
        if history_rule in ("liked", "count"):  # a resume: the run's recorded choice, not a new one
            rule = history_rule
        else:
            note("choosing between the liked and the most frequent history words")
            rule, choice = choose_history_rule(problem, initial, counted)
        if rule == "count":
            initial = counted
            problem.set_personal_pool(counted_pool)
    return SearchSession(config, task, dataset, data, bundle, recommender, vocab, problem, initial,
                   model_fingerprint(bundle), device, dist, left_out, rule, start_note, choice)


#: The `--personal-init` values that start each user at a word of their own history.
HISTORY_INITS = ("history", "liked", "auto")


def choose_history_rule(problem: ModelProblem, liked: PromptTokens,
                        counted: PromptTokens) -> tuple[str, dict[str, float | str | None]]:
    """`--personal-init auto`: ("liked" or "count", the record of the choice).

    The prompt with each user's liked word and the prompt with their most frequent word are scored on the
    search users' *validation* examples only (`ModelProblem.evaluate_validation`: the extra training examples
    were trained on, and there the model's memory favours whatever word it saw with them, the count's word of
    the `history_hint` pairs: issue #14, round ten); the higher mean wins, ties to liked. The record holds both
    means and the paired z of liked against count (None when undefined), printed and kept in `prompts.json`."""
    with_liked, with_count = problem.evaluate_validation(liked), problem.evaluate_validation(counted)
    ok = np.isfinite(with_liked) & np.isfinite(with_count)
    liked_mean = float(with_liked[ok].mean()) if ok.any() else 0.0
    count_mean = float(with_count[ok].mean()) if ok.any() else 0.0
    z = paired_z(with_liked[ok], with_count[ok]) if ok.sum() > 1 else float("nan")
    rule = "liked" if liked_mean >= count_mean else "count"
    return rule, {"init": "auto", "rule": rule, "liked": liked_mean, "count": count_mean,
                  "rule_z": float(z) if np.isfinite(z) else None}


def start_rule(config: SearchConfig, dataset: Dataset, rated: bool) -> tuple[str | None, str | None]:
    """(the ranking rule of the users' history words, a note when the start cannot be what was asked).

    `rated`: the training ratings can weigh a history (`references.training_weights` is not None).
    `--personal-init liked` ranks by the rating-weighted count (`paprec_cli.data.attributes`); when the training
    ratings cannot weigh (none, or a single value) it ranks by the count, as `history`, and the note says so.
    `auto` returns "liked" where they can (`prepare` then chooses between the two: `choose_history_rule`), else
    "count". None when the search uses no history words (no personal slot, `default` start with no history
    candidates, or a dataset without item attributes, which a history start also notes)."""
    if config.n_personal == 0 or (config.history_candidates == 0 and config.personal_init not in HISTORY_INITS):
        return None, None
    if not any(dataset.item_attributes):
        if config.personal_init not in HISTORY_INITS:
            return None, None
        return None, (f"--personal-init {config.personal_init}: dataset '{dataset.name}' has no item attributes, "
                      "so no user has a history word; every user starts at the default word")
    if config.personal_init == "auto":
        return ("liked" if rated else "count"), None
    if config.personal_init != "liked":
        return "count", None
    if not rated:
        return "count", (f"--personal-init liked: dataset '{dataset.name}' has no training ratings (or a single "
                         "rating value) to weigh by, so each user starts at their most frequent training-history "
                         "attribute word (as --personal-init history)")
    return "liked", None


def history_start(config: SearchConfig, data: TaskData, kind: str, users: set[int], codec: Any,
                  vocab: torch.Tensor, initial: PromptTokens,
                  rule: str = "count") -> tuple[dict[int, tuple[int, ...]], PromptTokens]:
    """(each user's extra personal candidates, the initial prompt) under --history-candidates/--personal-init.

    Both come from the user's training history only (`references.history_words` under `rule`: "count" is the
    `history_word` reference's ranking, "liked" the `liked_word` one; narrowed to the search's candidate
    vocabulary). `--personal-init history`/`liked` puts each user's first word in personal slot 0, for every
    user with a training history, searched or not (with --val-users the users outside the sample keep their
    history word rather than `personal_default`, so the prompts file personalizes everyone the reference
    does); users without a usable word keep `personal_default`. Candidates are built for the searched `users`
    only."""
    from paprec_cli.references import WordLookup, history_words, training_items

    starts = config.personal_init in HISTORY_INITS
    if config.n_personal == 0 or (config.history_candidates == 0 and not starts):
        return {}, initial
    allowed = {int(t) for t in vocab.tolist()}
    depth = max(config.history_candidates, 1 if starts else 0)
    who = set(users) | ({int(u) for u in training_items(data, kind)} if starts else set())
    words = history_words(data, kind, who, WordLookup(codec), depth, allowed, rule)
    pool = ({u: w[: config.history_candidates] for u, w in words.items() if u in users}
            if config.history_candidates else {})
    if starts:
        rest = tuple(initial.personal_default[1:])
        initial = replace(initial, personal={u: (w[0], *rest) for u, w in words.items()})
    return pool, initial


def library_versions() -> dict[str, str]:
    import polars
    import transformers

    return {"paprec": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__, "polars": polars.__version__}


def manifest(session: SearchSession) -> RunManifest:
    problem = session.problem
    return {
        "format": RUN_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": session.config.to_json(),
        "seed": session.config.seed,
        "device": session.device,
        "batch_sizes": dict(zip(("surrogate", "gradient"), batch_sizes(session.config.batch_size, session.device),
                                strict=True)),
        "libraries": library_versions(),
        "dataset": {"name": session.dataset.name, "fingerprint": session.dataset.fingerprint},
        "model": {"path": session.config.model, "fingerprint": session.model_fingerprint,
                  "id_scheme": session.bundle.codec.id_scheme, "size": session.bundle.config.get("size"),
                  "tokenizer_sha256": session.bundle.codec.tokenizer_sha256,
                  "expects_indexing": session.bundle.config.get("expects_indexing"),
                  # the fast surrogate's constrained beam (sub-word ids; docs/BEAM-GAP.md), None for atomic ids
                  "surrogate_beams": SURROGATE_BEAMS if session.bundle.codec.id_scheme == "subword" else None},
        "protocol": session.data.protocol(),
        "task": {"name": session.task.name, "kind": session.task.kind,
                 "manual_template": session.config.manual_template or session.task.default_template},
        "sizes": {"validation_users": len(problem.users), "validation_examples": len(problem.validation.examples),
                  "shared_grad_examples": len(problem.shared_grad.examples),
                  "personal_grad_examples": len(problem.personal_grad.examples),
                  "candidate_vocab": int(session.vocab.numel())},
        "initial": tokens_to_json(session.initial),
        # the rule the users' history words were ranked by ("count", "liked"; None: no history words used)
        "history_rule": session.start_rule,
    }


def recorded_history_rule(recorded: RunManifest, state: SearchState | None) -> str | None:
    """The history words' rule a resumed run started with (manifest `history_rule`), checked against the rule its
    saved state recorded (`state.history_start["rule"]`, `--personal-init auto`'s choice): a value that is not a
    rule, or two files that disagree, mean an edited or damaged run (PaprecError naming the file)."""
    rule = recorded.get("history_rule")
    if rule not in (None, "liked", "count"):
        raise PaprecError(f"--resume: the run's manifest.json has history_rule {rule!r} (expected liked, count or "
                          "null): edited or damaged; the run cannot be resumed; start a new run")
    saved = (state.history_start or {}).get("rule") if state is not None else None
    if saved is not None and saved != rule:
        raise PaprecError(f"--resume: the run's manifest.json says history_rule {rule!r} but its state.json says "
                          f"{saved!r}: edited or damaged; the run cannot be resumed; start a new run")
    return rule


def check_resumable(session: SearchSession, recorded: RunManifest) -> None:
    """Refuse to resume against a different dataset or model than the run started with (or a manifest
    without their fingerprints)."""
    for key in ("dataset", "model"):
        entry = recorded.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("fingerprint"), str):
            raise PaprecError(f"--resume: the run's manifest.json has no '{key}.fingerprint' (edited or damaged); "
                              "the run cannot be resumed; start a new run")
    if recorded["dataset"]["fingerprint"] != session.dataset.fingerprint:
        raise PaprecError(f"--resume: dataset '{session.dataset.name}' changed since the run started "
                          "(fingerprint differs); start a new run")
    if recorded["model"]["fingerprint"] != session.model_fingerprint:
        raise PaprecError(f"--resume: the model at {session.config.model} changed since the run started; "
                          "start a new run")


# -- from options to a started run ------------------------------------------------------------------
@dataclass(frozen=True)
class SearchRequest:
    """`paprec search`'s options as given (None: not given). With `resume`, the run's recorded config
    is used and the search options are ignored; else `task` and `dataset` are required."""

    task: str | None = None
    dataset: str | None = None
    model: str | None = None
    n_prefix: int | None = None
    n_suffix: int | None = None
    init: str | None = None  # None: the protocol's
    n_personal: int = 1
    top_k: int | None = None  # None: the protocol's
    val_users: int | None = None
    grad_examples: int = 256
    max_rounds: int | None = None  # None: the protocol's
    time_budget: float | None = None
    selection: str | None = None  # None: the protocol's
    evaluator: str = "fast"
    batch_size: int | None = None
    allow_list: Path | None = None
    run_dir: Path | None = None
    resume: str | None = None
    seed: int = 0
    tokenizer: str | None = None  # a HF/P5 checkpoint's T5 tokenizer (None: beside the weights)
    protocol: str = DEFAULT_PROTOCOL  # named option values (`search.config.PROTOCOLS`); given options win
    search_examples: int | None = None
    holdout: float | None = None
    personal_margin: float | None = None
    separator: str | None = None  # P5 input protocol's history separator (None: ",")
    decoding: str = "paprec"  # how the surrogate ranks: "paprec" or "p5"
    force: bool = False  # write the run into a --run-dir that holds other files
    personal_init: str | None = None  # None: the protocol's ("default", "history", "liked" or "auto")
    history_candidates: int | None = None  # None: the protocol's
    search_shared: bool = True  # False (--no-shared): keep the initial shared tokens
    shared_z: float | None = None  # None: the protocol's
    manual_template: str | None = None  # the manual prompt (a template id of the task); None: the task's default
    shared_screen: float | None = None  # None: the protocol's
    eval_users: int | None = None  # the closing evaluation's seeded user sample (None: all users)
    #: The command's parameters given explicitly (command line or environment): with `resume`, each is checked
    #: against the run's recorded value (`search.resume`); empty: none is checked.
    given: frozenset[str] = frozenset()


@dataclass
class Started:
    """A prepared session, its run directory, and the state to continue from (None: a fresh search)."""

    session: SearchSession
    run: RunDir
    state: SearchState | None
    resumed: bool


def config_of(request: SearchRequest, home: Home, registry: Registry,
              note: Callable[[str], None] = lambda _: None) -> SearchConfig:
    """The checked `SearchConfig` of a fresh search (defaults: prefix 0, suffix 5, the dataset's model).

    Explicit options win over the protocol's: `--n-prefix`/`--n-suffix` with a protocol that starts from the
    manual prompt start from random words instead (said through `note`); a protocol's `rank` selection on a
    rating task becomes the task's surrogate (a rating has no rank). An explicit `--init manual` with trigger
    counts, or `--selection rank` on a rating task, is an error."""
    from paprec_cli.registry import default_model

    if request.task is None or request.dataset is None:
        raise PaprecError("--task and --dataset are required (or --resume RUN to continue a run)")
    registry.task(request.task)
    chosen = protocol_options(request.protocol, init=request.init, max_rounds=request.max_rounds,
                              selection=request.selection, top_k=request.top_k,
                              search_examples=request.search_examples, holdout=request.holdout,
                              personal_margin=request.personal_margin, personal_init=request.personal_init,
                              history_candidates=request.history_candidates, shared_z=request.shared_z,
                              shared_screen=request.shared_screen)
    layout_given = request.n_prefix is not None or request.n_suffix is not None
    if chosen["init"] == "manual" and layout_given:
        if request.init is not None:
            raise PaprecError("--n-prefix/--n-suffix: not with --init manual (the template's words set them); "
                              "drop them, or use --init random")
        chosen["init"] = "random"  # explicit trigger counts win over the protocol's manual start
    chosen["selection"] = Selection.parse(chosen["selection"], "--selection")
    task = registry.task(request.task)
    kind = task.kind
    if request.manual_template is not None:
        task.manual(request.manual_template)  # an unknown id: one line naming --template and the known ids
    if chosen["selection"] is Selection.RANK and kind != "ranking" and request.selection is None:
        chosen["selection"] = Selection.SURROGATE  # the protocol's rank signal needs a ranking; ratings: the task's
    init = Init.parse(chosen.pop("init"), "--init")  # option values before the model lookup (its error is not theirs)
    evaluator = Evaluator.parse(request.evaluator, "--evaluator")
    config = SearchConfig(
        task=request.task, dataset=request.dataset, model=request.model or default_model(home, request.dataset),
        n_prefix=0 if request.n_prefix is None else request.n_prefix,
        n_suffix=5 if request.n_suffix is None else request.n_suffix,
        init=init, n_personal=request.n_personal,
        val_users=request.val_users,
        grad_examples=request.grad_examples, time_budget=request.time_budget, search_shared=request.search_shared,
        **chosen,
        evaluator=evaluator, batch_size=request.batch_size, seed=request.seed,
        allow_list=str(request.allow_list.resolve()) if request.allow_list else None,
        tokenizer=request.tokenizer, separator=request.separator, decoding=request.decoding,
        manual_template=request.manual_template, eval_users=request.eval_users,
    )
    if config.n_personal == 0:  # no personal slot: the personal start and candidates have nothing to fill
        unused = [option for option, value in (("--personal-init", request.personal_init),
                                               ("--history-candidates", request.history_candidates),
                                               ("--personal-margin", request.personal_margin))
                  if value is not None]
        if unused:
            note(f"{' and '.join(unused)}: not used with --n-personal 0 (no personal slot to start or fill)")
    if layout_given and request.init is None and PROTOCOLS[request.protocol]["init"] == "manual":
        note(f"--n-prefix/--n-suffix given: starting from random words (--init random) instead of the manual "
             f"prompt that protocol '{request.protocol}' starts from")
    return config


def start(request: SearchRequest, home: Home, registry: Registry, dist: DistContext,
          note: Callable[[str], None] = lambda _: None,
          info: Callable[[str], None] = lambda _: None) -> Started:
    """Prepare a fresh search (creating its run directory on rank 0) or reopen one to resume (checking
    that its dataset and model have not changed)."""
    from paprec_cli.runs import resume_path
    from paprec_cli.search.rundir import new_run_path

    if request.resume is not None:
        name = request.resume
        run, recorded, state = dist.run_on_main(lambda: RunDir.open_for_resume(resume_path(home, name)))
        saved = SearchConfig.from_json(recorded["config"])
        resumed = resumed_config(saved, given_values(request, request.given), state, home, run.path,
                                 registry.task(saved.task).default_template)
        session = prepare(resumed.config, registry, home, dist.device, note=note, dist=dist,
                          history_rule=recorded_history_rule(recorded, state))
        check_resumable(session, recorded)
        if run.read_only and not resumed.reopened and "eval_users" in resumed.changed:
            raise PaprecError(f"--eval-users: the run {run.path} has finished and its prompts.json is written; score "
                              f"a sample of its users with paprec eval {run.path} --users {resumed.config.eval_users}")
        if (unfinished := unfinished_warning(session.config.model)) is not None:
            info(unfinished)
        if resumed.changed:  # every check passed: record the new budget (and a finished run's new start)
            dist.run_on_main(lambda: run.extend(resumed.changed, resumed.state if resumed.reopened else None))
        for line in resumed.notes:
            info(line)
        return Started(session, run, resumed.state, resumed=True)
    notes: list[str] = []  # said once the search is prepared, so that an error stays the only line
    config = config_of(request, home, registry, note=notes.append)
    if request.model is None:
        notes.append(f"model: {config.model} (the dataset's default; --model NAME chooses another)")
    if request.run_dir is not None:
        RunDir.check_new(request.run_dir, request.force, home)  # before any work: nothing is written on a refusal
    session = prepare(config, registry, home, dist.device, note=note, dist=dist)
    if (unfinished := unfinished_warning(session.config.model)) is not None:
        notes.append(unfinished)
    for line in notes:
        info(line)
    folder = request.run_dir or new_run_path(home, session.config.task, session.config.dataset)
    run = dist.run_on_main(lambda: RunDir.create(folder, manifest(session), request.force))
    return Started(session, run, None, resumed=False)


# -- search and result -------------------------------------------------------------------------------
def search(session: SearchSession, run: RunDir | None, state: SearchState | None, observer: Observer | None = None,
           clock: Callable[[], float] = time.monotonic) -> SearchState:
    """Run (or continue) the schedule, saving the state after every step (`run` None: a torchrun rank
    other than 0, which computes its share but writes nothing). `observer` sees each step, and the guarded
    history start's decision as a `{NOTE: line}` record before the first step (`Observer`)."""
    config = session.config
    if state is None:
        state = check_history_start(session, start_state(session.problem, session.initial))
        if run is not None:
            run.save_state(state)
    if observer is not None and (start_note := history_start_note(state)) is not None:
        observer(state, {NOTE: start_note})  # the decision, before the rounds (again on a resume)

    def on_step(current: SearchState, record: dict[str, Any]) -> None:
        if run is not None:
            run.record(current, record)
        if observer is not None:
            observer(current, record)

    if session.dist is not None:  # one clock for all ranks, so --time-budget stops them at the same step
        clock = session.dist.main_clock(clock)
    schedule = Schedule(session.problem, ScheduleConfig(config.seed, config.max_rounds, config.time_budget,
                                                        holdout=config.holdout, personal_margin=config.personal_margin,
                                                        search_shared=config.search_shared,
                                                        shared_z=config.shared_z,
                                                        shared_screen=config.shared_screen))
    return schedule.run(state, on_step, clock)


def check_history_start(session: SearchSession, state: SearchState) -> SearchState:
    """The start state, without the users' history words when the search users show they hurt
    (`--personal-init history`/`liked`/`auto` with `--shared-z Z` > 0, as `guarded`): the start with each user's
    history word in personal slot 0 is compared with the same prompt with the default word, user by user, on
    the search users' *validation* examples (`ModelProblem.evaluate_validation`; the extra training examples
    were trained on and favour whatever the model saw with them); if the paired z of the history start's gain
    is below -Z, every user starts at the default word instead. The words are fixed before the search looks
    (the `history_word` / `liked_word` reference; tiny models are trained to read history words), so they stay
    unless the evidence is against them, the mirror of a shared flip's test.

    Why (issue #14): on ML-100K direct the history genre appended to P5's template 5-7 cost 0.025 of the search's
    signal (z -6.4) and 0.022 HR@10 on test (-0.0223 [-0.0382, -0.0074]); the search started below the manual
    prompt and could not climb back. Requiring the words to *win* by z > Z instead dropped them on the synthetic
    quick start's seed 1 (z 1.19), where `history_word` is +0.020 HR@10 over manual on test. The decision is
    `state.history_start` (with `--personal-init auto`'s choice, `SearchSession.start_choice`, when one was
    made; an unguarded search records only that choice)."""
    config = session.config
    choice = dict(session.start_choice or {})
    if config.personal_init not in HISTORY_INITS or not state.tokens.personal:
        return state
    if config.shared_z <= 0:
        if choice:
            state.history_start = choice
        return state
    problem = session.problem
    without_words = PromptTokens(state.tokens.shared, state.tokens.personal_default)
    with_values, without_values = problem.evaluate_validation(state.tokens), problem.evaluate_validation(without_words)
    ok = np.isfinite(with_values) & np.isfinite(without_values)
    z = paired_z(with_values[ok], without_values[ok]) if ok.sum() > 1 else float("nan")
    kept = not (np.isfinite(z) and z < -config.shared_z)
    chosen = state if kept else start_state(problem, without_words)
    chosen.history_start = {"kept": kept, "paired_z": float(z) if np.isfinite(z) else None,
                            "history": float(with_values[ok].mean()) if ok.any() else None,
                            "default": float(without_values[ok].mean()) if ok.any() else None,
                            "init": config.personal_init, "examples": "validation", **choice}
    return chosen


def history_start_note(state: SearchState) -> str | None:
    """One line on the history start (`check_history_start`: `auto`'s choice, the guard's decision), or None when
    neither was made."""
    check = state.history_start
    if not check:
        return None

    def z_text(value: object) -> str:
        return "n/a" if not isinstance(value, (int, float)) else f"{value:.2f}"

    parts = []
    if "rule" in check:
        chosen = "liked (rating-weighted)" if check["rule"] == "liked" else "most frequent"
        rule_z = z_text(check.get("rule_z"))
        parts.append(f"the {chosen} history words chosen (validation {check.get('liked'):.4f} with the liked words "
                     f"against {check.get('count'):.4f} with the most frequent, paired z {rule_z})")
    if "kept" in check:
        verdict = "kept" if check.get("kept") else "not kept; every user starts at the default word"
        history, default = check.get("history"), check.get("default")
        on = str(check.get("examples", "signal"))  # runs before this release compared on the combined signal
        values = (f"{on} {history:.4f} against {default:.4f} with the default word"
                  if isinstance(history, float) and isinstance(default, float) else "no validation values")
        parts.append(f"the users' history words {verdict} ({values}, paired z {z_text(check.get('paired_z'))})")
    return f"--personal-init {check.get('init', 'history')}: " + "; ".join(parts)


def surrogates(session: SearchSession, state: SearchState) -> dict[str, float]:
    """The search's surrogate (on its validation sample) of the initial, final and manual prompts."""
    from paprec_cli.evaluate import manual_prompts

    problem = session.problem
    shared_only = PromptTokens(state.tokens.shared, state.tokens.personal_default)
    examples = problem.validation.examples
    manual = problem.scorer(manual_prompts(problem.codec, session.task, examples, session.config.manual_template),
                            examples)
    manual_users = per_user_means(manual, problem.validation.user_pos, len(problem.users))
    return {
        "initial": state.initial_value,
        "shared": overall(problem.evaluate(shared_only), problem.weights),
        "personalized": overall(state.user_values, problem.weights),
        "manual": overall(manual_users, problem.weights),
    }


def paper_surrogates(session: SearchSession, state: SearchState) -> dict[str, float]:
    """The paper's surrogate (the task's NDCG@5 + HR@5, fast scorer) of the manual, shared and personalized
    prompts on the search users' validation examples only, whatever signal the search accepted on."""
    from paprec_cli.evaluate import manual_prompts
    from paprec_cli.search.surrogate import FastScorer

    problem = session.problem
    rows = batch_sizes(session.config.batch_size, session.device)[0]
    scorer = FastScorer(session.recommender, session.task, rows)
    val = problem.validation_only()
    n_users = len(problem.users)

    def value(tokens: PromptTokens) -> float:
        scores = scorer(val.rows(val.trigger_matrix(tokens)[None]), val.examples)
        users = per_user_means(scores, val.user_pos, n_users)
        return overall(users, np.bincount(val.user_pos, minlength=n_users).astype(np.float64))

    manual = scorer(manual_prompts(problem.codec, session.task, val.examples, session.config.manual_template),
                    val.examples)
    manual_users = per_user_means(manual, val.user_pos, n_users)
    return {"manual": overall(manual_users, np.bincount(val.user_pos, minlength=n_users).astype(np.float64)),
            "shared": value(PromptTokens(state.tokens.shared, state.tokens.personal_default)),
            "personalized": value(state.tokens)}


def recorded_result(run: RunDir) -> Document | None:
    """A finished run's `prompts.json` (a resume of it reports the recorded results and never re-scores them,
    so what it prints is what the file says); None for a run that is still to finish."""
    return run.prompts() if run.read_only else None


def finalize(session: SearchSession, run: RunDir | None, state: SearchState) -> Document:
    """Evaluate the three prompt variants on validation and test and write `prompts.json`.

    With `config.eval_users` (`paprec search --eval-users N`) the evaluation scores a seeded sample of N users
    with a test example (`evaluate.sample_users`, the search's seed), recorded as `search.evaluation`; it
    changes only `results`, never the prompts."""
    return finalize_with_details(session, run, state)[0]


def finalize_with_details(session: SearchSession, run: RunDir | None,
                          state: SearchState) -> tuple[Document, Details]:
    """`finalize`, also returning the per-example values ({variant: {part: PerExample}}) behind the results,
    for confidence intervals (`paprec sweep`)."""
    config = session.config
    draft = _document(session, state, surrogate={}, results={})
    rows = batch_sizes(config.batch_size, session.device)[0]  # inference only: the surrogate's batch
    sample = sample_users(session.task, session.data, config.eval_users, config.seed)
    results, details = evaluate_prompts(session.bundle, session.task, session.data, draft,  # sharded (torchrun)
                                        batch_size=rows, recommender=session.recommender, dist=session.dist,
                                        sample=sample)
    surrogate = surrogates(session, state)
    if config.protocol != "paper":  # the paper's surrogate on the validation examples alone, for comparison
        surrogate.update({f"paper_{k}": v for k, v in paper_surrogates(session, state).items()})
    doc = _document(session, state, surrogate=surrogate, results=results,
                    evaluation=sample.report() if sample is not None else None)
    if run is not None:
        run.write_prompts(doc)
    return doc, details


#: Why `--init manual` leaves a template word out (`vocab.manual_start`; `codec.candidate_vocab`).
LEFT_OUT_WHY = ("a trigger is one whole-word token of 2+ letters: punctuation, digits, one-letter words and words "
                "the model's vocabulary splits cannot be one")


def below_manual(doc: Document, left_out: Sequence[str]) -> str | None:
    """A one-line warning when the searched personalized prompt scores below the manual prompt on the search's
    own signal and validation sample (`doc["surrogate"]`), else None. Seen on ML-100K direct (issue #14): the
    manual start left out template words that are not single tokens of the model's vocabulary, so the search
    began below the manual prompt and did not climb back."""
    values = doc.get("surrogate") or {}
    best, manual = values.get("personalized"), values.get("manual")
    if not isinstance(best, float) or not isinstance(manual, float) or best >= manual:
        return None
    why = (f"; its start left out the template words {' '.join(left_out)} ({LEFT_OUT_WHY})" if left_out else "")
    return (f"Warning: the searched prompt scores below the manual prompt on the search's validation sample "
            f"({best:.4f} < {manual:.4f}){why}; prefer the manual prompt unless `paprec eval` shows otherwise")


def _document(session: SearchSession, state: SearchState, surrogate: dict[str, float],
              results: Results, evaluation: dict[str, int] | None = None) -> Document:
    users = session.dataset.users
    raw = {}
    if state.tokens.personal:
        wanted = set(state.tokens.personal)
        for idx, user in zip(users["user_idx"].to_list(), users["user"].to_list(), strict=True):
            if idx in wanted:
                raw[int(idx)] = str(user)
    return prompts_document(
        codec=session.bundle.codec, layout=session.config.layout, task=session.task.name,
        dataset=session.dataset.name, dataset_fingerprint=session.dataset.fingerprint, model=session.config.model,
        model_fingerprint=session.model_fingerprint,
        manual_template=session.config.manual_template or session.task.default_template,
        initial=state.initial, final=state.tokens, raw_users=raw, surrogate=surrogate, results=results,
        search={"rounds": state.round, "steps": state.steps, "stop_reason": state.stop_reason,
                "seconds": round(state.seconds, 3), "seed": session.config.seed,
                "accepted_shared": state.accepted_shared, "personal_changes": state.personal_changes,
                **({"history_start": state.history_start} if state.history_start is not None else {}),
                **({"evaluation": evaluation} if evaluation is not None else {})},
    )
