"""`synthetic`: the embedded default dataset, generated from the seed with no files.

It is built so that a tiny model can learn it and so that *words matter*: every item carries a
category word and a brand word; every user has a hidden taste (one category word, sometimes two) that
drives most choices. The taste is stored as the `truth` extra table (user, taste) and never shown to a
model, so later steps can check whether personalized prompt tokens recover it.

Generative story, per user and step (after the first, which skips the transition branch):
- with probability `transition` the next item is a likely successor of the previous one (each item has
  three successors, mostly in its own category: the sequential signal);
- else with probability `taste` (given no transition) an item of the user's taste category, drawn by
  popularity (the personal signal);
- else an item drawn by global popularity (a Zipf-like skew: the popularity signal).
Items a user already has are redrawn a few times, so repeats are rare but possible. Ratings are 1-5,
higher for taste matches; timestamps strictly increase per user.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from paprec_cli.errors import PaprecError
from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset
from paprec_datasets.common import float_option, int_option, take_options

#: Category words: real, distinct, single English words (one per category).
CATEGORY_WORDS = (
    "lipstick", "tent", "novel", "guitar", "coffee", "sneakers", "puzzle", "candle", "blender", "backpack",
    "perfume", "keyboard", "yoga", "bicycle", "teapot", "lantern", "scarf", "camera", "paint", "garden",
    "chess", "violin", "kayak", "telescope", "pottery", "sunglasses", "wallet", "skateboard", "aquarium",
    "hammock", "cookbook", "drone", "umbrella", "saddle", "fishing", "knitting", "poster", "headphones",
    "vitamins", "shampoo",
)  # fmt: skip
#: Brand-like words: real words, disjoint from the categories.
BRAND_WORDS = (
    "aurora", "cedar", "falcon", "harbor", "maple", "nimbus", "orchid", "pioneer", "quartz", "raven",
    "sierra", "tundra", "vertex", "willow", "zephyr", "atlas", "beacon", "cobalt", "ember", "juniper",
    "meadow", "onyx", "prairie", "summit", "tidal", "velvet", "acorn", "bramble", "canyon", "dune",
)  # fmt: skip

DEFAULTS = {
    "users": "600",
    "items": "400",
    "categories": "12",
    "brands": "16",
    "length": "12",  # mean interactions per user (minimum 5)
    "taste": "0.75",  # P(taste category | no transition step)
    "transition": "0.3",  # P(successor of the previous item)
    "second_taste": "0.3",  # share of users with a second taste word
}
N_SUCCESSORS = 3
MIN_LENGTH = 5
DAY = 86_400
START = 1_600_000_000  # 2020-09-13, a fixed epoch so data does not depend on the clock


def load(path: Path | None, options: ImportOptions) -> RawDataset:
    if path is not None:
        raise PaprecError("dataset 'synthetic' is generated from --seed and takes no --from; drop --from")
    values = take_options(options, "synthetic", DEFAULTS)
    params = {
        "users": int_option(values, "users", 10),
        "items": int_option(values, "items", 20),
        "categories": int_option(values, "categories", 2, len(CATEGORY_WORDS)),
        "brands": int_option(values, "brands", 1, len(BRAND_WORDS)),
        "length": int_option(values, "length", MIN_LENGTH),
    }
    if params["items"] < 2 * params["categories"]:
        raise PaprecError("--option items must be at least twice --option categories (two items per category)")
    return generate(
        seed=options.seed,
        **params,
        taste=float_option(values, "taste", 0.0, 1.0),
        transition=float_option(values, "transition", 0.0, 1.0),
        second_taste=float_option(values, "second_taste", 0.0, 1.0),
    )


def generate(
    *,
    seed: int,
    users: int,
    items: int,
    categories: int,
    brands: int,
    length: int,
    taste: float,
    transition: float,
    second_taste: float,
) -> RawDataset:
    """Generate the dataset; pure function of its arguments."""
    rng = np.random.default_rng([seed, 20240517])
    cat_words = list(CATEGORY_WORDS[:categories])
    brand_words = list(BRAND_WORDS[:brands])

    item_cat = rng.permutation(np.arange(items) % categories)
    # Each category favours a few brands, so brand words carry some category signal too.
    cat_brands = [rng.choice(brands, size=min(3, brands), replace=False) for _ in range(categories)]
    item_brand = np.array([rng.choice(cat_brands[c]) for c in item_cat])
    popularity = 1.0 / np.power(rng.permutation(items) + 1.0, 0.8)
    quality = rng.normal(0.0, 0.4, size=items)
    members = [np.flatnonzero(item_cat == c) for c in range(categories)]
    member_p = [popularity[m] / popularity[m].sum() for m in members]
    global_p = popularity / popularity.sum()
    successors = np.empty((items, N_SUCCESSORS), dtype=np.int64)
    for i in range(items):
        same = members[item_cat[i]]
        same = same[same != i]
        for k in range(N_SUCCESSORS):
            pool = same if rng.random() < 0.8 else np.arange(items)
            successors[i, k] = rng.choice(pool)

    # Tastes: categories drawn with mild skew so some tastes are common and some rare.
    cat_weight = rng.dirichlet(np.full(categories, 3.0))
    user_rows: list[tuple[str, str, float, int, int]] = []
    truth_users: list[str] = []
    truth_taste: list[list[str]] = []
    order = 0
    for u in range(users):
        raw_user = f"u{u + 1}"
        first = int(rng.choice(categories, p=cat_weight))
        tastes = [first]
        if rng.random() < second_taste:
            others = [c for c in range(categories) if c != first]
            tastes.append(int(rng.choice(others)))
        truth_users.append(raw_user)
        truth_taste.append([cat_words[c] for c in tastes])
        bias = rng.normal(0.0, 0.3)
        n = MIN_LENGTH + int(rng.poisson(max(length - MIN_LENGTH, 0)))
        stamp = START + int(rng.integers(0, 365 * DAY))
        seen: set[int] = set()
        prev = -1
        for _ in range(n):
            item = -1
            for _attempt in range(6):
                r = rng.random()
                if prev >= 0 and r < transition:
                    item = int(rng.choice(successors[prev]))
                elif rng.random() < taste:
                    c = tastes[0] if len(tastes) == 1 or rng.random() < 0.7 else tastes[1]
                    item = int(rng.choice(members[c], p=member_p[c]))
                else:
                    item = int(rng.choice(items, p=global_p))
                if item not in seen:
                    break
            seen.add(item)
            match = item_cat[item] in tastes
            score = 3.0 + (1.3 if match else -0.4) + quality[item] + bias + rng.normal(0.0, 0.5)
            rating = float(np.clip(np.rint(score), 1, 5))
            stamp += int(rng.integers(3_600, 10 * DAY))
            user_rows.append((raw_user, f"i{item + 1}", rating, stamp, order))
            order += 1
            prev = item

    interactions = pl.DataFrame(
        user_rows,
        schema={"user": pl.String, "item": pl.String, "rating": pl.Float64, "timestamp": pl.Int64, "order": pl.Int64},
        orient="row",
    )
    titles = [f"{brand_words[item_brand[i]]} {cat_words[item_cat[i]]} {i + 1}" for i in range(items)]
    item_table = pl.DataFrame(
        {
            "item": [f"i{i + 1}" for i in range(items)],
            "title": titles,
            "attributes": [[cat_words[item_cat[i]], brand_words[item_brand[i]]] for i in range(items)],
        },
        schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)},
    )
    truth = pl.DataFrame(
        {"user": truth_users, "taste": truth_taste}, schema={"user": pl.String, "taste": pl.List(pl.String)}
    )
    notes = {
        "generator": "paprec_datasets.synthetic v1",
        "parameters": {
            "users": users, "items": items, "categories": categories, "brands": brands, "length": length,
            "taste": taste, "transition": transition, "second_taste": second_taste,
        },
        "attributes": "each item: [category word, brand word]; truth table: each user's taste words",
    }  # fmt: skip
    return RawDataset(interactions, item_table, sources=[], extras={"truth": truth}, notes=notes)


SPEC = DatasetSpec(
    name="synthetic",
    description="Generated from --seed, no files: items with category/brand words, users with a hidden taste",
    files="nothing (generated; sizes via --option users=N items=N categories=N brands=N length=N)",
    load=load,
    needs_files=False,
)
