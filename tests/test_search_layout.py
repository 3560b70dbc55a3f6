"""Prompt layout, trigger positions, candidate vocabulary and the seeded initial prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paprec_cli.errors import PaprecError
from paprec_cli.search.layout import Layout, PromptBuilder, PromptTokens, check_positions
from paprec_cli.search.vocab import candidate_vocabulary, initial_tokens


class FakeCodec:
    """Words are ints already; `assemble` concatenates like the real codec."""

    words = {"alpha": 10, "beta": 11, "gamma": 12, "user_1": 99}

    def encode(self, words):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        return SimpleNamespace(token_ids=tuple(words), word_ids=tuple(range(1, len(words) + 1)))

    def assemble(self, prefix, argument, suffix):  # type: ignore[no-untyped-def]
        from types import SimpleNamespace

        ids = (*prefix, *argument.token_ids, *suffix)
        return SimpleNamespace(token_ids=ids, word_ids=tuple(range(1, len(ids) + 1)))

    def token_text(self, token: int) -> str:
        return f"w{token}"

    def token_id(self, text: str) -> int:
        if text not in self.words:
            raise PaprecError(f"'{text}' is not a single token")
        return self.words[text]

    def candidate_vocab(self) -> torch.Tensor:
        return torch.tensor([12, 10, 11, 13, 14])


def test_positions_point_at_the_triggers() -> None:
    layout = Layout(2, 3, 1)
    builder = PromptBuilder(FakeCodec(), layout, [[500, 501, 502], [600]])
    triggers = (1, 2, 3, 4, 5, 6)
    for index in range(2):
        prompt = builder.prompt(index, triggers)
        check_positions(prompt, builder.positions(index), triggers)
    assert builder.positions(1) == [0, 1, 3, 4, 5, 6]
    with pytest.raises(AssertionError):
        check_positions(builder.prompt(0, triggers), builder.positions(1), triggers)


def test_layout_names_and_validation() -> None:
    layout = Layout(1, 2, 1)
    assert (layout.n_shared, layout.n_triggers) == (3, 4)
    assert [layout.slot_name(s) for s in range(3)] == ["prefix[0]", "suffix[0]", "suffix[1]"]
    assert layout.as_json()["template"] == "[prefix] {argument} [suffix] [personal]"
    with pytest.raises(ValueError):
        Layout(0, -1, 1)


def test_prompt_tokens_per_user() -> None:
    tokens = PromptTokens((1, 2), (9,)).with_personal({5: (7,)}).with_shared(0, 3)
    assert tokens.triggers_for(5) == (3, 2, 7) and tokens.triggers_for(6) == (3, 2, 9)
    assert tokens.key() == ((3, 2), (9,), ((5, (7,)),))


def test_initial_tokens_are_seeded_draws_from_the_vocabulary() -> None:
    vocab = candidate_vocabulary(FakeCodec())
    assert vocab.tolist() == [10, 11, 12, 13, 14]
    a = initial_tokens(vocab, Layout(1, 5, 2), seed=4)
    assert a == initial_tokens(vocab, Layout(1, 5, 2), seed=4)
    assert len(a.shared) == 6 and len(a.personal_default) == 2 and not a.personal
    assert set(a.shared + a.personal_default) <= set(vocab.tolist())


def test_allow_list(tmp_path: Path) -> None:
    allow = tmp_path / "allow.txt"
    allow.write_text("gamma\n\n# comment\nalpha  # trailing comment\ngamma\n")
    assert candidate_vocabulary(FakeCodec(), allow).tolist() == [10, 12]
    allow.write_text("alpha\nbeta\ndelta\n")
    with pytest.raises(PaprecError, match=f"{allow}:3.*delta"):
        candidate_vocabulary(FakeCodec(), allow)
    allow.write_text("alpha\nuser_1\n")
    with pytest.raises(PaprecError, match=f"{allow}:2.*not usable as a trigger"):
        candidate_vocabulary(FakeCodec(), allow)
    allow.write_text("alpha\n")
    with pytest.raises(PaprecError, match="fewer than 2"):
        candidate_vocabulary(FakeCodec(), allow)
    with pytest.raises(PaprecError, match="no such file"):
        candidate_vocabulary(FakeCodec(), tmp_path / "missing.txt")
