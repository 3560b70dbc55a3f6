"""Prompt words -> token ids and P5's whole-word ids, for both item/user id schemes.

`atomic`: every user and item has its own vocabulary entry, appended after the text vocabulary
(user u -> `user_offset + u - 1`, item i -> `item_offset + i - 1`); ranking is one softmax row.
`subword`: ids are written as text ("user_12", "873") and cut into pieces, as P5 does; ranking needs
a constrained decode over the pieces. Rating words are text in both schemes.

Whole-word ids: every token carries the 1-based number of the word it belongs to, EOS gets 0, numbers
are clipped to 511 (the whole-word embedding has 512 rows). P5 numbers "▁"-pieces instead; with a
SentencePiece tokenizer a whitespace word has exactly one, so the two agree (tests/test_p5_release.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, Protocol

import torch
from tokenizers import Tokenizer

from paprec_cli.errors import PaprecError
from paprec_cli.jsontypes import JSONObject
from paprec_cli.model.batching import Batch, collate
from paprec_cli.model.encoded import EncodedPrompt
from paprec_cli.model.tokenizer import (
    DEFAULT_VOCAB_SIZE,
    EOS,
    MARKER,
    PAD,
    UNK,
    read_model_tokenizer,
    read_tokenizer,
    tokenizer_sha256,
    train_tokenizer,
)
from paprec_cli.specs import Word

IdScheme = Literal["atomic", "subword"]
RatingReadout = Literal["expected", "decoded"]
ID_SCHEMES: tuple[IdScheme, ...] = ("atomic", "subword")
MAX_WORD_ID = 511
RATING_WORDS = ("1", "2", "3", "4", "5")
CODEC_FORMAT = 1


class DatasetLike(Protocol):
    """What the codec needs from a dataset (`paprec_cli.data.store.Dataset` fits)."""

    name: str

    @property
    def n_users(self) -> int: ...

    @property
    def n_items(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def item_attributes(self) -> list[list[str]]: ...


class PromptCodec:
    """Turns `Word`s into token ids; knows the id layout of users, items and ratings.

    Tokenization is cached per distinct word text: prompts repeat the same template words, so a
    batch costs one `Tokenizer.encode_batch(..., is_pretokenized=True)` over its new words plus dict
    look-ups. The cache is per codec instance and only grows with the dataset's vocabulary.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        id_scheme: IdScheme,
        n_users: int,
        n_items: int,
        *,
        dataset_name: str = "",
        dataset_fingerprint: str = "",
        tokenizer_kind: str = "trained",
        word_tokens: Iterable[int] | None = None,
    ) -> None:
        if id_scheme not in ID_SCHEMES:
            raise PaprecError(f"unknown id scheme '{id_scheme}'; known: {', '.join(ID_SCHEMES)}")
        self.tokenizer = tokenizer
        self.id_scheme: IdScheme = id_scheme
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.dataset_name = dataset_name
        self.dataset_fingerprint = dataset_fingerprint
        self.tokenizer_kind = tokenizer_kind
        #: Tokens that stand for a whole word of the training text (None: any vocabulary entry); BPE's
        #: intermediate merges such as "▁lipstic" never occur on their own and are no triggers.
        self.word_tokens = None if word_tokens is None else frozenset(int(t) for t in word_tokens)
        self.text_vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.pad_id = _special(tokenizer, PAD)
        self.eos_id = _special(tokenizer, EOS)
        unk = tokenizer.token_to_id(UNK)
        self.unk_id = -1 if unk is None else int(unk)
        self.decoder_start_id = self.pad_id  # T5's convention
        self.user_offset = self.text_vocab_size
        self.item_offset = self.text_vocab_size + self.n_users
        extra = self.n_users + self.n_items if id_scheme == "atomic" else 0
        self.vocab_size = self.text_vocab_size + extra
        self._cache: dict[str, tuple[int, ...]] = {}
        self._tokenizer_sha256: str | None = None
        #: Encoder tokens including EOS (None: no cut). P5 checkpoints: 512, as P5's `max_text_length`;
        #: a longer prompt keeps its first 511 tokens (the cut falls at the end of the text, as in P5).
        self.max_input_tokens: int | None = None
        #: How ratings are read (`Recommender.predict_rating`): "expected" (the expected digit, for models
        #: trained on "1".."5") or "decoded" (the greedy decoded number: P5 and one-decimal targets).
        self.rating_readout: RatingReadout = "expected"
        self._candidates: torch.Tensor | None = None
        self._item_sequences: torch.Tensor | None = None

    @property
    def tokenizer_sha256(self) -> str:
        """sha256 of the tokenizer in use (see `tokenizer.tokenizer_sha256`); recorded in every manifest."""
        if self._tokenizer_sha256 is None:
            self._tokenizer_sha256 = tokenizer_sha256(self.tokenizer)
        return self._tokenizer_sha256

    # ------------------------------------------------------------------ encoding
    def _word_pieces(self, texts: Iterable[str]) -> None:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if not new:
            return
        encodings = self.tokenizer.encode_batch([[t] for t in new], is_pretokenized=True, add_special_tokens=False)
        for text, enc in zip(new, encodings, strict=True):
            self._cache[text] = tuple(enc.ids) or ((self.unk_id,) if self.unk_id >= 0 else ())

    def _id_token(self, word: Word) -> int:
        if word.kind == "user":
            if not 1 <= word.index <= self.n_users:
                raise ValueError(f"user index {word.index} outside 1..{self.n_users}")
            return self.user_offset + word.index - 1
        if not 1 <= word.index <= self.n_items:
            raise ValueError(f"item index {word.index} outside 1..{self.n_items}")
        return self.item_offset + word.index - 1

    def _text_of(self, word: Word) -> str:
        if word.kind == "user":
            return f"user_{word.index}"
        if word.kind == "item":  # "873", or P5's rating wording "item_873" (one word)
            return word.text if word.text.startswith("item_") else str(word.index)
        return word.text

    def encode_batch(self, prompts: Sequence[Sequence[Word]]) -> list[EncodedPrompt]:
        """Encode many prompts; each word's tokens share its 1-based word number."""
        atomic = self.id_scheme == "atomic"
        self._word_pieces(
            self._text_of(w) for words in prompts for w in words if not (atomic and w.kind in ("user", "item"))
        )
        cache = self._cache
        out: list[EncodedPrompt] = []
        for words in prompts:
            ids: list[int] = []
            wids: list[int] = []
            for number, word in enumerate(words, start=1):
                if atomic and word.kind in ("user", "item"):
                    pieces: tuple[int, ...] = (self._id_token(word),)
                else:
                    pieces = cache[self._text_of(word)]
                ids.extend(pieces)
                wids.extend([min(number, MAX_WORD_ID)] * len(pieces))
            out.append(self._cut(EncodedPrompt(tuple(ids), tuple(wids))))
        return out

    def _cut(self, prompt: EncodedPrompt) -> EncodedPrompt:
        """`prompt` cut to `max_input_tokens - 1` tokens (room for EOS); unchanged without a limit."""
        limit = self.max_input_tokens
        if limit is None or len(prompt.token_ids) < limit:
            return prompt
        return EncodedPrompt(prompt.token_ids[: limit - 1], prompt.word_ids[: limit - 1])

    def encode(self, words: Sequence[Word]) -> EncodedPrompt:
        return self.encode_batch([words])[0]

    def target_ids(self, words: Sequence[Word]) -> list[int]:
        """What the decoder is trained to emit: the words' tokens, then EOS."""
        return [*self.encode(words).token_ids, self.eos_id]

    def assemble(self, prefix_ids: Sequence[int], argument: EncodedPrompt, suffix_ids: Sequence[int]) -> EncodedPrompt:
        """Trigger tokens around the fixed argument; each trigger token is its own word."""
        n_prefix = len(prefix_ids)
        arg_words = [w + n_prefix for w in argument.word_ids]
        last = max(arg_words, default=n_prefix)
        words = [*range(1, n_prefix + 1), *arg_words, *range(last + 1, last + 1 + len(suffix_ids))]
        return self._cut(
            EncodedPrompt(
                (*(int(t) for t in prefix_ids), *argument.token_ids, *(int(t) for t in suffix_ids)),
                tuple(min(w, MAX_WORD_ID) for w in words),
            )
        )

    def model_input(self, prompt: EncodedPrompt) -> dict[str, list[int]]:
        """The exact encoder input of one prompt, as `collate` builds its row without padding:
        `input_ids` (the prompt's tokens, then EOS) and `whole_word_ids` (their word numbers, then 0)."""
        return {
            "input_ids": [*(int(t) for t in prompt.token_ids), self.eos_id],
            "whole_word_ids": [*(int(w) for w in prompt.word_ids), 0],
        }

    def collate(self, prompts: Sequence[EncodedPrompt], device: torch.device | str | None = None) -> Batch:
        """`collate` with this codec's pad and EOS ids."""
        return collate(prompts, device, pad_id=self.pad_id, eos_id=self.eos_id)

    # ------------------------------------------------------------------ vocabulary views
    def token_text(self, token_id: int, raw: bool = False) -> str:
        """A token's text: user/item tokens as `user_12` / `873`; text tokens without the "▁" marker
        unless `raw` (so a whole-word trigger reads as the word itself)."""
        token_id = int(token_id)
        if self.id_scheme == "atomic" and token_id >= self.user_offset:
            if token_id < self.item_offset:
                return f"user_{token_id - self.user_offset + 1}"
            if token_id < self.vocab_size:
                return str(token_id - self.item_offset + 1)
        text = self.tokenizer.id_to_token(token_id)
        if text is None:
            raise KeyError(f"token id {token_id} outside the vocabulary (size {self.vocab_size})")
        return text if raw else text.removeprefix(MARKER)

    def token_id(self, text: str) -> int:
        """Inverse of `token_text`: a bare word maps to its whole-word ("▁word") token first."""
        for candidate in (text if text.startswith(MARKER) else MARKER + text, text):
            found = self.tokenizer.token_to_id(candidate)
            if found is not None:
                return int(found)
        raise PaprecError(f"'{text}' is not a single token of this model's vocabulary")

    def special_ids(self) -> set[int]:
        ids = {self.pad_id, self.eos_id, self.unk_id}
        ids.update(int(i) for i in self.tokenizer.get_added_tokens_decoder())
        return {i for i in ids if i >= 0}

    def candidate_vocab(self) -> torch.Tensor:
        """Whole-word tokens usable as triggers: "▁" + an alphabetic word of 2+ letters; never a
        special token, a sub-word continuation, a number, or the first piece of a user/item id."""
        if self._candidates is None:
            specials = self.special_ids()
            id_starts: set[int] = set()
            if self.id_scheme == "subword":
                self._word_pieces(["user_1", "1"])
                id_starts = {self._cache["user_1"][0], self._cache["1"][0]}
            keep = []
            for token_id in range(self.text_vocab_size):
                text = self.tokenizer.id_to_token(token_id) or ""
                word = text[len(MARKER) :]
                is_word = text.startswith(MARKER) and len(word) >= 2 and word.isalpha()
                allowed = token_id not in specials and token_id not in id_starts
                if is_word and allowed and (self.word_tokens is None or token_id in self.word_tokens):
                    keep.append(token_id)
            self._candidates = torch.tensor(keep, dtype=torch.long)
        return self._candidates.clone()

    def item_token_ids(self) -> torch.Tensor:
        """Atomic scheme: the token of item i is at position i - 1."""
        if self.id_scheme != "atomic":
            raise ValueError("item_token_ids() exists for the atomic id scheme only")
        return torch.arange(self.item_offset, self.item_offset + self.n_items, dtype=torch.long)

    def item_sequences(self) -> torch.Tensor:
        """[n_items, L] decoder target of every item (its tokens, EOS, then pad); row i - 1 is item i.

        For the atomic scheme every row is (item token, EOS)."""
        if self._item_sequences is None:
            if self.id_scheme == "atomic":
                items = self.item_token_ids()
                seqs = torch.stack([items, torch.full_like(items, self.eos_id)], dim=1)
            else:
                targets = [self.target_ids([Word.item(i)]) for i in range(1, self.n_items + 1)]
                width = max((len(t) for t in targets), default=1)
                seqs = torch.full((self.n_items, width), self.pad_id, dtype=torch.long)
                for row, target in enumerate(targets):
                    seqs[row, : len(target)] = torch.tensor(target)
                if len({tuple(t) for t in targets}) != len(targets):
                    raise PaprecError(
                        "two items encode to the same token sequence; the tokenizer cannot tell them apart"
                    )
            self._item_sequences = seqs
        return self._item_sequences

    def ratings_are_tokens(self) -> bool:
        """Whether the ratings "1".."5" are told apart by one token (`rating_tokens` works)."""
        try:
            self.rating_tokens()
        except PaprecError:
            return False
        return True

    def rating_tokens(self) -> tuple[list[int], list[int]]:
        """(prefix, ids): the tokens shared by all rating words "1".."5" (usually none) and then the
        token that tells them apart; `predict_rating` teacher-forces the prefix and reads the next step."""
        pieces = [self.encode([Word(r, "rating")]).token_ids for r in RATING_WORDS]
        prefix: list[int] = []
        for column in zip(*pieces, strict=False):
            if len(set(column)) != 1:
                break
            prefix.append(column[0])
        ids = [p[len(prefix)] if len(p) > len(prefix) else -1 for p in pieces]
        if -1 in ids or len(set(ids)) != len(ids):
            raise PaprecError("the tokenizer cannot tell the ratings 1..5 apart by one token")
        return prefix, ids

    # ------------------------------------------------------------------ persistence
    def describe(self) -> JSONObject:
        return {
            "format": CODEC_FORMAT,
            "id_scheme": self.id_scheme,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "text_vocab_size": self.text_vocab_size,
            "user_offset": self.user_offset,
            "item_offset": self.item_offset,
            "vocab_size": self.vocab_size,
            "pad_id": self.pad_id,
            "eos_id": self.eos_id,
            "unk_id": self.unk_id,
            "decoder_start_id": self.decoder_start_id,
            "max_word_id": MAX_WORD_ID,
            "tokenizer": self.tokenizer_kind,
            "tokenizer_sha256": self.tokenizer_sha256,
            "rating_readout": self.rating_readout,
            "dataset": {"name": self.dataset_name, "fingerprint": self.dataset_fingerprint},
            "word_tokens": None if self.word_tokens is None else sorted(self.word_tokens),
        }

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        from paprec_cli.paths import library_write

        with library_write(folder / "tokenizer.json"):
            self.tokenizer.save(str(folder / "tokenizer.json"))
        (folder / "codec.json").write_text(json.dumps(self.describe(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, fix: str | None = None) -> PromptCodec:
        """The codec saved in `folder` (`codec.json` + `tokenizer.json`); `fix` ends the error of a damaged
        `codec.json` (default: restore the file or retrain the model)."""
        folder = Path(folder)
        path = folder / "codec.json"
        if not path.exists():
            raise PaprecError(f"{path}: missing; a paprec model folder has codec.json next to tokenizer.json")
        from paprec_cli.model.records import model_fix, read_codec

        info = read_codec(folder, fix)  # types and ranges checked (records.CodecRecord)
        tokenizer = read_model_tokenizer(folder, info.text_vocab_size, fix or model_fix(folder),
                                         info.tokenizer_sha256)
        codec = cls(
            tokenizer,
            info.id_scheme,
            info.n_users,
            info.n_items,
            dataset_name=info.dataset.name,
            dataset_fingerprint=info.dataset.fingerprint,
            tokenizer_kind=info.tokenizer,
            word_tokens=info.word_tokens,
        )
        codec.rating_readout = info.rating_readout
        codec._tokenizer_sha256 = info.tokenizer_sha256  # checked by read_model_tokenizer: not hashed again
        if codec.vocab_size != info.vocab_size:
            raise PaprecError(
                f"{path}: vocab_size {info.vocab_size} does not match the tokenizer and id scheme "
                f"({codec.vocab_size}); {fix or model_fix(folder)}"
            )
        return codec


def _special(tokenizer: Tokenizer, token: str) -> int:
    found = tokenizer.token_to_id(token)
    if found is None:
        raise PaprecError(f"the tokenizer has no '{token}' token; expected a T5-style tokenizer")
    return int(found)


def tokenizer_corpus(dataset: DatasetLike, id_scheme: IdScheme, extra_texts: Iterable[str]) -> list[str]:
    """The text the tokenizer learns from: task wording, item attributes and titles, rating words,
    and (subword) every id written out so that each digit piece is in the vocabulary."""
    lines = [str(t) for t in extra_texts]
    for attrs in dataset.item_attributes:
        if attrs:
            lines.append(" ".join(attrs))
    lines.extend(_titles(dataset))
    # Rating words, often enough that "▁1".."▁5" become single tokens in any scheme.
    lines.extend([" ".join(RATING_WORDS + tuple(f"{r}.0" for r in RATING_WORDS))] * 50)
    if id_scheme == "subword":
        lines.extend(f"user_{u}" for u in range(1, dataset.n_users + 1))
        lines.extend(str(i) for i in range(1, dataset.n_items + 1))
    return lines


#: How often the words to keep whole are repeated as an extra corpus line, one try after another.
WORD_REPEATS = (64, 128, 256, 512)


def _prompt_words(texts: Iterable[str]) -> list[str]:
    """The alphabetic words of the template texts (the words `--init manual` turns into trigger tokens)."""
    return sorted({w for line in texts for w in line.split() if w.isalpha()})


def _split_words(tok: Tokenizer, words: Sequence[str]) -> list[str]:
    """The `words` that `tok` does not encode as one whole-word token."""
    if not words:
        return []
    encodings = tok.encode_batch([[w] for w in words], is_pretokenized=True, add_special_tokens=False)
    return [w for w, e in zip(words, encodings, strict=True) if len(e.ids) != 1]


def _train_keeping_words(corpus: list[str], words: Sequence[str], kept: Sequence[str],
                         vocab_size: int) -> tuple[Tokenizer, list[str]]:
    """(tokenizer, the corpus it learnt from) such that every template word in `words` is one whole-word token.

    A prompt word the tokenizer splits (ML-100K's titles left "most", "suitable" and "try" as pieces) cannot
    be a trigger token, so `paprec search --init manual` would start from the manual prompt without it. The
    first tokenizer is trained on `corpus` alone; datasets where no template word is split (synthetic, Beauty)
    get exactly that one. Otherwise the split words are added as one extra line repeated `WORD_REPEATS[i]`
    times, and a try is kept only if it splits fewer template words and no word of `words` or `kept` (the
    item attribute words: `history_word` and `oracle` need them whole) that the first try kept whole; words a
    try split are added to the next try's line. A vocabulary too small for all of them keeps the best try (the
    search names the words it could not use)."""
    tok = train_tokenizer(corpus, vocab_size)
    split = _split_words(tok, words)
    if not split:
        return tok, corpus
    whole = [w for w in sorted(set(words) | set(kept)) if w not in split]
    best, best_corpus, extra = tok, corpus, set(split)
    for repeats in WORD_REPEATS:
        extended = corpus + [" ".join(sorted(extra))] * repeats
        tok = train_tokenizer(extended, vocab_size)
        lost, still = _split_words(tok, whole), _split_words(tok, words)
        if not lost and len(still) < len(split):
            best, best_corpus, split = tok, extended, still
            if not still:
                break
        extra |= set(lost) | set(still)
    return best, best_corpus


def _titles(dataset: DatasetLike) -> list[str]:
    items = getattr(dataset, "items", None)
    try:
        return [str(t) for t in items["title"].to_list() if t] if items is not None else []
    except Exception:  # a dataset-like object without a title column
        return []


def build_codec(
    dataset: DatasetLike,
    id_scheme: IdScheme = "atomic",
    extra_texts: Iterable[str] = (),
    *,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    tokenizer: Tokenizer | Path | None = None,
) -> PromptCodec:
    """Train a tokenizer on the dataset's prompt text (or use `tokenizer`, e.g. a T5 tokenizer folder)
    and wrap it in a codec for `id_scheme`. The trainer passes every template's text in `extra_texts`."""
    kind = "trained"
    word_tokens: set[int] | None = None
    if tokenizer is None:
        extra = [str(t) for t in extra_texts]
        corpus = tokenizer_corpus(dataset, id_scheme, extra)
        attributes = _prompt_words(" ".join(attrs) for attrs in dataset.item_attributes if attrs)
        tok, corpus = _train_keeping_words(corpus, _prompt_words(extra), attributes, vocab_size)
        words = sorted({w for line in corpus for w in line.split()})
        word_tokens = {
            e.ids[0]
            for e in tok.encode_batch([[w] for w in words], is_pretokenized=True, add_special_tokens=False)
            if len(e.ids) == 1
        }
    elif isinstance(tokenizer, Tokenizer):
        tok, kind = tokenizer, "supplied"
    else:
        tok, kind = read_tokenizer(Path(tokenizer)), "supplied"
    return PromptCodec(
        tok,
        id_scheme,
        dataset.n_users,
        dataset.n_items,
        dataset_name=getattr(dataset, "name", ""),
        dataset_fingerprint=str(getattr(dataset, "fingerprint", "")),
        tokenizer_kind=kind,
        word_tokens=word_tokens,
    )
