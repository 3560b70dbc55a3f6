"""The resolved options of one search (recorded in the manifest; `--resume` reads them back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from paprec_cli.checks import MAX_TRIGGER_TOKENS, check_seed
from paprec_cli.errors import PaprecError
from paprec_cli.search.layout import Layout

SELECTIONS = ("surrogate", "loss")
#: Rows per forward pass when --batch-size is not given. On the CPU 256 everywhere. On CUDA larger passes:
#: on an H200, P5-small cost about the same ~130 ms per training step at 256 and at 1,024 examples
#: (bench/README.md), so small passes leave the GPU idle. The surrogate (inference only, little memory) takes
#: 2048 rows; gradient passes, which hold activations for backward, 512. Not yet timed in a search on a GPU.
DEFAULT_BATCH = 256
CUDA_SURROGATE_BATCH = 2048
CUDA_GRADIENT_BATCH = 512
EVALUATORS = ("fast", "beam")
INITS = ("random", "manual")


@dataclass(frozen=True)
class SearchConfig:
    task: str
    dataset: str
    model: str  # the model folder
    n_prefix: int = 0
    n_suffix: int = 5
    n_personal: int = 1
    top_k: int = 5
    val_users: int | None = None  # seeded sample of validation users; None = all
    grad_examples: int = 256  # seeded sample of training examples for the shared gradient
    personal_grad_examples: int = 4  # each validation user's most recent training examples
    max_rounds: int = 20
    time_budget: float | None = None  # seconds
    selection: str = "surrogate"
    evaluator: str = "fast"
    batch_size: int | None = None  # rows per forward pass; None: the device's defaults (`batch_sizes`)
    allow_list: str | None = None
    seed: int = 0
    split_seed: int | None = None  # the splits the model was trained on (None: from the model's config)
    manual_template: str | None = None
    #: The starting prompt: a seeded random draw, or the manual template's words around the argument
    #: (then n_prefix/n_suffix are the template's word counts, set when the search is prepared).
    init: str = "random"

    @property
    def layout(self) -> Layout:
        return Layout(self.n_prefix, self.n_suffix, self.n_personal)

    def check(self) -> SearchConfig:
        """Reject values a search cannot run with, naming the option."""
        checks = [
            (self.n_prefix >= 0, "--n-prefix", "an integer >= 0"),
            (self.n_suffix >= 0, "--n-suffix", "an integer >= 0"),
            (self.n_personal >= 0, "--n-personal", "an integer >= 0"),
            (self.n_prefix + self.n_suffix + self.n_personal > 0, "--n-suffix", "at least one trigger token in all"),
            (self.n_prefix + self.n_suffix + self.n_personal <= MAX_TRIGGER_TOKENS,
             "--n-prefix/--n-suffix/--n-personal", f"at most {MAX_TRIGGER_TOKENS} trigger tokens in all"),
            (self.top_k >= 1, "--top-k", "an integer >= 1"),
            (self.val_users is None or self.val_users >= 1, "--val-users", "an integer >= 1"),
            (self.grad_examples >= 1, "--grad-examples", "an integer >= 1"),
            (self.max_rounds >= 1, "--max-rounds", "an integer >= 1"),
            (self.time_budget is None or self.time_budget > 0, "--time-budget", "a positive number of seconds"),
            (self.selection in SELECTIONS, "--selection", " or ".join(SELECTIONS)),
            (self.evaluator in EVALUATORS, "--evaluator", " or ".join(EVALUATORS)),
            (self.init in INITS, "--init", " or ".join(INITS)),
            (self.batch_size is None or self.batch_size >= 1, "--batch-size", "an integer >= 1"),
        ]
        for ok, option, expected in checks:
            if not ok:
                raise PaprecError(f"{option}: invalid value; expected {expected}")
        check_seed(self.seed)
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SearchConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})


def batch_sizes(batch_size: int | None, device: str) -> tuple[int, int]:
    """(surrogate rows per pass, gradient rows per pass): `--batch-size` for both when given."""
    if batch_size is not None:
        return batch_size, batch_size
    if str(device).startswith("cuda"):
        return CUDA_SURROGATE_BATCH, CUDA_GRADIENT_BATCH
    return DEFAULT_BATCH, DEFAULT_BATCH
