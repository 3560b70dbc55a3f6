"""Train paprec's own tokenizer, or read a user-supplied T5 one.

Both use SentencePiece's word-start marker "▁", so a *whole-word token* (the search's trigger
candidates) is simply a token that starts with "▁". The trained tokenizer is a small BPE over the
dataset's prompt text; digit runs are cut into pieces of at most two digits (the first piece carries
the marker) so that sub-word ids such as "873" become "▁87" "3", shared across ids as in P5.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from paprec_cli.errors import PaprecError

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


def read_tokenizer(path: Path) -> Tokenizer:
    """A `tokenizer.json` file, or a folder holding one (e.g. a Hugging Face T5 tokenizer folder)."""
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.exists():
        hint = " (a SentencePiece-only folder needs converting: save it once with transformers' T5TokenizerFast)"
        raise PaprecError(f"{file}: no tokenizer.json found{hint if path.is_dir() else ''}")
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as err:  # tokenizers raises a bare Exception on malformed files
        raise PaprecError(f"{file}: not a valid tokenizer.json ({str(err).splitlines()[0][:120]})") from err
    for special in (PAD, EOS):
        if tokenizer.token_to_id(special) is None:
            raise PaprecError(f"{file}: tokenizer has no '{special}' token; expected a T5-style tokenizer")
    return tokenizer
