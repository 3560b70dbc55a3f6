"""The search's resumable state: everything the next step depends on, saved after every step.

RNG streams are derived from (seed, round), so the state needs no RNG snapshot: a resumed run
recomputes the same shared-slot order and, on the same device and batch size, the same gradients,
candidates and surrogate values, and so takes exactly the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from paprec_cli.search.layout import PromptTokens

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject

Phase = Literal["shared", "personal", "done"]
STATE_FORMAT = "paprec-search-state/1"


def tokens_to_json(tokens: PromptTokens) -> JSONObject:
    return {
        "shared": list(tokens.shared),
        "personal_default": list(tokens.personal_default),
        "personal": {str(u): list(ids) for u, ids in sorted(tokens.personal.items())},
    }


def tokens_from_json(obj: dict[str, Any]) -> PromptTokens:
    return PromptTokens(
        shared=tuple(int(t) for t in obj["shared"]),
        personal_default=tuple(int(t) for t in obj["personal_default"]),
        personal={int(u): tuple(int(t) for t in ids) for u, ids in obj["personal"].items()},
    )


@dataclass
class SearchState:
    """Where the search stands between two steps.

    `user_values[i]` is validation user i's surrogate under the current prompt (i indexes the search's
    sorted validation users); `steps` counts trajectory lines written.
    """

    tokens: PromptTokens
    initial: PromptTokens
    user_values: list[float]
    initial_value: float
    round: int = 1
    phase: Phase = "shared"
    position_index: int = 0
    steps: int = 0
    last_shared_accepted: bool | None = None
    last_personal_changed: int | None = None
    accepted_shared: int = 0
    personal_changes: int = 0
    stop_reason: str | None = None
    seconds: float = 0.0
    history: list[float] = field(default_factory=list)  # best surrogate after each step
    #: `--personal-init history`/`liked` under a paired guard (`runner.check_history_start`): whether the users'
    #: history words were kept as the start, their paired z against the default word, both surrogates, the init.
    history_start: dict[str, float | bool | str | None] | None = None
    #: The phase a search stopped by `--time-budget` was in (its `phase` reads "done"): where a resume with a
    #: larger budget continues (`schedule.reopen`). None otherwise.
    stopped_in: Phase | None = None

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def to_json(self) -> JSONObject:
        return {
            "format": STATE_FORMAT,
            "round": self.round,
            "phase": self.phase,
            "position_index": self.position_index,
            "steps": self.steps,
            "tokens": tokens_to_json(self.tokens),
            "initial": tokens_to_json(self.initial),
            "user_values": list(self.user_values),
            "initial_value": self.initial_value,
            "last_shared_accepted": self.last_shared_accepted,
            "last_personal_changed": self.last_personal_changed,
            "accepted_shared": self.accepted_shared,
            "personal_changes": self.personal_changes,
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
            "history": list(self.history),
            **({"history_start": dict(self.history_start)} if self.history_start is not None else {}),
            **({"stopped_in": self.stopped_in} if self.stopped_in is not None else {}),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SearchState:
        if obj.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown state format {obj.get('format')!r}")
        return cls(
            tokens=tokens_from_json(obj["tokens"]),
            initial=tokens_from_json(obj["initial"]),
            user_values=[float(v) for v in obj["user_values"]],
            initial_value=float(obj["initial_value"]),
            round=int(obj["round"]),
            phase=obj["phase"],
            position_index=int(obj["position_index"]),
            steps=int(obj["steps"]),
            last_shared_accepted=obj["last_shared_accepted"],
            last_personal_changed=obj["last_personal_changed"],
            accepted_shared=int(obj["accepted_shared"]),
            personal_changes=int(obj["personal_changes"]),
            stop_reason=obj["stop_reason"],
            seconds=float(obj["seconds"]),
            history=[float(v) for v in obj["history"]],
            history_start=dict(obj["history_start"]) if isinstance(obj.get("history_start"), dict) else None,
            stopped_in=obj["stopped_in"] if obj.get("stopped_in") in ("shared", "personal") else None,
        )
