"""Train paprec's own tokenizer, or read a user-supplied T5 one (`tokenizer.json` or `spiece.model`).

Both use SentencePiece's word-start marker "▁", so a *whole-word token* (the search's trigger
candidates) is simply a token that starts with "▁". The trained tokenizer is a small BPE over the
dataset's prompt text; digit runs are cut into pieces of at most two digits (the first piece carries
the marker) so that sub-word ids such as "873" become "▁87" "3", shared across ids as in P5.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from paprec_cli.errors import PaprecError, first_line

MARKER = "▁"
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
#: T5's order, so pad = 0 and eos = 1 for paprec's and T5's tokenizers alike.
SPECIAL_TOKENS = (PAD, EOS, UNK)
DEFAULT_VOCAB_SIZE = 4000
_ALPHABET = list("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;!?'\"-_()/&+")


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> Tokenizer:
    """A BPE tokenizer with the "▁" word-start marker, trained on `texts` (fast: well under a second
    for thousands of lines)."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK, fuse_unk=True))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=MARKER, prepend_scheme="always"),
            pre_tokenizers.Split(Regex(f"{MARKER}?[0-9]{{1,2}}"), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=MARKER, prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=_ALPHABET,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


SPIECE = "spiece.model"
TOKENIZER_JSON = "tokenizer.json"


def find_tokenizer(folder: Path) -> Path | None:
    """The tokenizer file in `folder`: `tokenizer.json`, else SentencePiece's `spiece.model`, else None."""
    for name in (TOKENIZER_JSON, SPIECE):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def read_tokenizer(path: Path) -> Tokenizer:
    """A `tokenizer.json` file, a SentencePiece `spiece.model`, or a folder holding either one
    (`tokenizer.json` wins when both are there).

    `spiece.model` (the usual t5-small download) is converted through transformers' `T5Tokenizer`,
    exactly as `T5Tokenizer.from_pretrained(folder)` does: T5's 100 `<extra_id_N>` tokens are appended,
    `<pad>`=0, `</s>`=1, `<unk>`=2. The conversion needs the `sentencepiece` and `protobuf` packages
    (`pip install 'paprec[p5]'`). Errors: `PaprecError` naming the file and the fix."""
    path = Path(path)
    file = find_tokenizer(path) if path.is_dir() else path
    if file is None or not file.exists():
        where = path / TOKENIZER_JSON if path.is_dir() else path
        hint = f" or {SPIECE}" if path.is_dir() else ""
        raise PaprecError(f"{where}: no tokenizer.json{hint} found; pass the T5 tokenizer folder with --tokenizer")
    tokenizer = _from_spiece(file) if file.suffix == ".model" else _from_json(file)
    for special in (PAD, EOS):
        if tokenizer.token_to_id(special) is None:
            raise PaprecError(f"{file}: tokenizer has no '{special}' token; expected a T5-style tokenizer")
    return tokenizer


def read_model_tokenizer(folder: Path, text_vocab_size: int, fix: str, sha256: str | None = None) -> Tokenizer:
    """A paprec model folder's own `tokenizer.json`, checked: present, a valid tokenizer with T5's `<pad>` and
    `</s>`, of the size `codec.json` records (`text_vocab_size`, added tokens included) and, when `codec.json`
    records one, with its `tokenizer_sha256` (`sha256`: an edited vocabulary of the right size would otherwise
    map the prompts' words to other ids silently). Used by `PromptCodec.load` and by `paprec models list`
    (reading it is cheap: no model, no torch). Errors: a one-line `PaprecError` naming the file and ending
    with `fix` (restore the file, or retrain)."""
    file = Path(folder) / TOKENIZER_JSON
    if not file.is_file():
        raise PaprecError(f"{file}: missing; {fix}")
    try:
        tokenizer = _from_json(file)
        for special in (PAD, EOS):
            if tokenizer.token_to_id(special) is None:
                raise PaprecError(f"{file}: tokenizer has no '{special}' token")
    except PaprecError as err:
        raise PaprecError(f"{err}; {fix}") from None
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size != text_vocab_size:
        raise PaprecError(f"{file}: vocabulary size {size} does not match codec.json's text_vocab_size "
                          f"{text_vocab_size}; {fix}")
    if sha256 is not None and tokenizer_sha256(tokenizer) != sha256:
        raise PaprecError(f"{file}: not the tokenizer this model was trained with (its sha256 differs from "
                          f"codec.json's tokenizer_sha256: the file was edited or replaced); {fix}")
    return tokenizer


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    """sha256 of the tokenizer as `tokenizer.json` text (the exact vocabulary, merges and rules in use),
    the same whether it was read from `tokenizer.json`, converted from `spiece.model` or trained."""
    return hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()


def _from_json(file: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(file))
    except Exception as err:  # tokenizers raises a bare Exception on malformed files
        raise PaprecError(f"{file}: not a valid tokenizer.json ({first_line(err)})") from err


def _from_spiece(file: Path) -> Tokenizer:
    for module in ("sentencepiece", "google.protobuf"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            raise PaprecError(
                f"{file}: reading a SentencePiece model needs the packages sentencepiece and protobuf; "
                "install them with `pip install 'paprec[p5]'`"
            )
    from transformers import T5Tokenizer

    with tempfile.TemporaryDirectory(prefix="paprec-spiece-") as tmp:
        shutil.copyfile(file, Path(tmp) / SPIECE)  # from_pretrained reads a folder; the file keeps any name
        try:
            converted = T5Tokenizer.from_pretrained(tmp)
        except Exception as err:  # sentencepiece/transformers raise assorted errors on a bad file
            raise PaprecError(f"{file}: not a valid SentencePiece model ({first_line(err)})") from err
    return Tokenizer.from_str(converted.backend_tokenizer.to_str())
