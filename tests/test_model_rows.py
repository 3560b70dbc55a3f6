"""Array-built prompt rows: the same tensors as `PromptCodec.assemble` + `collate`, token for token."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_helpers import codec_for, history_prompt

from paprec_cli.model import collate
from paprec_cli.model.codec import MAX_WORD_ID
from paprec_cli.model.encoded import EncodedPrompt
from paprec_cli.model.rows import ArgumentTable, EncodedRows, TriggerRows, as_rows
from paprec_cli.specs import Word


def _arguments(codec: object) -> list[EncodedPrompt]:
    rng = np.random.default_rng(0)
    out = [codec.encode([])]  # type: ignore[attr-defined]
    for length in (1, 3, 7, 20):
        items = rng.integers(1, 131, size=length).tolist()
        out.append(codec.encode(history_prompt(1 + length % 12, items, ("lipstick",))))  # type: ignore[attr-defined]
    long = [Word.item(1 + i % 130) for i in range(MAX_WORD_ID + 5)]  # word ids beyond the cap
    out.append(codec.encode(long))  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("ids", ["atomic", "subword"])
@pytest.mark.parametrize("n_prefix,n_after", [(0, 6), (2, 3), (3, 0)])
def test_trigger_rows_match_assemble_and_collate(ids: str, n_prefix: int, n_after: int) -> None:
    codec = codec_for(ids)
    arguments = _arguments(codec)
    table = ArgumentTable.of(arguments, codec.pad_id)
    rng = np.random.default_rng(1)
    n_rows = 40
    example = rng.integers(0, len(arguments), size=n_rows)
    triggers = rng.integers(2, codec.text_vocab_size, size=(n_rows, n_prefix + n_after))
    rows = TriggerRows(table, n_prefix, example, triggers, codec.pad_id, codec.eos_id)
    expected = [
        codec.assemble(list(t[:n_prefix]), arguments[e], list(t[n_prefix:]))
        for e, t in zip(example.tolist(), triggers.tolist(), strict=True)
    ]
    assert rows.lengths().tolist() == [len(p) for p in expected]
    order = rng.permutation(n_rows)[:25]
    got, want = rows.collate(order), collate([expected[i] for i in order], pad_id=codec.pad_id, eos_id=codec.eos_id)
    for name in ("input_ids", "attention_mask", "whole_word_ids"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    assert rows.prompt(int(order[3])) == expected[order[3]]
    sub = rows.subset(order[:5])
    assert torch.equal(sub.collate(np.arange(5)).input_ids, rows.collate(order[:5]).input_ids)
    assert int(got.whole_word_ids.max()) <= MAX_WORD_ID


def test_encoded_rows_wrap_a_list_and_rows_pass_through() -> None:
    codec = codec_for("atomic")
    prompts = [codec.encode(history_prompt(2, [3, 4], ("lipstick",))), codec.encode([Word.item(9)])]
    rows = as_rows(prompts, codec)
    assert isinstance(rows, EncodedRows) and rows.lengths().tolist() == [len(p) for p in prompts]
    assert torch.equal(rows.collate(np.array([1, 0])).input_ids, collate(prompts[::-1]).input_ids)
    table = ArgumentTable.of(prompts, codec.pad_id)
    trig = TriggerRows(table, 0, np.array([0]), np.array([[5]]), codec.pad_id, codec.eos_id)
    assert as_rows(trig, codec) is trig
    with pytest.raises(ValueError):
        trig.collate(np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError):
        TriggerRows(table, 2, np.array([0]), np.array([[5]]), codec.pad_id, codec.eos_id)
