"""The alternating schedule of PAP-REC: shared rounds and personalized rounds, one step at a time.

A round is a shared phase then a personal phase. The shared phase tries shared slots in a seeded
random order (derived from (seed, round), so resume is exact) and ends at the first slot whose best
candidate strictly improves the validation surrogate, or when every slot failed. The personal phase
works on one personal slot (cycled by round): every validation user keeps their best candidate if it
strictly improves their own surrogate. The search stops when a shared phase accepted nothing and the
last personal phase changed nobody, at `max_rounds`, or when the time budget is spent.

Two options change acceptance (both off in the paper protocol): `holdout` holds out a seeded share of the
users; a shared candidate is then chosen on the others and kept only if the held-out users' mean improves
too. `personal_margin` requires a personal candidate to beat the user's current value by more than it.
`shared_z` (a paired one-sided z-test) keeps a shared flip only if the mean per-user improvement on the
users that confirm it (the held-out users, else all) exceeds `shared_z` standard errors: a flip must win
on more than the noise of a few hundred users, not only on their mean. `shared_screen` (early elimination,
issue #14) first scores a slot's candidates on a seeded share of the choosing users (fixed per round); only
candidates that improve that sample's mean are then scored on the remaining users, so a slot where nothing
helps costs that share of a full pass. A candidate screened out could not have been accepted only if its
gain on the sample was a fair guess of its gain on all; the record keeps each candidate's sample gain.

The schedule only sees a `SearchProblem` (candidates and surrogate values), so it can be tested with
fakes whose improvements a test controls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from paprec_cli.search.layout import Layout, PromptTokens
from paprec_cli.search.state import SearchState

RNG_SHARED_ORDER = 1
RNG_HOLDOUT = 2
RNG_SCREEN = 3


class SearchProblem(Protocol):
    """Candidate proposals and surrogate values over a fixed set of validation users."""

    @property
    def layout(self) -> Layout: ...

    @property
    def users(self) -> Sequence[int]:
        """Validation users, in the order of `SearchState.user_values`."""

    @property
    def weights(self) -> np.ndarray:
        """Validation examples per user (weights of the overall surrogate)."""

    def evaluate(self, tokens: PromptTokens) -> np.ndarray:
        """[U] per-user surrogate of the prompt."""

    def shared_candidates(self, tokens: PromptTokens, slot: int) -> list[int]:
        """Up to k token ids for a shared slot, best first, never the current one."""

    def evaluate_shared(self, tokens: PromptTokens, slot: int, candidates: Sequence[int],
                        users: np.ndarray | None = None) -> np.ndarray:
        """[C, U] per-user surrogate with `candidates[c]` in shared slot `slot`; with `users` (a [U] bool mask)
        only those users' columns are computed (the others are NaN). Called with `users` only when
        `ScheduleConfig.shared_screen` is on."""

    def personal_candidates(self, tokens: PromptTokens, slot: int) -> np.ndarray:
        """[U, k] token ids per user for personal slot `slot`, best first."""

    def evaluate_personal(self, tokens: PromptTokens, slot: int, candidates: np.ndarray) -> np.ndarray:
        """[U, k] each user's surrogate with their own candidate j in personal slot `slot`."""

    def token_text(self, token: int) -> str: ...


@dataclass(frozen=True)
class ScheduleConfig:
    seed: int = 0
    max_rounds: int = 20
    time_budget: float | None = None  # seconds of search (accumulated over resumes)
    #: share of users held out from choosing a shared candidate; the choice must improve them too (0: off)
    holdout: float = 0.0
    #: a personal candidate must beat the user's current value by more than this (0: strict improvement)
    personal_margin: float = 0.0
    #: False: the shared tokens stay as they start (only personal tokens are searched)
    search_shared: bool = True
    #: a shared flip must improve the confirming users by more than this many standard errors (0: off)
    shared_z: float = 0.0
    #: share of the choosing users that screens a slot's candidates before the rest are scored (0: off)
    shared_screen: float = 0.0


def overall(values: Sequence[float] | np.ndarray, weights: np.ndarray) -> float:
    """The surrogate of the whole validation set: per-user means weighted by example counts. Users of weight 0
    do not count at all (a user whose output is not a number scores -inf; times 0 that was NaN, with a numpy
    warning, and made the whole value NaN)."""
    values = np.asarray(values, dtype=np.float64)
    counted = np.asarray(weights, dtype=np.float64) > 0
    if not counted.any():
        return float("nan")
    return float((values[counted] * weights[counted]).sum() / weights[counted].sum())


