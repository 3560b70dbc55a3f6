"""Item attributes counted over a user's history: the one ranking the `history_word` reference, the search's
history start and the `history_hint` training family share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def ranked_words(items: Sequence[int], attributes: Sequence[Sequence[str]]) -> list[str]:
    """Attributes of `items` (item indices into `attributes`), most frequent first, one count per item
    occurrence (an attribute repeated within one item counts once); ties: the latest last occurrence in
    `items`, then alphabetical."""
    counts: Counter[str] = Counter()
    last: dict[str, int] = {}
    for position, item in enumerate(items):
        for attribute in dict.fromkeys(str(a) for a in attributes[int(item)]):
            counts[attribute] += 1
            last[attribute] = position
    return sorted(counts, key=lambda a: (-counts[a], -last[a], a))
