"""transformers' `generate`: the constrained many-beam baseline, P5's unconstrained ranking, decoded ratings.

The baseline (`generate_items`) is the slow, straightforward comparison point for the benchmarks
(`--evaluator beam`). For subword ids the trie is a plain dict from token prefix to allowed next tokens,
consulted per beam per step by `prefix_allowed_tokens_fn`; every returned sequence is an item's, so mapping
back never fails. This constraint is paprec's: P5's and PAP-REC's evaluation code search without it and
drop the outputs that are not items (`generate_p5`, `--decoding p5`). Atomic ids (which the reference
never used) get one vectorised mask per step instead: the per-beam callback would turn every item row into
a Python list for every beam, which made the baseline look far slower on a GPU than a fair 20-beam search is.
"""

from __future__ import annotations

from typing import cast

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.modeling_outputs import BaseModelOutput

from paprec_cli.model.backbone import RecLM
from paprec_cli.model.codec import PromptCodec


def item_trie(codec: PromptCodec) -> tuple[dict[tuple[int, ...], list[int]], dict[tuple[int, ...], int]]:
    """(prefix -> allowed next tokens, full sequence without EOS -> item index)."""
    allowed: dict[tuple[int, ...], set[int]] = {}
    items: dict[tuple[int, ...], int] = {}
    for row, seq in enumerate(codec.item_sequences().tolist(), start=1):
        tokens = [t for t in seq if t != codec.pad_id]
        for depth in range(len(tokens)):
            allowed.setdefault(tuple(tokens[:depth]), set()).add(tokens[depth])
        items[tuple(tokens[:-1])] = row
    return {k: sorted(v) for k, v in allowed.items()}, items


class AtomicItemsOnly(LogitsProcessor):
    """Atomic ids: the first generated token must be an item row, every later one EOS (padding)."""

    def __init__(self, codec: PromptCodec) -> None:
        self.items = codec.item_token_ids()
        self.eos_id = codec.eos_id
        self._masks: tuple[torch.Tensor, torch.Tensor] | None = None

    def _build(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.full(scores.shape[-1:], float("-inf"), device=scores.device)
        first[self.items.to(scores.device)] = 0.0
        then = torch.full_like(first, float("-inf"))
        then[self.eos_id] = 0.0
        return first, then

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._masks is None:
            self._masks = self._build(scores)
        mask = self._masks[0] if input_ids.shape[1] == 1 else self._masks[1]
        return cast(torch.FloatTensor, scores + mask.to(scores.dtype))


class SeenItemsBias(LogitsProcessor):
    """The model's seen bias (`RecLM.add_seen_bias`) at the first generated token: transformers' `generate`
    runs T5's own head, which does not know it. Scores there are log-probabilities, so the bias shifts each
    row's scores by a constant more than it would the logits: the order within a row is the same."""

    def __init__(self, model: RecLM, prompt_ids: torch.Tensor, num_beams: int) -> None:
        self.bias = model.seen_logit_bias(prompt_ids, None).repeat_interleave(num_beams, dim=0)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] != 1:
            return scores
        return cast(torch.FloatTensor, scores + self.bias.to(scores.device, scores.dtype))


