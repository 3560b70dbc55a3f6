"""Reference prompts for `paprec eval`: personalized prompts that need no search.

A searched personalized prompt is worth its cost only if it beats what a free heuristic puts in the same
slot. Two references fill the run's personal slot with one word per user:

- `oracle` (datasets with a `truth` table, i.e. `synthetic`): the user's hidden taste word (the truth
  table's first taste word, the one that drives most of the user's choices; the same word the train
  report's sensitivity table appends). An *upper reference*: it reads ground truth no search can see.
- `history_word` (datasets whose items carry attributes): the attribute that occurs most often among the
  items of the user's *training* history (leave-one-out train part for sequential/direct, the rating
  split's train rows for rating; never a validation or test item), counted once per training interaction.
  Ties: the attribute whose last occurrence in the training history is latest wins, then the
  alphabetically first.
- `liked_word` (datasets whose items carry attributes and whose interactions carry ratings): the same
  history ranked by the rating-weighted count, the sum of (rating - the midpoint of the training ratings) over
  the interactions carrying the attribute (`paprec_cli.data.attributes`, the liked rule); an unrated
  interaction weighs 0. Ties: the count rule's order. The default search (`--personal-init auto`) starts from
  this word or from `history_word`, whichever its validation examples prefer.

For both attribute references only attributes that are one usable trigger token are eligible (a slot holds
one whole-word token from the search's candidate vocabulary: multi-word names such as "Skin Care" and words
the model's vocabulary lacks are skipped); the user gets their best-ranked *eligible* attribute, and how many
users' overall best-ranked attribute was skipped is reported (`top_not_usable`).

The non-personal part of every reference is the run's own **shared tokens** (prefix and suffix), with the
word in personal slot 0 and any further personal slots keeping the run's `personal_default`. So
`personalized` and a reference differ only in the personal tokens: `personalized - history_word` is the
worth of the personal search itself over a free per-user word, with the shared tokens (and their own
gain over manual, seen in `shared - manual`) held equal. (Appending the word to the manual prompt instead
would mix the shared tokens' gain into the comparison.) Users without a word (no truth row, no eligible
attribute, or a taste word outside the candidate vocabulary) keep `personal_default`, i.e. the shared
prompt, and are counted in the reference's report.

A reference is *unavailable*, with the reason, when the run's layout has no personal slot, the dataset
has no truth table / no item attributes, or no user gets a word; it is then absent from `results` and
`paired` and present in `references` with `available: false`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from paprec_cli.data.attributes import RULES, ranked_words
from paprec_cli.data.splits import TaskData
from paprec_cli.errors import PaprecError
from paprec_cli.evaluate import layout_of, tokens_of
from paprec_cli.search.layout import Layout, PromptTokens
from paprec_cli.specs import TaskSpec

#: The references `paprec eval` knows, in report order.
REFERENCES = ("oracle", "history_word", "liked_word")
#: Each attribute reference's ranking rule (`paprec_cli.data.attributes.RULES`).
REFERENCE_RULES = {"history_word": "count", "liked_word": "liked"}
#: What `--references` means when not given: every reference the run and dataset allow.
DEFAULT_REFERENCES = ",".join(REFERENCES)
#: Words shown in a report as examples of words the vocabulary lacks.
MAX_EXAMPLES = 5


@dataclass
class Reference:
    """One reference prompt: its per-user tokens (None when unavailable) and what to report about it.

    `report` is JSON-ready: `available`, `reason` (why not, else None), `users` (users with a word),
    `users_without_word`, `not_in_vocabulary` (users whose word the candidate vocabulary lacks, oracle) or
    `top_not_usable` (history_word), `missing_examples`, `non_personal`, and the rule that picked the word.
    """

    name: str
    tokens: PromptTokens | None
    report: dict[str, Any] = field(default_factory=dict)


class WordLookup:
    """Word -> token id of the search's candidate vocabulary (a trigger slot holds one such token).

    A word is looked up as written, then lower-cased; `None` when neither is one candidate token.
    """

    def __init__(self, codec: Any) -> None:
        self.codec = codec
        self.allowed = {int(i) for i in np.asarray(codec.candidate_vocab()).tolist()}
        self._cache: dict[str, int | None] = {}

    def __call__(self, word: str) -> int | None:
        if word not in self._cache:
            self._cache[word] = self._find(word)
        return self._cache[word]

    def _find(self, word: str) -> int | None:
        text = str(word).strip()
        if not text or len(text.split()) != 1:
            return None
        for variant in dict.fromkeys((text, text.lower())):
            try:
                token = int(self.codec.token_id(variant))
            except (KeyError, ValueError, PaprecError):
                continue
            if token in self.allowed:
                return token
        return None


def parse_references(value: str | None) -> tuple[str, ...]:
    """`--references` as names: a comma list of REFERENCES, `all` (default) or `none`.

    Raises PaprecError naming the option and the known names for anything else.
    """
    text = DEFAULT_REFERENCES if value is None else value.strip().lower()
    if text == "none":
        return ()
    if text == "all":
        return REFERENCES
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in REFERENCES]
    if unknown or not names:
        raise PaprecError(
            f"--references {value!r}: unknown reference {', '.join(unknown) or '(empty)'}; "
            f"give a comma list of {', '.join(REFERENCES)}, or all, or none"
        )
    return tuple(n for n in REFERENCES if n in names)


def with_words(base: PromptTokens, words: Mapping[int, int], n_personal: int) -> PromptTokens:
    """`base`'s shared tokens; each listed user's word in personal slot 0 (other slots: the default)."""
    default = tuple(base.personal_default)
    personal = {int(u): (int(t), *default[1:n_personal]) for u, t in words.items()}
    return replace(base, personal=personal)


def training_items(data: TaskData, kind: str) -> dict[int, np.ndarray]:
    """Per user index, the items of the user's training data only, oldest first where time is known.

    Ranking tasks: the leave-one-out train part (validation and test targets excluded). Rating: the
    items of the seeded rating split's train rows.
    """
    if kind == "rating":
        train = data.ratings.train
        out: dict[int, list[int]] = {}
        for user, item in zip(train["user_idx"].to_list(), train["item_idx"].to_list(), strict=True):
            out.setdefault(int(user), []).append(int(item))
        return {u: np.asarray(v, dtype=np.int64) for u, v in out.items()}
    return {u: seq for u, seq in enumerate(data.loo.train) if len(seq)}


def training_weights(data: TaskData, kind: str) -> tuple[dict[int, np.ndarray], float] | None:
    """The liked rule's weights and midpoint: per user index, (rating - midpoint) for each entry of
    `training_items(data, kind)[user]`, 0 for an unrated interaction, where the midpoint is halfway between the
    lowest and the highest *training* rating (3.0 on a 1-5 scale; no validation or test rating is read). None
    when the training ratings have fewer than two values (no ratings, or a single value: nothing to weigh by;
    `Dataset.has_rating_scale` answers the same for all interactions and rules out the common case cheaply)."""
    if not data.dataset.has_rating_scale:
        return None
    raw: dict[int, np.ndarray] = {}
    if kind == "rating":
        train = data.ratings.train
        rows: dict[int, list[float]] = {}
        for user, rating in zip(train["user_idx"].to_list(), train["rating"].to_list(), strict=True):
            rows.setdefault(int(user), []).append(float(rating))
        raw = {u: np.asarray(v, dtype=np.float64) for u, v in rows.items()}
    else:
        ratings = data.dataset.rating_sequences
        raw = {user: ratings[user][: len(seq)] for user, seq in enumerate(data.loo.train) if len(seq)}
    rated = np.concatenate([r[np.isfinite(r)] for r in raw.values()] or [np.zeros(0)])
    if len(rated) == 0 or rated.min() == rated.max():
        return None
    midpoint = float(rated.min() + rated.max()) / 2
    return {u: np.where(np.isnan(r), 0.0, r - midpoint) for u, r in raw.items()}, midpoint


def user_ranked_words(data: TaskData, kind: str, rule: str,
                      weighted: tuple[dict[int, np.ndarray], float] | None = None) -> Callable[[int], list[str]]:
    """`user -> attributes of the user's training history, best first` under `rule` ("count" or "liked").

    `weighted`: `training_weights(data, kind)` when the caller has it already (computed here otherwise).
    Raises PaprecError for "liked" when the training ratings cannot weigh (callers check `training_weights`
    first when they can fall back)."""
    attributes = data.dataset.item_attributes
    history = training_items(data, kind)
    if rule not in RULES:
        raise ValueError(rule)
    if rule == "liked" and weighted is None:
        weighted = training_weights(data, kind)
    if rule != "liked":
        weighted = None
    if rule == "liked" and weighted is None:
        raise PaprecError(f"dataset '{data.dataset.name}' has no ratings to weigh attributes by (the liked rule)")
    weights = None if weighted is None else weighted[0]

    def rank(user: int) -> list[str]:
        items = history.get(int(user), np.zeros(0, np.int64)).tolist()
        return ranked_words(items, attributes, None if weights is None else weights.get(int(user), np.zeros(0)))

    return rank


def most_frequent_word(items: Sequence[int], attributes: Sequence[Sequence[str]],
                       usable: Mapping[str, int | None]) -> tuple[str | None, str | None]:
    """(most frequent usable attribute, most frequent attribute overall) over `items`.

    Counts one per item occurrence; ties: latest last occurrence in `items`, then alphabetical.
    """
    return best_usable(ranked_words(items, attributes), usable)


def best_usable(ranked: Sequence[str], usable: Mapping[str, int | None]) -> tuple[str | None, str | None]:
    """(first usable attribute of `ranked`, first attribute overall); (None, None) when `ranked` is empty."""
    if not ranked:
        return None, None
    best = next((a for a in ranked if usable.get(a) is not None), None)
    return best, ranked[0]


def history_words(data: TaskData, kind: str, users: Iterable[int], lookup: WordLookup, m: int,
                  allowed: set[int] | None = None, rule: str = "count") -> dict[int, tuple[int, ...]]:
    """Per user, the token ids of their `m` best usable attributes in their *training* history.

    The same history and ranking as the `history_word` (rule "count") or `liked_word` (rule "liked")
    reference (its word is each list's first entry when `allowed` is None); `allowed` (token ids, e.g. the
    search's --allow-list vocabulary) narrows the usable words further. Users without a usable word are
    absent. Never reads validation or test items. Raises PaprecError for "liked" without ratings.
    """
    attributes = data.dataset.item_attributes
    if m <= 0 or not any(attributes):
        return {}
    rank = user_ranked_words(data, kind, rule)
    out: dict[int, tuple[int, ...]] = {}
    for user in sorted(set(int(u) for u in users)):
        tokens: list[int] = []
        for attribute in rank(user):
            token = lookup(attribute)
            if token is None or (allowed is not None and token not in allowed) or token in tokens:
                continue
            tokens.append(token)
            if len(tokens) == m:
                break
        if tokens:
            out[user] = tuple(tokens)
    return out


def _unavailable(name: str, reason: str, **extra: Any) -> Reference:
    return Reference(name, None, {"available": False, "reason": reason, **extra})


NON_PERSONAL = "the run's shared tokens (prefix and suffix); word in personal slot 0"


RULE_TEXT = {
    "count": "most frequent single-token attribute of the user's training items; ties: latest, then alphabetical",
    "liked": "single-token attribute of the user's training items with the largest sum of (rating - {midpoint:g}, "
             "the training ratings' midpoint); unrated interactions weigh 0; ties: most frequent, latest, alphabetical",
}


def history_word_reference(base: PromptTokens, layout: Layout, data: TaskData, kind: str,
                           users: Iterable[int], lookup: WordLookup, name: str = "history_word") -> Reference:
    """The `history_word` (or, with `name="liked_word"`, the `liked_word`) reference for `users` (the
    evaluated users), or why it is unavailable."""
    rule = REFERENCE_RULES[name]
    if layout.n_personal == 0:
        return _unavailable(name, "the run's layout has no personal slot (n_personal=0)")
    attributes = data.dataset.item_attributes
    if not any(attributes):
        return _unavailable(name, f"dataset '{data.dataset.name}' has no item attributes")
    weighted = training_weights(data, kind) if rule == "liked" else None
    if rule == "liked" and weighted is None:
        return _unavailable(name, f"dataset '{data.dataset.name}' has no training ratings (or a single rating "
                            "value) to weigh its users' attributes by")
    midpoint = None if weighted is None else weighted[1]
    names = {str(a) for attrs in attributes for a in attrs}
    usable = {a: lookup(a) for a in names}
    rank = user_ranked_words(data, kind, rule, weighted)
    words: dict[int, int] = {}
    without = top_skipped = 0
    skipped: Counter[str] = Counter()
    for user in sorted(set(int(u) for u in users)):
        best, top = best_usable(rank(user), usable)
        if top is not None and top != best:
            top_skipped += 1
            skipped[top] += 1
        if best is None:
            without += 1
            continue
        words[user] = int(usable[best])  # type: ignore[arg-type]
    report = {
        "users": len(words),
        "users_without_word": without,
        "top_not_usable": top_skipped,
        "missing_examples": [w for w, _ in skipped.most_common(MAX_EXAMPLES)],
        "attributes_not_usable": sum(1 for v in usable.values() if v is None),
        "attributes": len(usable),
        "non_personal": NON_PERSONAL,
        "rule": RULE_TEXT[rule].format(midpoint=midpoint or 0.0),
    }
    if not words:
        return _unavailable(name, "no user's training items carry an attribute that is one word of the model's "
                            "candidate vocabulary", **report)
    return Reference(name, with_words(base, words, layout.n_personal), {"available": True, "reason": None, **report})


def oracle_reference(base: PromptTokens, layout: Layout, data: TaskData, users: Iterable[int],
                     lookup: WordLookup) -> Reference:
    """The `oracle` reference (each user's first hidden taste word) for `users`, or why it is unavailable."""
    name = "oracle"
    if layout.n_personal == 0:
        return _unavailable(name, "the run's layout has no personal slot (n_personal=0)")
    dataset = data.dataset
    if "truth" not in (dataset.manifest.get("extras") or []):
        return _unavailable(name, f"dataset '{dataset.name}' has no truth table (hidden tastes: synthetic only)")
    truth = dataset.extra("truth").join(dataset.users, on="user", how="inner")
    taste = {int(u): [str(w) for w in (t or [])] for u, t in
             zip(truth["user_idx"].to_list(), truth["taste"].to_list(), strict=True)}
    words: dict[int, int] = {}
    without = missing = 0
    missing_words: Counter[str] = Counter()
    for user in sorted(set(int(u) for u in users)):
        wanted = taste.get(user) or []
        if not wanted:
            without += 1
            continue
        token = lookup(wanted[0])
        if token is None:
            missing += 1
            missing_words[wanted[0]] += 1
            continue
        words[user] = token
    report = {
        "users": len(words),
        "users_without_word": without,
        "not_in_vocabulary": missing,
        "missing_examples": [w for w, _ in missing_words.most_common(MAX_EXAMPLES)],
        "non_personal": NON_PERSONAL,
        "rule": "the user's first taste word in the dataset's truth table (upper reference: reads ground truth)",
    }
    if not words:
        return _unavailable(name, "no evaluated user has a taste word in the model's candidate vocabulary", **report)
    return Reference(name, with_words(base, words, layout.n_personal), {"available": True, "reason": None, **report})


def build_references(names: Sequence[str], base: PromptTokens, layout: Layout, data: TaskData, kind: str,
                     users: Iterable[int], codec: Any) -> dict[str, Reference]:
    """The requested references in REFERENCES order; `base` is the run's shared prompt (no personal tokens)."""
    users = sorted(set(int(u) for u in users))
    lookup = WordLookup(codec)
    out: dict[str, Reference] = {}
    for name in REFERENCES:
        if name not in names:
            continue
        if name == "oracle":
            out[name] = oracle_reference(base, layout, data, users, lookup)
        else:
            out[name] = history_word_reference(base, layout, data, kind, users, lookup, name)
    return out


def reference_prompts(names: Sequence[str], doc: Mapping[str, Any], data: TaskData, task: TaskSpec, codec: Any,
                      parts: Sequence[str] = ("validation", "test"),
                      only: frozenset[int] | None = None) -> dict[str, Reference]:
    """The requested references for a prompts document, over the users of `task`'s examples in `parts`
    (`only`: those of these users, `paprec eval --users`)."""
    users = {ex.user for part in parts for ex in task.examples(data, part)}  # type: ignore[arg-type]
    if only is not None:
        users &= only
    return build_references(names, tokens_of(dict(doc), False), layout_of(dict(doc)), data, task.kind, users, codec)


def comparisons(variants: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Paired comparisons `{name: (variant, baseline)}` for the evaluated variants.

    Every variant against `manual`, then `personalized` against each reference (is the search worth it).
    """
    present = list(variants)
    out = {f"{v}_vs_manual": (v, "manual") for v in present if v != "manual"}
    if "personalized" in present:
        out.update({f"personalized_vs_{r}": ("personalized", r) for r in REFERENCES if r in present})
    return out
