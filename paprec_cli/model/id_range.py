"""Which user and item ids a T5/P5 checkpoint can stand for, checked against a dataset before any work.

With subword ids a model reads an id as text ("user_12", "873"), so the checkpoint's range has two limits:

- the tokenizer: an id whose text has a piece the tokenizer cannot represent (`<unk>`) reads as another
  id or as nothing; the range ends before the first such user or item id;
- what the checkpoint was trained on: a released P5 checkpoint learnt the ids of P5's own dataset and
  nothing beyond it (item 12,102 means nothing to a model trained on Beauty's 12,101 items). A `.pth`
  carries no record of it, so paprec reads it from the release's file names, `<dataset>-<size>.pth`
  (`beauty-small.pth`, `sports-base.pth`, ...), and P5's dataset statistics (P5 paper, Table 1; the
  Beauty and Sports counts are those of `../shared/data`'s P5 files). A checkpoint named otherwise has
  only the tokenizer's limit.

A dataset whose largest user id (`n_users`) or item id (`n_items`, paprec's 1-based indices, which are
P5's ids under `--indexing sequential`) lies beyond the range is refused in one line (`check_id_range`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from paprec_cli.errors import PaprecError
from paprec_cli.jsontypes import JSONObject
from paprec_cli.model.codec import PromptCodec
from paprec_cli.specs import Word

#: P5's released datasets: (users, items) of the data each released checkpoint was trained on.
P5_RELEASE_RANGES: dict[str, tuple[int, int]] = {
    "beauty": (22363, 12101),
    "sports": (35598, 18357),
    "toys": (19412, 11924),
    "yelp": (30431, 20033),
}
_RELEASE_NAME = re.compile(r"^(beauty|sports|toys|yelp)-(small|base)$", re.IGNORECASE)


@dataclass(frozen=True)
class IdRange:
    """Largest user and item id a checkpoint can stand for (None: no limit known); `source` says why."""

    users: int | None
    items: int | None
    source: str

    def to_json(self) -> JSONObject:
        return {"users": self.users, "items": self.items, "source": self.source}

    def describe(self) -> str:
        def span(n: int | None) -> str:
            return "any id" if n is None else f"1..{n}"

        return f"users {span(self.users)}, items {span(self.items)} ({self.source})"


def release_range(path: Path) -> IdRange | None:
    """The range of a released P5 checkpoint, from its file name (`beauty-small.pth`); None otherwise."""
    match = _RELEASE_NAME.match(Path(path).stem)
    if match is None:
        return None
    family = match.group(1).lower()
    users, items = P5_RELEASE_RANGES[family]
    return IdRange(users, items, f"P5's released {family} checkpoint, read from the file name {Path(path).name}")


def tokenizer_range(codec: PromptCodec, n_users: int, n_items: int) -> IdRange:
    """The ids 1..n the tokenizer writes without `<unk>`, looked at up to `n_users` / `n_items`
    (None: all of those are representable). Subword codecs only; atomic ids have their own rows."""
    if codec.id_scheme != "subword":
        return IdRange(None, None, "atomic ids: one vocabulary row each")

    def first_unknown(words: list[Word]) -> int | None:
        for number, prompt in enumerate(codec.encode_batch([[w] for w in words]), start=1):
            if not prompt.token_ids or (codec.unk_id >= 0 and codec.unk_id in prompt.token_ids):
                return number
        return None

    bad_user = first_unknown([Word.user(u) for u in range(1, n_users + 1)])
    bad_item = first_unknown([Word.item(i) for i in range(1, n_items + 1)])
    return IdRange(
        None if bad_user is None else bad_user - 1,
        None if bad_item is None else bad_item - 1,
        "the tokenizer writes these ids without <unk>",
    )


def check_id_range(where: Path, codec: PromptCodec, dataset_name: str, n_users: int, n_items: int) -> IdRange:
    """The checkpoint's id range (`release_range`, else `tokenizer_range`); a dataset with a user or item id
    beyond it is refused with one line naming the dataset, its largest id and the range.

    Errors: `PaprecError` ("<where>: dataset 'beauty' has item ids up to 13000, but this checkpoint
    stands for items 1..12101 (...)")."""
    limits = [r for r in (release_range(where), tokenizer_range(codec, n_users, n_items)) if r is not None]
    for limit in limits:
        for kind, largest, bound in (("user", n_users, limit.users), ("item", n_items, limit.items)):
            if bound is not None and largest > bound:
                raise PaprecError(
                    f"{where}: dataset '{dataset_name}' has {kind} ids up to {largest}, but this checkpoint stands "
                    f"for {kind}s 1..{bound} only ({limit.source}); use a checkpoint trained on this dataset, or "
                    f"a dataset within its range (P5's own files, `--indexing sequential`)"
                )
    return limits[0]
