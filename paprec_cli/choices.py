"""String-valued choices shared by the configs and the CLI options, so both come from one place.

Each choice is a `str` enum: it compares equal to its value ("loss" == Selection.LOSS), prints as its
value, and serialises to JSON as the plain string. `parse` turns a user's string into the member or
raises `PaprecError` naming the option and the allowed values (the project's one-line error).
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from paprec_cli.errors import PaprecError

C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    """Base of the choices: `str(member)` and `format(member)` are its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(str(member.value) for member in cls)

    @classmethod
    def help(cls) -> str:
        """The allowed values, for help texts and errors: "a or b" / "a, b or c"."""
        values = cls.values()
        return " or ".join(values) if len(values) < 3 else f"{', '.join(values[:-1])} or {values[-1]}"

    @classmethod
    def parse(cls: type[C], value: str | C, option: str) -> C:
        """The member named by `value`; PaprecError naming `option` when there is none."""
        try:
            return cls(value)
        except ValueError:
            raise PaprecError(f"{option} {value}: invalid value; expected {cls.help()}") from None


class Selection(Choice):
    """`--selection`: what decides whether a candidate token is kept."""

    SURROGATE = "surrogate"  # the task's surrogate metric on validation (the paper's method)
    LOSS = "loss"  # the negative teacher-forced loss of the target (the paper's ablation)
    RANK = "rank"  # NDCG of the target over the top RANK_DEPTH ranking: dense, and read off the ranking


class Evaluator(Choice):
    """`--evaluator`: how the surrogate is computed."""

    FAST = "fast"  # batched exact ranking
    BEAM = "beam"  # the reference's 20-beam generate, one candidate at a time


class Init(Choice):
    """`--init`: the search's starting prompt."""

    RANDOM = "random"  # a seeded random draw of trigger tokens
    MANUAL = "manual"  # the manual template's words around the argument

