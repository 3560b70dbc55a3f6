"""`paprec search --resume RUN` against the options given with it: which may change, which may not.

A resumed run keeps the configuration its `manifest.json` records, so that it ends with the same
`prompts.json` as an uninterrupted run. An option the user gives explicitly on the command line (or through
the environment) is compared with the recorded value: an equal value is fine; a different value is

- applied, said and recorded in the manifest, for the stopping rules `--max-rounds` and `--time-budget`
  (`BUDGETS`); a finished run that its budget stopped goes on where the larger one lets it (`schedule.reopen`),
  one that converged is refused;
- applied, said and recorded the same way for the closing evaluation's `--eval-users` (`CLOSING`: it changes
  `results`, never the prompts); `runner.start` refuses it on a finished run, whose results are written;
- an error for every other search option (`IDENTITY`): one line naming the option, the recorded value and
  the fix (drop the option, or start a new run).

`--device`, `--home`, `--json`, `-q` and `-v` are not search options and are taken from the command line.
docs/RUNS.md ("Resume") lists the same rules.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from paprec_cli.errors import PaprecError
from paprec_cli.jsontypes import JSONValue
from paprec_cli.paths import Home
from paprec_cli.search.config import SearchConfig
from paprec_cli.search.schedule import reopen
from paprec_cli.search.state import SearchState

#: Option values as the command passes them on (`SearchRequest` fields).
OptionValue = str | int | float | bool | Path | None

#: Stopping rules a resume may change: (request field, option).
BUDGETS: dict[str, str] = {"max_rounds": "--max-rounds", "time_budget": "--time-budget"}
#: Options of the closing evaluation alone (they change `results`, never the prompts): a resume may change them,
#: and the new value is recorded like a budget's, without reopening a finished search.
CLOSING: dict[str, str] = {"eval_users": "--eval-users"}
#: Options that fix what the run computes: (request field) -> (config field, option). `model`, `allow_list`
#: and `tokenizer` are compared as resolved paths.
IDENTITY: dict[str, tuple[str, str]] = {
    "task": ("task", "--task"), "dataset": ("dataset", "--dataset"), "model": ("model", "--model"),
    "tokenizer": ("tokenizer", "--tokenizer"), "separator": ("separator", "--separator"),
    "decoding": ("decoding", "--decoding"), "n_prefix": ("n_prefix", "--n-prefix"),
    "n_suffix": ("n_suffix", "--n-suffix"), "init": ("init", "--init"), "n_personal": ("n_personal", "--n-personal"),
    "protocol": ("protocol", "--protocol"), "top_k": ("top_k", "--top-k"), "val_users": ("val_users", "--val-users"),
    "grad_examples": ("grad_examples", "--grad-examples"), "selection": ("selection", "--selection"),
    "search_examples": ("search_examples", "--search-examples"), "holdout": ("holdout", "--holdout"),
    "personal_margin": ("personal_margin", "--personal-margin"),
    "personal_init": ("personal_init", "--personal-init"),
    "history_candidates": ("history_candidates", "--history-candidates"),
    "search_shared": ("search_shared", "--shared/--no-shared"), "shared_z": ("shared_z", "--shared-z"),
    "shared_screen": ("shared_screen", "--shared-screen"), "manual_template": ("manual_template", "--template"),
    "evaluator": ("evaluator", "--evaluator"), "batch_size": ("batch_size", "--batch-size"),
    "allow_list": ("allow_list", "--allow-list"), "seed": ("seed", "--seed"),
}  # fmt: skip
#: The command's parameter names that differ from the request's field names.
PARAMETER_FIELDS = {"template": "manual_template"}
#: Options that only make sense for a new run.
NEW_RUN_ONLY = {"run_dir": "--run-dir", "force": "--force"}


@dataclass(frozen=True)
class Resumed:
    """The configuration a resume runs with, the budget values changed (config field -> new value, to record
    in the manifest), one line per change to print, and the state to continue from."""

    config: SearchConfig
    changed: dict[str, int | float | None]
    notes: tuple[str, ...]
    #: The state to continue from: the saved one, or a finished run's put back to where the larger budget
    #: lets it go on (`schedule.reopen`; then `reopened`: the run folder must be written again).
    state: SearchState | None
    reopened: bool = False


def given_values(request: object, names: frozenset[str]) -> dict[str, OptionValue]:
    """{request field: value} (`request`: a `runner.SearchRequest`, typed `object` so that this module does not
    import the runner that imports it) of the command parameters `names` given explicitly (`template` is the request's
    `manual_template`); parameters that are not search options (`--device`, `--home`, ...) are left out."""
    known = {*IDENTITY, *BUDGETS, *CLOSING, *NEW_RUN_ONLY}
    fields = (PARAMETER_FIELDS.get(name, name) for name in names)
    return {field: getattr(request, field) for field in fields if field in known}


def resumed_config(recorded: SearchConfig, given: Mapping[str, OptionValue], state: SearchState | None,
                   home: Home, run: Path, default_template: str | None = None) -> Resumed:
    """Check the explicitly given options (`given`: request field -> value, from `given_values`) against the
    run's `recorded` configuration.

    `default_template` is the task's default template (the recorded `manual_template` None means it).
    Raises `PaprecError` (one line: the option, the recorded value, the fix) for a conflicting option, and for a
    budget change that a finished run cannot go on under (`schedule.reopen` says why); returns the configuration
    with the allowed budget changes applied and the state to continue from (a finished run's reopened copy)."""
    fields = dict(given)
    for name, option in NEW_RUN_ONLY.items():
        if name in fields and not _same_run_dir(name, fields[name], run):
            raise PaprecError(f"{option}: applies to a new run only; --resume continues {run} where it is; drop "
                              f"{option}")
    saved = recorded.to_json()
    for name, (key, option) in IDENTITY.items():
        if name not in fields:
            continue
        value, before = fields[name], saved.get(key)
        if before is None:  # a recorded None that stands for a value
            before = {"manual_template": default_template, "separator": ","}.get(key)
        if not _equal(key, value, before, home):
            if "/" in option:  # an on/off flag pair: name the flag given and the one the run used
                on, off = option.split("/")
                flag, used = (on, off) if value else (off, on)
                raise PaprecError(f"{flag}: the run being resumed ({run}) used {used}; drop {flag} to continue "
                                  "it, or start a new run with it")
            raise PaprecError(f"{option} {_show(value)}: the run being resumed ({run}) used {_show(before)}; drop "
                              f"{option} to continue it, or start a new run with it")
    changed: dict[str, int | float | None] = {}
    notes: list[str] = []
    for name, option in {**BUDGETS, **CLOSING}.items():
        if name not in fields or fields[name] == saved.get(name):
            continue
        value = fields[name]
        if not (value is None or isinstance(value, int | float)):
            raise PaprecError(f"{option} {_show(value)}: expected a number")
        changed[name] = value
        notes.append(f"{option} {_show(value)}: applied on resume (the run started with {_show(saved.get(name))})")
    if not changed:
        return Resumed(recorded, changed, (), state)
    config = SearchConfig.from_json({**saved, **changed})  # validated again
    budgets = [name for name in changed if name in BUDGETS]
    if state is not None and state.done and budgets:  # a finished run goes on only where a larger budget lets it
        state = copy.deepcopy(state)
        why = reopen(state, config.layout, config.search_shared, config.max_rounds, config.time_budget)
        options = " / ".join(BUDGETS[name] for name in budgets)
        if why is not None:
            raise PaprecError(f"{options}: the run being resumed ({run}) has finished and cannot go on: {why}; "
                              f"or drop {options} (its prompts stay as they are), or start a new run")
        notes.append(f"the finished run goes on from round {state.round} ({state.phase} phase); its prompts.json "
                     "is replaced when it ends")
        return Resumed(config, changed, tuple(notes), state, reopened=True)
    return Resumed(config, changed, tuple(notes), state)


def _equal(key: str, value: OptionValue, before: JSONValue, home: Home) -> bool:
    if key in ("model", "allow_list", "tokenizer") and value is not None and before is not None:
        return _resolved(key, value, home) == Path(str(before)).expanduser().resolve()
    if isinstance(value, float | int) and not isinstance(value, bool) and isinstance(before, float | int):
        return float(value) == float(before)
    return value == before


def _resolved(key: str, value: OptionValue, home: Home) -> Path:
    if key == "model":
        from paprec_cli.model.checkpoint import resolve_model_path

        return resolve_model_path(str(value), home).resolve()
    return Path(str(value)).expanduser().resolve()


def _same_run_dir(name: str, value: OptionValue, run: Path) -> bool:
    if name == "force":
        return not value
    return value is None or Path(str(value)).expanduser().resolve() == Path(run).resolve()


def _show(value: object) -> str:
    return "not set (the default)" if value is None else str(value)
