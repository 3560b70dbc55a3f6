"""Auxiliary training families that tie vocabulary words to items ("words that steer").

A from-scratch RLM trained only on the P5 templates learns to ignore its instruction: every template,
and no instruction at all, gives the same metric, so a prompt search has nothing to find. Where items
carry attributes (synthetic category/brand words, Beauty brands and categories, MovieLens genres) we add
three families built from training interactions and item metadata only (never a validation or test
target):

- `item_words`: item -> its attribute words ("what kind of item is item 12 ?" -> "lipstick aurora");
- `word_item`: (user and) one attribute -> an item of the user's training history with that attribute
  ("recommend a lipstick item to user_3" -> 12), which ties words in the *prompt* to items in the answer;
- `item_next`: item -> the item that followed it in a training sequence (short, cheap prompts that
  shape item embeddings by co-occurrence; needs no attributes);
- `user_item`: user -> one of their training items (short prompts that teach each user's taste);
- `hint`: a sequential training example whose prompt also carries an attribute of the target item,
  appended, prepended or after the argument alone, so words placed where PAP-REC puts trigger tokens
  steer the ranking.
- `history_hint`: a sequential training example with the most frequent attribute of the items *in its own
  history* (never the target's) at the end of the prompt, where PAP-REC's personal token sits: a word
  that is right about the next item only as often as a user's habits are, so the model learns how much to
  trust a per-user word rather than reading every word as the target's attribute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paprec_cli.data.attributes import ranked_words
from paprec_cli.specs import Example, Template, Word

#: Phrasings of the auxiliary families (our wording; all used in training, none held out).
ITEM_WORDS_TEMPLATES = (
    "what kind of item is item {item} ?",
    "describe item {item} in a few words",
    "item {item} is a",
)
WORD_ITEM_TEMPLATES = (
    "recommend a {attr} item to {user}",
    "{user} wants something {attr} : which item ?",
    "which {attr} item would {user} choose ?",
    "name an item that is {attr}",
)
HINT_PHRASES = ("the user wants {attr}", "looking for {attr}")
USER_ITEM_TEMPLATES = (
    "recommend an item to {user}",
    "what would {user} buy ?",
)
ITEM_NEXT_TEMPLATES = (
    "what comes after item {item} ?",
    "users who bought item {item} next bought",
)

#: Template text the tokenizer should see (so that every word above is a whole-word token).
AUX_TEXTS = (*ITEM_WORDS_TEMPLATES, *WORD_ITEM_TEMPLATES, *HINT_PHRASES, *ITEM_NEXT_TEMPLATES, *USER_ITEM_TEMPLATES)


@dataclass(frozen=True)
class Pair:
    """One training sequence pair in words; `family` names the task or auxiliary family."""

    source: tuple[Word, ...]
    target: tuple[Word, ...]
    family: str
    #: Items that follow the target in the user's training sequence, nearest first, one word each
    #: (`Mixture.future`); trained as extra targets of the first target position (`loop.future_loss`).
    future: tuple[Word, ...] = ()
    #: The source lists candidate items the target is one of (direct): a learned seen bias
    #: (`RecLM.add_seen_bias`) is not trained on such rows, whose own items are the answer by construction.
    candidates: bool = False


def attribute_phrases(item_attributes: Sequence[Sequence[str]]) -> list[list[tuple[Word, ...]]]:
    """Per item index, each attribute as a tuple of text words (multi-word names stay together)."""
    out: list[list[tuple[Word, ...]]] = []
    for attrs in item_attributes:
        phrases = [tuple(Word(w) for w in str(a).split()) for a in attrs]
        out.append([p for p in phrases if p])
    return out


def has_attributes(phrases: Sequence[Sequence[tuple[Word, ...]]]) -> bool:
    """Attributes are worth training on when a reasonable share of items has them."""
    covered = sum(1 for p in phrases[1:] if p)
    return covered > 0 and covered >= 0.2 * max(len(phrases) - 1, 1)


def _fill(text: str, values: dict[str, Sequence[Word]]) -> tuple[Word, ...]:
    return tuple(Template("aux", text).render({k: tuple(v) for k, v in values.items()}))


def item_words_pairs(phrases: Sequence[Sequence[tuple[Word, ...]]], rng: np.random.Generator) -> list[Pair]:
    """Every item with attributes -> all its attribute words, one random phrasing each."""
    out: list[Pair] = []
    for item in range(1, len(phrases)):
        if not phrases[item]:
            continue
        text = ITEM_WORDS_TEMPLATES[int(rng.integers(len(ITEM_WORDS_TEMPLATES)))]
        target = tuple(w for phrase in phrases[item] for w in phrase)
        out.append(Pair(_fill(text, {"item": (Word.item(item),)}), target, "item_words"))
    return out


def word_item_pairs(
    train: Sequence[np.ndarray],
    phrases: Sequence[Sequence[tuple[Word, ...]]],
    n: int,
    rng: np.random.Generator,
) -> list[Pair]:
    """`n` draws of (user, training item, one of its attributes) -> that item."""
    users = np.asarray([u for u in range(1, len(train)) if len(train[u])], dtype=np.int64)
    out: list[Pair] = []
    if not len(users):
        return out
    for user in rng.choice(users, size=n):
        seq = train[int(user)]
        item = int(seq[int(rng.integers(len(seq)))])
        if not phrases[item]:
            continue
        attr = phrases[item][int(rng.integers(len(phrases[item])))]
        text = WORD_ITEM_TEMPLATES[int(rng.integers(len(WORD_ITEM_TEMPLATES)))]
        source = _fill(text, {"attr": attr, "user": (Word.user(int(user)),)})
        out.append(Pair(source, (Word.item(item),), "word_item"))
    return out


def hint_pair(
    example: Example,
    template: Template,
    target: Sequence[Word],
    phrases: Sequence[Sequence[tuple[Word, ...]]],
    rng: np.random.Generator,
) -> Pair | None:
    """A task example with an attribute of its target placed where trigger tokens go."""
    options = phrases[int(example.target)]
    if not options:
        return None
    attr = options[int(rng.integers(len(options)))]
    roll = rng.random()
    if roll < 0.2:  # argument only, hint after it (no instruction): the personal-token position
        source = (*example.argument, *attr)
    else:
        body = tuple(template.render(example.values))
        if roll < 0.6:
            source = (*body, *attr)
        elif roll < 0.8:
            source = (*attr, *body)
        else:
            phrase = HINT_PHRASES[int(rng.integers(len(HINT_PHRASES)))]
            source = (*body, *_fill(phrase, {"attr": attr}))
    return Pair(source, tuple(target), "hint", candidates=example.candidates is not None)


def history_hint_pair(
    example: Example,
    template: Template,
    target: Sequence[Word],
    attributes: Sequence[Sequence[str]],
    rng: np.random.Generator,
) -> Pair | None:
    """A task example with its history's most frequent attribute appended (None: no history attributes).

    The ranking is the `history_word` reference's (`paprec_cli.data.attributes.ranked_words`), over the
    example's own history items only (`attributes`: each item's attribute names)."""
    items = [w.index for w in example.values.get("history", ()) if w.kind == "item"]
    ranked = [a for a in ranked_words(items, attributes) if a.split()]
    if not ranked:
        return None
    best = tuple(Word(w) for w in ranked[0].split())
    # a quarter with the argument only (random-start searches keep no instruction words)
    body = tuple(example.argument) if rng.random() < 0.25 else tuple(template.render(example.values))
    return Pair((*body, *best), tuple(target), "history_hint", candidates=example.candidates is not None)


def item_next_pairs(train: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> list[Pair]:
    """`n` draws of consecutive training items (a, b) -> b, from a short prompt naming a."""
    starts = [(u, j) for u in range(1, len(train)) for j in range(len(train[u]) - 1)]
    out: list[Pair] = []
    if not starts or n <= 0:
        return out
    for row in rng.integers(len(starts), size=n).tolist():
        user, j = starts[row]
        a, b = int(train[user][j]), int(train[user][j + 1])
        text = ITEM_NEXT_TEMPLATES[int(rng.integers(len(ITEM_NEXT_TEMPLATES)))]
        out.append(Pair(_fill(text, {"item": (Word.item(a),)}), (Word.item(b),), "item_next"))
    return out


def user_item_pairs(train: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> list[Pair]:
    """`n` draws of (user, one of their training items) -> that item."""
    users = [u for u in range(1, len(train)) if len(train[u])]
    out: list[Pair] = []
    if not users or n <= 0:
        return out
    for row in rng.integers(len(users), size=n).tolist():
        user = users[row]
        item = int(train[user][int(rng.integers(len(train[user])))])
        text = USER_ITEM_TEMPLATES[int(rng.integers(len(USER_ITEM_TEMPLATES)))]
        out.append(Pair(_fill(text, {"user": (Word.user(user),)}), (Word.item(item),), "user_item"))
    return out
