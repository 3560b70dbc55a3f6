"""Shared builders for the model tests: a tiny dataset, prompts, a T5-style tokenizer, tiny models.

Imported by the other `test_model_*` modules (pytest puts `tests/` on sys.path); holds one sanity test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from paprec_cli.data.store import Dataset, import_dataset, load_dataset
from paprec_cli.model import PromptCodec, build_codec
from paprec_cli.paths import Home
from paprec_cli.specs import DatasetSpec, ImportOptions, RawDataset, Word

TEMPLATES = [
    "Given the following purchase history of {user} : {history} predict next possible item for the user ?",
    "What star rating do you think {user} will give item {item} ?",
    "Which item of the following to recommend for {user} ? {candidates}",
]
WORDS = ("lipstick", "tent", "novel", "guitar", "coffee")
#: Small enough to be fast, big enough that 3-digit item ids split into several sub-word pieces.
TINY_DIMS = {"d_model": 32, "num_layers": 1, "num_heads": 2, "d_ff": 64, "dropout_rate": 0.0}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP wake-up stalls
    (measured: 7 ms vs 20 us per tiny matmul under load). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class FakeDataset:
    """Duck-types the parts of `paprec_cli.data.store.Dataset` the model package reads."""

    name: str = "fake"
    n_users: int = 12
    n_items: int = 130
    fingerprint: str = "f00d"
    item_attributes: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.item_attributes:
            self.item_attributes = [[]] + [[WORDS[i % len(WORDS)], "aurora"] for i in range(1, self.n_items + 1)]


def history_prompt(user: int, items: list[int], extra: tuple[str, ...] = ()) -> list[Word]:
    words = [Word(t) for t in ["Given", "the", "following", "purchase", "history", "of"]]
    words.append(Word.user(user))
    words.extend(Word.item(i) for i in items)
    words.extend(Word(t) for t in ("predict", "next", *extra))
    return words


def prompts(n: int = 6, n_users: int = 12, n_items: int = 130) -> list[list[Word]]:
    return [
        history_prompt(1 + u % n_users, [1 + (7 * u + j) % n_items for j in range(1 + u % 4)], WORDS[u % 3 : u % 3 + 1])
        for u in range(n)
    ]


def codec_for(scheme: str, dataset: Any | None = None) -> PromptCodec:
    return build_codec(dataset or FakeDataset(), scheme, TEMPLATES)  # type: ignore[arg-type]


def t5_style_tokenizer(folder: Path, n: int = 300) -> Path:
    """A SentencePiece-like Unigram tokenizer in T5's layout (<pad>=0, </s>=1, <unk>=2, "▁" marker),
    saved as `folder/tokenizer.json`, as a T5 tokenizer folder would hold it."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    corpus = [t.replace("{", "").replace("}", "") for t in TEMPLATES] * 5
    corpus += [" ".join(WORDS)] * 5 + [" ".join(str(i) for i in range(1, n + 1))] + ["user_1 user_2 1 2 3 4 5"] * 5
    trainer = trainers.UnigramTrainer(
        vocab_size=250, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(corpus, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def _load_small(path: Path | None, options: ImportOptions) -> RawDataset:
    users, items = [], []
    for u in range(8):
        for j in range(5):
            users.append(f"u{u}")
            items.append(f"i{(3 * u + j) % 20}")
    n = len(users)
    interactions = pl.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": [float(1 + k % 5) for k in range(n)],
            "timestamp": list(range(n)),
            "order": list(range(n)),
        },
        schema={"user": pl.String, "item": pl.String, "rating": pl.Float64, "timestamp": pl.Int64, "order": pl.Int64},
    )
    meta = pl.DataFrame(
        {"item": [f"i{k}" for k in range(20)], "title": [f"Item {k}" for k in range(20)],
         "attributes": [[WORDS[k % 5]] for k in range(20)]},
        schema={"item": pl.String, "title": pl.String, "attributes": pl.List(pl.String)},
    )  # fmt: skip
    return RawDataset(interactions=interactions, items=meta)


SMALL_SPEC = DatasetSpec(name="small", description="model tests", files="none", load=_load_small, needs_files=False)


def imported_dataset(root: Path, name: str = "small", seed: int = 0) -> Dataset:
    """A real `Dataset` imported through the data store (so fingerprints are the real ones)."""
    home = Home(root)
    import_dataset(SMALL_SPEC, None, home, name=name, options=ImportOptions(seed=seed))
    return load_dataset(home, name)


def test_fake_dataset_matches_store_interface(tmp_path: Path) -> None:
    real = imported_dataset(tmp_path)
    for attr in ("name", "n_users", "n_items", "fingerprint", "item_attributes"):
        assert hasattr(real, attr) and hasattr(FakeDataset(), attr)
    codec = build_codec(real, "atomic", TEMPLATES)
    assert codec.n_items == real.n_items == 20 and codec.dataset_fingerprint == real.fingerprint
    assert "Item" in [codec.token_text(int(t)) for t in codec.candidate_vocab()]  # titles are in the corpus
