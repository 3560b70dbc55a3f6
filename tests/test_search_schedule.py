"""The alternating schedule against fake problems whose improvements the tests control."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from paprec_cli.search.layout import Layout, PromptTokens
from paprec_cli.search.rundir import RunDir
from paprec_cli.search.schedule import Schedule, ScheduleConfig, start_state
from paprec_cli.search.state import SearchState


class FakeProblem:
    """Surrogate of user u = (#shared slots holding GOOD) + (personal token == favourite[u]) * bonus.

    Shared candidates are always [GOOD, BAD] minus the current token; personal ones [favourite, BAD].
    """

    GOOD, BAD = 7, 3

    def __init__(self, layout: Layout, users: Sequence[int], favourite: dict[int, int], bonus: float = 0.5,
                 always_better: bool = False) -> None:
        self.layout = layout
        self.users = list(users)
        self.weights = np.ones(len(self.users))
        self.favourite = favourite
        self.bonus = bonus
        self.always_better = always_better  # value = sum of token ids, candidates = current + 1
        self.calls = 0

    def _value(self, tokens: PromptTokens, user: int) -> float:
        if self.always_better:
            return float(sum(tokens.triggers_for(user)))
        shared = sum(t == self.GOOD for t in tokens.shared)
        personal = self.bonus * sum(t == self.favourite.get(user) for t in tokens.personal_for(user))
        return float(shared + personal)

    def evaluate(self, tokens: PromptTokens) -> np.ndarray:
        return np.array([self._value(tokens, u) for u in self.users])

    def shared_candidates(self, tokens: PromptTokens, slot: int) -> list[int]:
        current = tokens.shared[slot]
        if self.always_better:
            return [current + 1]
        return [t for t in (self.GOOD, self.BAD) if t != current]

    def evaluate_shared(self, tokens: PromptTokens, slot: int, candidates: Sequence[int]) -> np.ndarray:
        self.calls += 1
        return np.stack([self.evaluate(tokens.with_shared(slot, c)) for c in candidates])

    def personal_candidates(self, tokens: PromptTokens, slot: int) -> np.ndarray:
        rows = []
        for u in self.users:
            current = tokens.personal_for(u)[slot]
            if self.always_better:
                rows.append([current + 1])
            else:
                rows.append([t for t in (self.favourite[u], 100, 101) if t != current][:2])
        return np.array(rows)

    def evaluate_personal(self, tokens: PromptTokens, slot: int, candidates: np.ndarray) -> np.ndarray:
        out = np.zeros(candidates.shape)
        for i, u in enumerate(self.users):
            for j, c in enumerate(candidates[i]):
                personal = list(tokens.personal_for(u))
                personal[slot] = int(c)
                out[i, j] = self._value(tokens.with_personal({u: tuple(personal)}), u)
        return out

    def token_text(self, token: int) -> str:
        return f"w{token}"


def _run(problem: FakeProblem, tokens: PromptTokens, **config: object) -> tuple[SearchState, list[dict]]:
    records: list[dict] = []
    state = start_state(problem, tokens)
    Schedule(problem, ScheduleConfig(**config)).run(state, lambda s, r: records.append(r) if r else None)
    return state, records


def test_stops_when_nothing_improves() -> None:
    layout = Layout(0, 4, 1)
    problem = FakeProblem(layout, [1, 2], favourite={1: 3, 2: 3}, bonus=0.0)
    tokens = PromptTokens(shared=(FakeProblem.GOOD,) * 4, personal_default=(3,))
    state, records = _run(problem, tokens, seed=1)
    assert state.stop_reason == "converged"
    # every shared slot tried once (no improvement), then one personal step that changed nobody
    assert [r["kind"] for r in records] == ["shared"] * 4 + ["personal"]
    assert sorted(r["slot"] for r in records[:4]) == [0, 1, 2, 3]
    assert records[-1]["changed"] == 0
    assert state.tokens == tokens


def test_converges_to_the_improvements_and_stops_on_the_rule() -> None:
    layout = Layout(1, 3, 1)
    favourite = {1: 11, 2: 12, 3: 13}
    problem = FakeProblem(layout, [1, 2, 3], favourite)
    tokens = PromptTokens(shared=(FakeProblem.BAD,) * 4, personal_default=(5,))
    state, records = _run(problem, tokens, seed=3)
    assert state.stop_reason == "converged"
    assert state.tokens.shared == (FakeProblem.GOOD,) * 4
    assert {u: t[0] for u, t in state.tokens.personal.items()} == favourite
    # each accepted shared step ends its round; the search ends with a failed shared phase and an idle personal one
    shared = [r for r in records if r["kind"] == "shared"]
    assert sum(r["accepted"] is not None for r in shared) == 4
    assert state.last_shared_accepted is False and state.last_personal_changed == 0
    last_round = [r for r in records if r["round"] == state.round]
    assert [r["kind"] for r in last_round] == ["shared"] * 4  # the previous personal phase was idle already
    assert [r["kind"] for r in records if r["round"] == state.round - 1][-1] == "personal"
    assert state.user_values == [4.5, 4.5, 4.5]
    assert state.history == sorted(state.history)  # the surrogate never goes down


def test_strict_improvement_required() -> None:
    """A candidate that only ties the current surrogate is not taken."""
    layout = Layout(0, 2, 0)
    problem = FakeProblem(layout, [1], favourite={1: 1})
    same = problem.evaluate
    problem.evaluate_shared = lambda tokens, slot, c: np.stack([same(tokens)] * len(c))  # type: ignore[method-assign]
    tokens = PromptTokens(shared=(9, 9), personal_default=())
    state, records = _run(problem, tokens)
    assert all(r["accepted"] is None for r in records)
    assert state.stop_reason == "converged" and len(records) == 2


def test_max_rounds_and_non_personalized() -> None:
    layout = Layout(0, 2, 0)
    problem = FakeProblem(layout, [1, 2], favourite={}, always_better=True)
    state, records = _run(problem, PromptTokens(shared=(1, 1), personal_default=()), max_rounds=3)
    assert state.stop_reason == "max-rounds"
    assert state.round == 3 and len(records) == 3 and all(r["kind"] == "shared" for r in records)


def test_time_budget_stops_cleanly() -> None:
    layout = Layout(0, 2, 1)
    problem = FakeProblem(layout, [1], favourite={1: 1}, always_better=True)
    ticks = iter(range(1000))
    state = start_state(problem, PromptTokens(shared=(1, 1), personal_default=(1,)))
    Schedule(problem, ScheduleConfig(time_budget=5)).run(state, lambda s, r: None, clock=lambda: float(next(ticks)))
    assert state.stop_reason == "time-budget"
    assert 4 <= state.seconds <= 8


def test_only_personal_slots() -> None:
    layout = Layout(0, 0, 2)
    problem = FakeProblem(layout, [1, 2], favourite={1: 4, 2: 6})
    state, records = _run(problem, PromptTokens(shared=(), personal_default=(9, 9)))
    assert state.stop_reason == "converged"
    assert state.tokens.personal == {1: (4, 4), 2: (6, 6)}
    assert [r["slot"] for r in records] == [0, 1, 0]


def test_resume_after_a_crash_gives_the_same_result(tmp_path: Path) -> None:
    layout = Layout(1, 3, 1)
    favourite = {1: 11, 2: 12, 3: 13}
    tokens = PromptTokens(shared=(FakeProblem.BAD,) * 4, personal_default=(5,))
    config = ScheduleConfig(seed=5)

    reference, _ = _run(FakeProblem(layout, [1, 2, 3], favourite), tokens, seed=5)

    run = RunDir.create(tmp_path / "run", {"config": {}})
    problem = FakeProblem(layout, [1, 2, 3], favourite)
    state = start_state(problem, tokens)
    run.save_state(state)

    class Crash(Exception):
        pass

    def crashing(s: SearchState, r: dict) -> None:
        run.record(s, r)
        if s.steps == 3:
            run.append_step({"torn": True})  # a line the state never counted
            raise Crash

    with pytest.raises(Crash):
        Schedule(problem, config).run(state, crashing)

    run2, _, saved = RunDir.open_for_resume(tmp_path / "run")
    assert saved is not None and saved.steps == 3 and len(run2.trajectory()) == 3
    resumed = Schedule(FakeProblem(layout, [1, 2, 3], favourite), config).run(saved, run2.record)
    assert resumed.tokens == reference.tokens
    assert resumed.user_values == reference.user_values
    assert resumed.stop_reason == reference.stop_reason
    assert len(run2.trajectory()) == resumed.steps == reference.steps