def shared_order(seed: int, round_: int, n_shared: int) -> list[int]:
    return [int(s) for s in np.random.default_rng([seed, round_, RNG_SHARED_ORDER]).permutation(n_shared)]


def holdout_mask(seed: int, n_users: int, share: float) -> np.ndarray:
    """[U] bool, True for the seeded `share` of users held out from choosing shared candidates."""
    n_held = int(round(share * n_users))
    if share <= 0 or n_held == 0 or n_held >= n_users:
        return np.zeros(n_users, dtype=bool)
    order = np.random.default_rng([seed, RNG_HOLDOUT]).permutation(n_users)
    mask = np.zeros(n_users, dtype=bool)
    mask[order[:n_held]] = True
    return mask


def screen_mask(seed: int, round_: int, choosing: np.ndarray, share: float) -> np.ndarray:
    """[U] bool: a seeded `share` of the `choosing` users (at least 2 of them), the same for every slot of a
    round; all False when screening is off or the sample would be all of them."""
    pool = np.flatnonzero(choosing)
    n = max(2, int(round(share * len(pool))))
    mask = np.zeros(len(choosing), dtype=bool)
    if share <= 0 or n >= len(pool):
        return mask
    mask[np.random.default_rng([seed, round_, RNG_SCREEN]).permutation(pool)[:n]] = True
    return mask


def paired_z(candidate: np.ndarray, current: np.ndarray) -> float:
    """The paired z statistic of per-user improvements: mean(candidate - current) / its standard error.

    +inf when every user improves by the same positive amount, 0 for fewer than 2 users or no change, NaN
    (never confirmed) when a user's value is not finite under either prompt (a rating output that is not a
    number scores -inf), computed without numpy's "invalid value" warnings."""
    with np.errstate(invalid="ignore"):
        diff = np.asarray(candidate, dtype=np.float64) - np.asarray(current, dtype=np.float64)
    if len(diff) < 2:
        return 0.0
    if not np.isfinite(diff).all():
        return float("nan")
    se = float(diff.std(ddof=1)) / float(np.sqrt(len(diff)))
    mean = float(diff.mean())
    if se == 0.0:
        return float("inf") if mean > 0 else 0.0
    return mean / se


def start_state(problem: SearchProblem, tokens: PromptTokens) -> SearchState:
    """Evaluate the initial prompt; the state every search begins from."""
    values = [float(v) for v in problem.evaluate(tokens)]
    value = overall(values, problem.weights)
    state = SearchState(tokens=tokens, initial=tokens, user_values=values, initial_value=value, history=[])
    if problem.layout.n_triggers == 0:
        state.phase, state.stop_reason = "done", "nothing-to-search"
    elif problem.layout.n_shared == 0:
        state.phase = "personal"
    return state


Record = dict[str, Any]