def generate_items(
    model: RecLM,
    codec: PromptCodec,
    enc: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    num_beams: int,
    trie: tuple[dict[tuple[int, ...], list[int]], dict[tuple[int, ...], int]] | None = None,
    prompt_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Top-k items per row by `num_beams`-beam generation; `trie` is `item_trie(codec)` (built if not given).
    `prompt_ids` [B, L]: the encoder input, needed for a model with a seen bias (atomic ids)."""
    allowed, items = trie if trie is not None else item_trie(codec)
    longest = max(len(p) for p in allowed) + 1
    pad = [codec.pad_id]

    def prefix_allowed(_: int, sent: torch.Tensor) -> list[int]:
        prefix = tuple(sent[1:].tolist())
        if prefix and prefix[-1] in (codec.eos_id, codec.pad_id):
            return pad
        return allowed.get(prefix, pad)

    config = GenerationConfig(
        num_beams=num_beams,
        num_return_sequences=k,
        max_new_tokens=longest,
        do_sample=False,
        early_stopping=True,
        decoder_start_token_id=codec.decoder_start_id,
        eos_token_id=codec.eos_id,
        pad_token_id=codec.pad_id,
    )
    if model.seen_bias is not None and prompt_ids is None:
        raise ValueError("a model with a seen bias needs the prompts' token ids (prompt_ids)")
    constraint: dict[str, object] = {"prefix_allowed_tokens_fn": prefix_allowed}
    if codec.id_scheme == "atomic":
        processors: list[LogitsProcessor] = [AtomicItemsOnly(codec)]
        if model.seen_bias is not None and prompt_ids is not None:
            processors.insert(0, SeenItemsBias(model, prompt_ids, num_beams))
        constraint = {"logits_processor": LogitsProcessorList(processors)}
    out = model.t5.generate(
        encoder_outputs=BaseModelOutput(last_hidden_state=enc),
        attention_mask=mask,
        generation_config=config,
        **constraint,
    )
    result = torch.zeros(enc.shape[0] * k, dtype=torch.long)
    for row, seq in enumerate(out.tolist()):
        tokens = seq[1:]
        end = tokens.index(codec.eos_id) if codec.eos_id in tokens else len(tokens)
        result[row] = items.get(tuple(tokens[:end]), 0)  # 0 only if generation stopped early (never with the trie)
    return result.view(enc.shape[0], k).to(enc.device)


#: Decoder tokens a rating string may take ("4.3" plus EOS is 3-5 pieces in T5's and paprec's vocabularies).
RATING_TOKENS = 8


def generate_texts(model: RecLM, codec: PromptCodec, enc: torch.Tensor, mask: torch.Tensor,
                   **options: int | float) -> list[str]:
    """transformers' `generate` from precomputed encoder states (no sampling; the codec's start, EOS and pad
    ids), each returned sequence decoded to text without special tokens. `options`: `GenerationConfig` fields."""
    config = GenerationConfig(do_sample=False, decoder_start_token_id=codec.decoder_start_id,
                              eos_token_id=codec.eos_id, pad_token_id=codec.pad_id, **options)
    out = model.t5.generate(
        encoder_outputs=BaseModelOutput(last_hidden_state=enc), attention_mask=mask, generation_config=config
    )
    return list(codec.tokenizer.decode_batch([row[1:] for row in out.tolist()], skip_special_tokens=True))


def decode_ratings(model: RecLM, codec: PromptCodec, enc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ratings read as P5 reads them: greedy decoding, the output text parsed as a number, [B] float32.

    An output that is not a number (or not finite) gives NaN: the metrics then show it (RMSE/MAE NaN, the
    search's surrogate -inf) instead of a substituted value."""
    texts = generate_texts(model, codec, enc, mask, num_beams=1, max_new_tokens=RATING_TOKENS)
    return torch.tensor([parse_rating(t) for t in texts], dtype=torch.float32, device=enc.device)


def parse_rating(text: str) -> float:
    """The number a decoded rating string holds ("4.3" -> 4.3), NaN when it is not one."""
    try:
        value = float(text.strip())
    except ValueError:
        return float("nan")
    return value if value == value and abs(value) != float("inf") else float("nan")


def generate_p5(
    model: RecLM, codec: PromptCodec, enc: torch.Tensor, mask: torch.Tensor, k: int, num_beams: int
) -> tuple[torch.Tensor, int, list[int]]:
    """P5's ranking: unconstrained `num_beams`-beam search returning `num_beams` sequences ordered by
    length-normalised log-probability (transformers' `length_penalty=1.0`), each decoded to text; a text
    that is not an item id of the dataset (1..n_items), or repeats one, is dropped. Returns ([B, k] item
    indices, 0 where fewer than k items survived; sequences generated; sequences dropped per row)."""
    longest = int(codec.item_sequences().shape[1]) + 2
    texts = generate_texts(model, codec, enc, mask, num_beams=num_beams, num_return_sequences=num_beams,
                           max_new_tokens=longest, length_penalty=1.0)
    result = torch.zeros(enc.shape[0], k, dtype=torch.long)
    dropped = [0] * enc.shape[0]
    for row in range(enc.shape[0]):
        kept: list[int] = []
        for text in texts[row * num_beams : (row + 1) * num_beams]:
            value = text.strip()
            index = int(value) if value.isdigit() else 0
            if not 1 <= index <= codec.n_items or index in kept:
                dropped[row] += 1
                continue
            kept.append(index)
        result[row, : min(k, len(kept))] = torch.tensor(kept[:k], dtype=torch.long)
    return result.to(enc.device), len(texts), dropped
