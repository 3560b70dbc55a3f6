"""The resolved options of one search (recorded in the manifest; `--resume` reads them back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import TYPE_CHECKING, Any

from paprec_cli.checks import MAX_TRIGGER_TOKENS, check_seed
from paprec_cli.choices import Evaluator, Init, Selection
from paprec_cli.errors import PaprecError
from paprec_cli.search.layout import Layout

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject

#: Rows per forward pass when --batch-size is not given. On the CPU 256 everywhere. On CUDA larger passes:
#: on an H200, P5-small cost about the same ~130 ms per training step at 256 and at 1,024 examples
#: (bench/README.md), so small passes leave the GPU idle. The surrogate (inference only, little memory) takes
#: 2048 rows; gradient passes, which hold activations for backward, 512. Not yet timed in a search on a GPU.
DEFAULT_BATCH = 256
CUDA_SURROGATE_BATCH = 2048
CUDA_GRADIENT_BATCH = 512
PERSONAL_INITS = ("default", "history", "liked", "auto")
#: Named search protocols: the option values each one sets (an option given explicitly overrides them).
#: `guarded` (the default; issue #14, round three): manual start, each user's personal token at a training-history
#: attribute word (`--personal-init auto`, round ten: the rating-weighted count's word, `liked_word`, or the most
#: frequent one, `history_word`, whichever scores higher on the search users' validation examples; the most
#: frequent one on a dataset without ratings), personal candidates = the gradient's top-5 plus the user's next 5
#: history words by the same rule; every candidate scored by the target's
#: NDCG@50 (`--selection rank`) on the user's validation example and last training example; a shared flip
#: kept only if a held-out half of the users confirms it with a paired z > 1.645, a personal token only if
#: it beats the user's current one by 0.5 NDCG@50 (at 0.25 the replacements lost to the history word on
#: seeds 1 and 2); one round; each shared slot's candidates screened on a quarter of the choosing users
#: first (`--shared-screen 0.25`: the same decisions at a fraction of the cost). Measured on three seeds of
#: the synthetic tiny model: docs/ABLATION-14.md.
#: `paper`: PAP-REC as published (random start, 20 rounds, NDCG@5 + HR@5 on one validation example per user,
#: top-5 HotFlip candidates, strict improvement); reproduces main's prompts before protocols existed.
#: `transfer` (experimental, issue #14 round one): the target's log-probability as the acceptance signal, each
#: user's last training example as an extra search example (personal candidates come from the user's earlier
#: examples), shared flips accepted only when they also improve on a held-out half of the search users, and a
#: personal token kept only if the user's mean log-probability rises by > 0.1 nats.
#: `history` (experimental, issue #14 round two): `guarded`'s start and candidates with `transfer`'s
#: log-probability acceptance, a personal margin of 1.0 nats and 2 rounds; on seed 1 a brand word accepted
#: into the shared prefix raised the log-probability and lost 0.06 test HR@10, which led to `guarded`.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "paper": {"init": "random", "max_rounds": 20, "selection": "surrogate", "top_k": 5, "search_examples": 0,
              "holdout": 0.0, "personal_margin": 0.0, "personal_init": "default", "history_candidates": 0,
              "shared_z": 0.0, "shared_screen": 0.0},
    "transfer": {"init": "random", "max_rounds": 20, "selection": "loss", "top_k": 5, "search_examples": 1,
                 "holdout": 0.5, "personal_margin": 0.1, "personal_init": "default", "history_candidates": 0,
                 "shared_z": 0.0, "shared_screen": 0.0},
    "history": {"init": "manual", "max_rounds": 2, "selection": "loss", "top_k": 5, "search_examples": 1,
                "holdout": 0.5, "personal_margin": 1.0, "personal_init": "history", "history_candidates": 5,
                "shared_z": 0.0, "shared_screen": 0.0},
    "guarded": {"init": "manual", "max_rounds": 1, "selection": "rank", "top_k": 5, "search_examples": 1,
                "holdout": 0.5, "personal_margin": 0.5, "personal_init": "auto", "history_candidates": 5,
                "shared_z": 1.645, "shared_screen": 0.25},
}
DEFAULT_PROTOCOL = "guarded"


@dataclass(frozen=True)
class SearchConfig:
    """A search's options, validated on construction (also when read back for `--resume` and on
    `dataclasses.replace`): a value a search cannot run with raises PaprecError naming its option.
    Choices given as strings become their enum members."""

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
    selection: Selection = Selection.SURROGATE
    evaluator: Evaluator = Evaluator.FAST
    batch_size: int | None = None  # rows per forward pass; None: the device's defaults (`batch_sizes`)
    allow_list: str | None = None
    seed: int = 0
    split_seed: int | None = None  # the splits the model was trained on (None: from the model's config)
    manual_template: str | None = None
    #: The starting prompt: a seeded random draw, or the manual template's words around the argument
    #: (then n_prefix/n_suffix are the template's word counts, set when the search is prepared).
    init: Init = Init.RANDOM
    #: The T5 tokenizer of a HF T5 folder / P5 `.pth` model (None: the one beside the checkpoint).
    tokenizer: str | None = None
    #: History separator for the P5 input protocol (`,`, `->` or `random`); None: `,`.
    separator: str | None = None
    #: How the surrogate ranks: "paprec" or "p5" (`paprec_cli.model.inference`).
    decoding: str = "paprec"
    #: The protocol name (see PROTOCOLS); the fields below hold its resolved values. Defaults = `paper`,
    #: so manifests written before protocols existed resume as they ran.
    protocol: str = "paper"
    #: Each search user's last N training examples scored next to their validation example (0: validation only).
    search_examples: int = 0
    #: Share of search users held out: a shared flip is chosen on the others and accepted only if it also
    #: improves the held-out users' mean (0: chosen and accepted on all users).
    holdout: float = 0.0
    #: A personal token replaces the current one only if the user's mean signal improves by more than this.
    personal_margin: float = 0.0
    #: Each user's personal slot 0 starts at: `default` (the shared personal_default draw), `history` (the
    #: user's most frequent training-history attribute word, as the `history_word` reference) or `liked` (the
    #: attribute with the largest rating-weighted count, as the `liked_word` reference; `history`'s word on a
    #: dataset without ratings, and the run says so) or `auto` (`liked` or `history`, whichever scores higher on
    #: the search users' validation examples; `history` without ratings); users without a word keep the default.
    personal_init: str = "default"
    #: Each user's M best training-history attribute words (by `personal_init`'s rule: the liked rule for
    #: `liked` and an `auto` that chose it, else the count) join the gradient's top-k as personal candidates
    #: (0: gradient candidates only).
    history_candidates: int = 0
    #: False: the shared tokens keep their initial values (only personal tokens are searched).
    search_shared: bool = True
    #: A shared flip is kept only if its per-user improvement on the confirming users (held-out, else all)
    #: exceeds this many standard errors (paired one-sided z-test; 0: off, as the paper).
    shared_z: float = 0.0
    #: Early elimination of shared candidates: each slot's candidates are first scored on this seeded share
    #: of the choosing users and only those that improve it are scored on the rest (0: off, as the paper).
    shared_screen: float = 0.0
    #: The closing evaluation scores a seeded sample of this many users with a test example (`paprec search
    #: --eval-users`; `evaluate.sample_users` with `seed`); None: all. It changes `results`, never the prompts,
    #: so a resume may change it (`search.resume.CLOSING`).
    eval_users: int | None = None

    @property
    def layout(self) -> Layout:
        return Layout(self.n_prefix, self.n_suffix, self.n_personal)

    def __post_init__(self) -> None:
        for name, kind, option in (("selection", Selection, "--selection"), ("evaluator", Evaluator, "--evaluator"),
                                   ("init", Init, "--init")):  # fmt: skip
            object.__setattr__(self, name, kind.parse(getattr(self, name), option))
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
            (self.batch_size is None or self.batch_size >= 1, "--batch-size", "an integer >= 1"),
            (self.separator in (None, ",", "->", "random"), "--separator", ", or -> or random"),
            (self.decoding in ("paprec", "p5"), "--decoding", "paprec or p5"),
            (self.protocol in PROTOCOLS, "--protocol", " or ".join(PROTOCOLS)),
            (self.search_examples >= 0, "--search-examples", "an integer >= 0"),
            (0.0 <= self.holdout < 1.0, "--holdout", "a share in [0, 1)"),
            (self.personal_margin >= 0.0, "--personal-margin", "a number >= 0"),
            (self.personal_init in PERSONAL_INITS, "--personal-init", " or ".join(PERSONAL_INITS)),
            (self.history_candidates >= 0, "--history-candidates", "an integer >= 0"),
            (self.shared_z >= 0.0, "--shared-z", "a number >= 0"),
            (0.0 <= self.shared_screen < 1.0, "--shared-screen", "a share in [0, 1)"),
            (self.eval_users is None or self.eval_users >= 1, "--eval-users", "an integer >= 1"),
        ]
        for ok, option, expected in checks:
            if not ok:
                raise PaprecError(f"{option}: invalid value; expected {expected}")
        check_seed(self.seed)

    def to_json(self) -> JSONObject:
        return {k: v.value if isinstance(v, Enum) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SearchConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})


def protocol_options(protocol: str, **given: Any) -> dict[str, Any]:
    """The protocol's option values, with every option in `given` that is not None taking precedence.

    Raises PaprecError naming --protocol for an unknown name."""
    if protocol not in PROTOCOLS:
        raise PaprecError(f"--protocol: unknown protocol '{protocol}'; expected {' or '.join(PROTOCOLS)}")
    values = dict(PROTOCOLS[protocol])
    values.update({k: v for k, v in given.items() if v is not None})
    return {"protocol": protocol, **values}


def batch_sizes(batch_size: int | None, device: str) -> tuple[int, int]:
    """(surrogate rows per pass, gradient rows per pass): `--batch-size` for both when given."""
    if batch_size is not None:
        return batch_size, batch_size
    if str(device).startswith("cuda"):
        return CUDA_SURROGATE_BATCH, CUDA_GRADIENT_BATCH
    return DEFAULT_BATCH, DEFAULT_BATCH
