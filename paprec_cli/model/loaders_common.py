"""What the Hugging Face and P5 loaders share: the codec for a T5 tokenizer and the vocabulary check."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from paprec_cli.errors import PaprecError
from paprec_cli.model.backbone import RecLM
from paprec_cli.model.codec import DatasetLike, IdScheme, PromptCodec
from paprec_cli.model.tokenizer import find_tokenizer, read_tokenizer
from paprec_cli.model.weights import TIED_T5_KEYS

#: Keys a T5/P5 checkpoint may lack: tied copies of `shared`, and our whole-word embedding (kept zero).
OPTIONAL_KEYS = frozenset({f"t5.{k}" for k in TIED_T5_KEYS} | {"whole_word.weight"})
#: T5 pads its embedding matrix to a multiple of 128 rows beyond the tokenizer (32100 -> 32128).
VOCAB_PADDING = 128


def t5_codec(
    where: Path,
    tokenizer: Path | Tokenizer | None,
    dataset: DatasetLike | None,
    id_scheme: IdScheme,
    beside: Path,
) -> PromptCodec:
    """The codec of a T5/P5 checkpoint: `tokenizer` (a `Tokenizer`, or a `tokenizer.json` /
    `spiece.model` file or folder), else the `tokenizer.json` or `spiece.model` found in the folder
    `beside` the weights. Errors: no dataset, no tokenizer found (naming `--tokenizer`)."""
    if dataset is None:
        raise PaprecError(f"{where}: loading a T5/P5 checkpoint needs the dataset it will rank (--dataset)")
    if tokenizer is None:
        found = find_tokenizer(beside)
        if found is None:
            raise PaprecError(
                f"{where}: no tokenizer.json or spiece.model in {beside}; pass the T5 tokenizer folder with --tokenizer"
            )
        tokenizer = found
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else read_tokenizer(Path(tokenizer))
    return PromptCodec(
        tok,
        id_scheme,
        dataset.n_users,
        dataset.n_items,
        dataset_name=getattr(dataset, "name", ""),
        dataset_fingerprint=str(getattr(dataset, "fingerprint", "")),
        tokenizer_kind="t5",
    )


def check_vocab(where: Path, rows: int, codec: PromptCodec) -> None:
    """The embedding must cover the tokenizer, allowing T5's padding rows."""
    text = codec.text_vocab_size
    if not text <= rows <= -(-text // VOCAB_PADDING) * VOCAB_PADDING:
        raise PaprecError(
            f"{where}: embedding has {rows} rows but the tokenizer has {text} tokens; "
            "the checkpoint and tokenizer do not belong together"
        )


#: Where a tied T5 checkpoint may keep its one embedding: transformers' T5 classes tie `shared` with the
#: encoder's and decoder's `embed_tokens` and (with `tie_word_embeddings`) `lm_head`, and load a checkpoint
#: that stores any of them (`T5ForConditionalGeneration._tied_weights_keys`).
TIED_EMBEDDING_KEYS = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")


def tie_embeddings(where: Path, state: dict[str, torch.Tensor], tie_word_embeddings: bool = True) -> None:
    """Give `state` its `shared.weight` from whichever tied key the checkpoint stores (in place).

    Every key of `TIED_EMBEDDING_KEYS` that is present must hold the same matrix: a head or embedding
    that differs is an untied model (T5 v1.1 style), refused as such, as is a config that says
    `tie_word_embeddings: false`. A state with none of the keys is not a T5 checkpoint.
    """
    present = [key for key in TIED_EMBEDDING_KEYS if key in state]
    if not present:
        copies = ", ".join(TIED_EMBEDDING_KEYS[1:])
        raise PaprecError(f"{where}: missing keys shared.weight (or a tied copy: {copies}); not a T5 checkpoint")
    if not tie_word_embeddings:
        raise PaprecError(
            f"{where}: config says tie_word_embeddings is false (untied head, T5 v1.1 style); unsupported"
        )
    reference = state[present[0]]
    for key in present[1:]:
        if state[key].shape != reference.shape or not torch.equal(state[key], reference):
            what = "head" if key == "lm_head.weight" else "embedding"
            raise PaprecError(
                f"{where}: {key} differs from {present[0]} (untied {what}, T5 v1.1 style); unsupported"
            )
    state.setdefault("shared.weight", reference)


def copy_whole_word(model: RecLM, whole: torch.Tensor | None, where: Path) -> None:
    """Use the checkpoint's whole-word embedding when it has one (else it stays zero)."""
    if whole is None:
        return
    expected = tuple(model.whole_word.weight.shape)
    if tuple(whole.shape) != expected:
        raise PaprecError(f"{where}: whole-word embedding has shape {tuple(whole.shape)}, expected {expected}")
    with torch.no_grad():
        model.whole_word.weight.copy_(whole)