class Schedule:
    """Advances a `SearchState` one step at a time; `run` loops until the search stops."""

    def __init__(self, problem: SearchProblem, config: ScheduleConfig) -> None:
        self.problem = problem
        self.config = config

    @property
    def best(self) -> Callable[[SearchState], float]:
        return lambda state: overall(state.user_values, self.problem.weights)

    def run(self, state: SearchState, on_step: Callable[[SearchState, Record], None],
            clock: Callable[[], float] = time.monotonic) -> SearchState:
        """Step until done; `on_step(state, record)` runs after each step (it saves the state)."""
        if not self.config.search_shared and state.phase == "shared":  # only personal tokens are searched
            state.phase = "personal" if self.problem.layout.n_personal > 0 else "done"
            state.stop_reason = state.stop_reason if state.phase != "done" else "nothing-to-search"
        began, base = clock(), state.seconds
        while not state.done:
            if self.config.time_budget is not None and state.seconds >= self.config.time_budget:
                self._stop(state, "time-budget")
                on_step(state, {})
                break
            started = clock()
            record = self.step(state)
            now = clock()
            record["seconds"] = now - started
            state.seconds = base + (now - began)
            state.steps += 1
            state.history.append(self.best(state))
            on_step(state, record)
        return state

    def step(self, state: SearchState) -> Record:
        if state.phase == "shared":
            return self._shared_step(state)
        if state.phase == "personal":
            return self._personal_step(state)
        raise RuntimeError("the search is already done")

    # -- shared ---------------------------------------------------------------------------------
    def _shared_step(self, state: SearchState) -> Record:
        problem, layout = self.problem, self.problem.layout
        slot = shared_order(self.config.seed, state.round, layout.n_shared)[state.position_index]
        baseline = self.best(state)
        candidates = problem.shared_candidates(state.tokens, slot)
        held = holdout_mask(self.config.seed, len(problem.users), self.config.holdout)
        screen = screen_mask(self.config.seed, state.round, ~held, self.config.shared_screen)
        screen_gains: list[float] | None = None
        tried = list(candidates)
        if candidates and screen.any():
            candidates, values, screen_gains = self._screened(state, slot, candidates, screen)
        else:
            values = problem.evaluate_shared(state.tokens, slot, candidates) if candidates else np.zeros((0, 0))
        means = [overall(row, problem.weights) for row in values]
        if held.any():  # choose on the other users; accept only if the held-out users improve as well
            current = np.asarray(state.user_values, dtype=np.float64)
            chosen_w, held_w = problem.weights * ~held, problem.weights * held
            chosen = [overall(row, chosen_w) for row in values]
            pick = int(np.argmax(chosen)) if chosen else -1
            accepted = (pick >= 0 and chosen[pick] > overall(current, chosen_w)
                        and overall(values[pick], held_w) > overall(current, held_w))
        else:
            pick = int(np.argmax(means)) if means else -1
            accepted = pick >= 0 and means[pick] > baseline
        z = None
        if pick >= 0 and self.config.shared_z > 0:
            confirm = held if held.any() else np.ones(len(problem.users), dtype=bool)
            z = paired_z(np.asarray(values[pick])[confirm], np.asarray(state.user_values, dtype=np.float64)[confirm])
            accepted = accepted and z > self.config.shared_z
        record: Record = {
            "round": state.round, "kind": "shared", "position": layout.slot_name(slot), "slot": slot,
            "current": self._token(state.tokens.shared[slot]),
            "candidates": [dict(self._token(t), surrogate=m) for t, m in zip(candidates, means, strict=True)],
            "baseline": baseline, "accepted": self._token(candidates[pick]) if accepted else None,
        }
        if screen_gains is not None:
            record["screened"] = {"users": int(screen.sum()),
                                  "candidates": [dict(self._token(t), gain=g) for t, g in zip(tried, screen_gains,
                                                                                               strict=True)]}
        if z is not None:
            record["paired_z"] = z if np.isfinite(z) else None
        if accepted:
            state.tokens = state.tokens.with_shared(slot, int(candidates[pick]))
            state.user_values = [float(v) for v in values[pick]]
            state.accepted_shared += 1
            self._end_shared(state, accepted=True)
        elif state.position_index + 1 >= layout.n_shared:
            self._end_shared(state, accepted=False)
        else:
            state.position_index += 1
        record["surrogate"] = self.best(state)
        return record

    def _screened(self, state: SearchState, slot: int, candidates: Sequence[int],
                  screen: np.ndarray) -> tuple[list[int], np.ndarray, list[float]]:
        """Early elimination: (the candidates whose weighted mean gain on the `screen` users is > 0, their
        [C', U] values on all users, every candidate's gain on the screen), in the given order."""
        problem = self.problem
        first = problem.evaluate_shared(state.tokens, slot, candidates, users=screen)
        weights = problem.weights * screen
        current = overall(np.asarray(state.user_values, dtype=np.float64), weights)
        gains = [overall(np.where(screen, row, 0.0), weights) - current for row in first]
        keep = [c for c, gain in enumerate(gains) if gain > 0]
        if not keep:
            return [], np.zeros((0, len(problem.users))), gains
        rest = problem.evaluate_shared(state.tokens, slot, [candidates[c] for c in keep], users=~screen)
        values = np.where(screen[None, :], first[keep], rest)
        return [int(candidates[c]) for c in keep], values, gains

    def _end_shared(self, state: SearchState, accepted: bool) -> None:
        state.last_shared_accepted = accepted
        state.position_index = 0
        if self._converged(state):
            self._stop(state, "converged")
        elif self.problem.layout.n_personal > 0:
            state.phase = "personal"
        else:
            self._next_round(state)

    # -- personal -------------------------------------------------------------------------------
    def _personal_step(self, state: SearchState) -> Record:
        problem = self.problem
        slot = (state.round - 1) % problem.layout.n_personal
        baseline = self.best(state)
        candidates = problem.personal_candidates(state.tokens, slot)
        values = problem.evaluate_personal(state.tokens, slot, candidates)
        current = np.asarray(state.user_values, dtype=np.float64)
        updates: dict[int, tuple[int, ...]] = {}
        rows = []
        user_values = list(state.user_values)
        for i, user in enumerate(problem.users):
            pick = int(np.argmax(values[i])) if values.shape[1] else -1
            kept = pick >= 0 and values[i, pick] > current[i] + self.config.personal_margin
            if kept:
                tokens = list(state.tokens.personal_for(user))
                tokens[slot] = int(candidates[i, pick])
                updates[int(user)] = tuple(tokens)
                user_values[i] = float(values[i, pick])
            rows.append({"user": int(user), "candidates": [int(t) for t in candidates[i]],
                         "values": [float(v) for v in values[i]], "before": float(current[i]),
                         "kept": int(candidates[i, pick]) if kept else None})
        texts = {str(int(t)): problem.token_text(int(t)) for t in np.unique(candidates)}
        state.tokens = state.tokens.with_personal(updates)
        state.user_values = user_values
        state.personal_changes += len(updates)
        state.last_personal_changed = len(updates)
        record: Record = {"round": state.round, "kind": "personal", "position": f"personal[{slot}]", "slot": slot,
                          "baseline": baseline, "changed": len(updates), "users": rows, "texts": texts}
        if self._converged(state):
            self._stop(state, "converged")
        else:
            self._next_round(state)
        record["surrogate"] = self.best(state)
        return record

    # -- bookkeeping ----------------------------------------------------------------------------
    def _converged(self, state: SearchState) -> bool:
        layout = self.problem.layout
        shared_idle = layout.n_shared == 0 or not self.config.search_shared or state.last_shared_accepted is False
        personal_idle = layout.n_personal == 0 or state.last_personal_changed == 0
        return shared_idle and personal_idle

    def _next_round(self, state: SearchState) -> None:
        if state.round >= self.config.max_rounds:
            self._stop(state, "max-rounds")
            return
        state.round += 1
        state.position_index = 0
        state.phase = "shared" if self.problem.layout.n_shared > 0 and self.config.search_shared else "personal"

    @staticmethod
    def _stop(state: SearchState, reason: str) -> None:
        if reason == "time-budget" and state.phase != "done":
            state.stopped_in = state.phase  # where a larger budget continues (`reopen`)
        state.phase = "done"
        state.stop_reason = reason

    def _token(self, token: int) -> dict[str, int | str]:
        return {"id": int(token), "text": self.problem.token_text(int(token))}


