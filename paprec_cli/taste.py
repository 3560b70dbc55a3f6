"""Do the personalized tokens recover each user's hidden taste?

Only datasets that store a `truth` table (user raw id -> taste words, e.g. `synthetic`) can answer this.
The figure is reported next to chance: the probability that the same number of tokens drawn uniformly
from the search's candidate vocabulary would hit one of the user's taste words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypedDict

from paprec_cli.data.store import Dataset

if TYPE_CHECKING:
    from paprec_cli.export import Document


def _taste_by_user(dataset: Dataset) -> dict[str, set[str]]:
    table = dataset.extra("truth")
    users, tastes = table["user"].to_list(), table["taste"].to_list()
    return {str(u): {str(w).lower() for w in (taste or [])} for u, taste in zip(users, tastes, strict=True)}


class TasteAgreement(TypedDict, total=False):
    """`taste_agreement` in `paprec eval --json` (shares in [0, 1]; None where nothing was counted)."""

    users: int
    agreement: float | None
    chance: float | None
    attribute_share: float
    agreement_given_attribute: float | None
    chance_given_attribute: float | None
    candidate_vocabulary: int
    attribute_words_in_vocabulary: int


def taste_agreement(doc: Document, dataset: Dataset, candidate_words: Iterable[str],
                    only: frozenset[int] | None = None) -> TasteAgreement | None:
    """Agreement of personal tokens with ground-truth taste, or None when the dataset has no truth.
    `only`: count these user indices alone (`paprec eval --users`); None: every user with personal tokens.

    - `agreement`: share of users with personal tokens where one of them is a taste word;
    - `chance`: the same share expected from uniform draws of as many tokens from the candidate vocabulary;
    - `attribute_share`: share of those users whose tokens include any item attribute word at all;
    - `agreement_given_attribute` vs `chance_given_attribute`: among users whose token is an attribute
      word, how often it is *their* taste word, against a uniform draw from the attribute words.
    """
    if "truth" not in dataset.manifest.get("extras", []):
        return None
    taste = _taste_by_user(dataset)
    vocabulary = {w.lower() for w in candidate_words}
    attributes = {a.lower() for attrs in dataset.item_attributes for a in attrs} & vocabulary
    users_raw: Mapping[str, str] = doc.get("users") or {}
    hits = attr_users = attr_hits = 0
    chance = chance_attr = 0.0
    counted = 0
    for user_idx, tokens in (doc.get("personal") or {}).items():
        if only is not None and int(user_idx) not in only:
            continue
        raw = users_raw.get(str(user_idx)) or dataset.user_raw_id(int(user_idx))
        wanted = taste.get(raw)
        if not wanted or not tokens:
            continue
        counted += 1
        words = {str(t["text"]).lower() for t in tokens}
        n = len(tokens)
        hits += bool(words & wanted)
        p_one = len(wanted & vocabulary) / max(len(vocabulary), 1)
        chance += 1 - (1 - p_one) ** n
        if words & attributes:
            attr_users += 1
            attr_hits += bool(words & wanted)
            chance_attr += len(wanted & attributes) / max(len(attributes), 1)
    if counted == 0:
        return {"users": 0, "agreement": None, "chance": None}
    return {
        "users": counted,
        "agreement": hits / counted,
        "chance": chance / counted,
        "attribute_share": attr_users / counted,
        "agreement_given_attribute": attr_hits / attr_users if attr_users else None,
        "chance_given_attribute": chance_attr / attr_users if attr_users else None,
        "candidate_vocabulary": len(vocabulary),
        "attribute_words_in_vocabulary": len(attributes),
    }
