"""Codec and tokenizer: id layouts, whole-word ids, trigger vocabulary, persistence, speed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from test_model_helpers import (
    TEMPLATES,
    WORDS,
    FakeDataset,
    codec_for,
    history_prompt,
    one_thread,  # noqa: F401  (autouse fixture)
    prompts,
    t5_style_tokenizer,
)

from paprec_cli.errors import PaprecError
from paprec_cli.model import EncodedPrompt, PromptCodec, build_codec, collate
from paprec_cli.model.codec import MAX_WORD_ID
from paprec_cli.specs import Word


def test_atomic_layout_one_token_per_user_and_item() -> None:
    codec = codec_for("atomic")
    assert codec.vocab_size == codec.text_vocab_size + 12 + 130
    assert (codec.pad_id, codec.eos_id, codec.decoder_start_id) == (0, 1, 0)
    enc = codec.encode([Word.user(3), Word.item(1), Word.item(130), Word("lipstick")])
    assert enc.token_ids[:3] == (codec.text_vocab_size + 2, codec.text_vocab_size + 12, codec.vocab_size - 1)
    assert enc.word_ids == (1, 2, 3, 4)
    assert [codec.token_text(t) for t in enc.token_ids] == ["user_3", "1", "130", "lipstick"]
    assert codec.item_token_ids().tolist() == list(range(codec.item_offset, codec.vocab_size))
    with pytest.raises(ValueError):
        codec.encode([Word.item(131)])


def test_subword_ids_split_into_shared_pieces_and_round_trip() -> None:
    codec = codec_for("subword")
    assert codec.vocab_size == codec.text_vocab_size
    enc = codec.encode([Word.user(12), Word.item(873 % 130 + 100)])
    assert len(enc.token_ids) >= 4  # "user_12" and a 3-digit id both take several pieces
    words = history_prompt(5, [17, 103, 4], ("lipstick",))
    ids = codec.encode(words).token_ids
    assert codec.tokenizer.decode(list(ids)) == " ".join(w.text for w in words)
    seqs = codec.item_sequences()
    assert seqs.shape[0] == 130 and (seqs == codec.eos_id).sum() == 130
    assert len({tuple(r) for r in seqs.tolist()}) == 130
    assert codec.target_ids([Word.item(7)]) == [t for t in seqs[6].tolist() if t != codec.pad_id]


@pytest.mark.parametrize("scheme", ["atomic", "subword"])
def test_whole_word_ids_follow_p5(scheme: str) -> None:
    codec = codec_for(scheme)
    words = [Word("Given"), Word("bought"), Word.user(11), Word.item(123), Word("tent")]
    enc = codec.encode(words)
    assert enc.word_ids[0] == 1 and enc.word_ids[-1] == 5
    assert sorted(set(enc.word_ids)) == [1, 2, 3, 4, 5]
    assert list(enc.word_ids) == sorted(enc.word_ids)  # every piece carries its own word's number
    assert enc.word_ids.count(2) > 1  # an unseen word splits, all pieces share its number
    batch = collate([enc, codec.encode(words[:2])])
    n = len(enc.token_ids)
    assert batch.input_ids[0, n] == codec.eos_id and batch.whole_word_ids[0, n] == 0
    assert batch.attention_mask[1].sum() == len(codec.encode(words[:2]).token_ids) + 1
    assert (batch.input_ids[1, batch.attention_mask[1] == 0] == codec.pad_id).all()
    assert (batch.whole_word_ids[1, batch.attention_mask[1] == 0] == 0).all()
    long = codec.encode([Word("tent")] * 600)
    assert max(long.word_ids) == MAX_WORD_ID


def test_encode_batch_equals_encode_and_assemble_numbers_triggers() -> None:
    codec = codec_for("subword")
    batch = prompts(8)
    assert codec.encode_batch(batch) == [codec.encode(p) for p in batch]
    arg = codec.encode([Word.user(2), Word.item(15)])
    out = codec.assemble([40, 41], arg, [42, 43, 44])
    assert out.token_ids == (40, 41, *arg.token_ids, 42, 43, 44)
    shifted = tuple(w + 2 for w in arg.word_ids)
    assert out.word_ids == (1, 2, *shifted, shifted[-1] + 1, shifted[-1] + 2, shifted[-1] + 3)
    assert codec.assemble([], arg, []) == arg


@pytest.mark.parametrize("scheme", ["atomic", "subword"])
def test_candidate_vocab_is_whole_words_only(scheme: str) -> None:
    codec = codec_for(scheme)
    cands = codec.candidate_vocab()
    texts = [codec.token_text(int(t), raw=True) for t in cands]
    assert all(t.startswith("▁") and t[1:].isalpha() and len(t) >= 3 for t in texts)
    assert set(WORDS) | {"aurora", "purchase", "history"} <= {t[1:] for t in texts}
    assert not set(cands.tolist()) & codec.special_ids()
    assert int(cands.max()) < codec.text_vocab_size  # no user/item tokens
    id_pieces = set(codec.encode([Word.user(1), Word.item(1), Word.item(12)]).token_ids)
    assert not set(cands.tolist()) & id_pieces
    # BPE's intermediate merges (e.g. "▁lipstic") never stand alone, so they are no triggers.
    assert all(len(codec.encode([Word(t[1:])]).token_ids) == 1 for t in texts)
    assert codec.token_id("lipstick") in cands.tolist()


def test_rating_tokens_are_distinct_single_tokens() -> None:
    for scheme in ("atomic", "subword"):
        prefix, ids = codec_for(scheme).rating_tokens()
        assert prefix == [] and len(set(ids)) == 5


def test_codec_save_load_round_trip_and_refuses_mismatch(tmp_path: Path) -> None:
    codec = codec_for("subword")
    codec.save(tmp_path)
    again = PromptCodec.load(tmp_path)
    assert again.describe() == codec.describe()
    assert again.encode_batch(prompts(5)) == codec.encode_batch(prompts(5))
    assert torch.equal(again.candidate_vocab(), codec.candidate_vocab())
    info = json.loads((tmp_path / "codec.json").read_text())
    info["text_vocab_size"] += 1
    (tmp_path / "codec.json").write_text(json.dumps(info))
    with pytest.raises(PaprecError, match="tokenizer.json: vocabulary size"):
        PromptCodec.load(tmp_path)


def test_t5_style_tokenizer_folder_works_for_subword(tmp_path: Path) -> None:
    folder = t5_style_tokenizer(tmp_path / "t5tok")
    codec = build_codec(FakeDataset(), "subword", tokenizer=folder)
    assert codec.tokenizer_kind == "supplied" and codec.word_tokens is None
    enc = codec.encode(history_prompt(3, [17, 120]))
    assert len(enc) > 8 and len(codec.candidate_vocab()) > 0
    assert codec.item_sequences().shape[0] == 130
    with pytest.raises(PaprecError, match="no tokenizer.json"):
        build_codec(FakeDataset(), "subword", tokenizer=tmp_path / "nowhere")


def test_build_codec_is_fast_on_a_synthetic_sized_dataset() -> None:
    ds = FakeDataset(n_users=600, n_items=400)
    started = time.perf_counter()
    codec = build_codec(ds, "subword", TEMPLATES)  # type: ignore[arg-type]
    built = time.perf_counter() - started
    many = [history_prompt(1 + u % 600, [1 + (u * j) % 400 for j in range(20)]) for u in range(2000)]
    started = time.perf_counter()
    encoded = codec.encode_batch(many)
    encoded_s = time.perf_counter() - started
    assert len(encoded) == 2000 and isinstance(encoded[0], EncodedPrompt)
    assert built < 5.0 and encoded_s < 5.0, (built, encoded_s)


def test_trained_tokenizer_keeps_every_template_word_whole() -> None:
    """Issue #14: ML-100K's titles left "most", "suitable" and "try" as sub-word pieces of paprec's own
    tokenizer, so `--init manual` started from a prompt without them. A dataset whose text crowds the
    template words out (seeded 7-letter title words, a small vocabulary) shows the same split on a
    plain BPE run; `build_codec` must still give every template word one whole-word token."""
    import numpy as np
    import polars as pl

    from paprec_cli.model.codec import _prompt_words, _split_words, tokenizer_corpus
    from paprec_cli.model.tokenizer import train_tokenizer

    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    dataset = FakeDataset()
    titles = [" ".join("".join(rng.choice(letters, 7)) for _ in range(3)) for _ in range(130)]
    dataset.items = pl.DataFrame({"title": titles})  # type: ignore[attr-defined]
    texts = ["Pick the most suitable item from the following list and recommend to {user} : {candidates}",
             "Here is the purchase history of {user} : {history} try to recommend the next item"]
    words = _prompt_words(texts)
    plain = train_tokenizer(tokenizer_corpus(dataset, "atomic", texts), 400)
    assert {"most", "suitable", "try"} <= set(_split_words(plain, words))  # the fault the fix is for
    codec = build_codec(dataset, "atomic", texts, vocab_size=400)  # type: ignore[arg-type]
    assert _split_words(codec.tokenizer, words) == []
    candidates = set(codec.candidate_vocab().tolist())
    assert all(codec.token_id(w) in candidates for w in words)
    attributes = sorted({w for attrs in dataset.item_attributes for w in attrs})
    assert _split_words(codec.tokenizer, attributes) == _split_words(plain, attributes) == []  # none lost


def test_tokenizer_unchanged_where_no_template_word_is_split() -> None:
    """The retry only runs when a word is split: datasets whose tokenizer already keeps them (synthetic,
    Beauty) get exactly the tokenizer of one plain training run, so their models are unchanged."""
    from paprec_cli.model.codec import tokenizer_corpus
    from paprec_cli.model.tokenizer import train_tokenizer

    dataset = FakeDataset()
    plain = train_tokenizer(tokenizer_corpus(dataset, "atomic", TEMPLATES), 4000)
    assert build_codec(dataset, "atomic", TEMPLATES).tokenizer.to_str() == plain.to_str()  # type: ignore[arg-type]