def reopen(state: SearchState, layout: Layout, search_shared: bool, max_rounds: int,
           time_budget: float | None) -> str | None:
    """Continue a finished search under a larger budget: `state` (stopped by `--max-rounds` or `--time-budget`)
    is put back where the uninterrupted search with `max_rounds` / `time_budget` would go on (the next round,
    as `Schedule._next_round` does; the phase the budget stopped, `state.stopped_in`) and None is returned;
    else `state` is left as it is and the reason it cannot go on is returned (one clause)."""
    if state.stop_reason == "max-rounds":
        if max_rounds <= state.round:
            return f"it stopped after round {state.round} of --max-rounds {state.round}; give --max-rounds above it"
        state.round += 1
        state.position_index = 0
        state.phase = "shared" if layout.n_shared > 0 and search_shared else "personal"
    elif state.stop_reason == "time-budget":
        if state.stopped_in is None:
            return "its state does not record where the time budget stopped it (a run from before paprec recorded it)"
        if time_budget is not None and time_budget <= state.seconds:
            return f"it has already searched {state.seconds:.1f}s; give a --time-budget above that"
        state.phase, state.stopped_in = state.stopped_in, None
    else:
        return f"it stopped ({state.stop_reason or 'finished'}), which a larger budget does not change"
    state.stop_reason = None
    return None
