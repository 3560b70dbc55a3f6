"""The P5-style backbone: a stock `transformers` T5 plus P5's whole-word embedding.

The whole-word embedding (512 rows) is added to the token embeddings of the encoder input only, and
the sum goes in as `inputs_embeds`, so the T5 code is used as shipped. `embed` calls `t5.shared`
exactly once per forward (the decoder reads its inputs through its own tied `embed_tokens`), so a
forward hook on `model.t5.shared` sees exactly the encoder's token embeddings: the search captures
trigger-token gradients there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from paprec_cli.model.sizes import DEFAULT_DROPOUT

if TYPE_CHECKING:
    from paprec_cli.jsontypes import JSONObject

N_WHOLE_WORDS = 512


def attention_implementation() -> str:
    """SDPA where this transformers' T5 supports it (it folds the relative bias into the mask), else eager."""
    return "sdpa" if getattr(T5ForConditionalGeneration, "_supports_sdpa", False) else "eager"


def t5_config(
    dims: Mapping[str, Any], vocab_size: int, *, pad_id: int = 0, eos_id: int = 1, dropout: float | None = None
) -> T5Config:
    settings = {k: v for k, v in dims.items() if k != "dropout_rate"}
    rate = dropout if dropout is not None else float(dims.get("dropout_rate", DEFAULT_DROPOUT))
    settings.update(
        vocab_size=int(vocab_size),
        dropout_rate=rate,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        attn_implementation=attention_implementation(),
    )
    return T5Config(**settings)


def config_dims(config: T5Config) -> JSONObject:
    """The dims that rebuild `config` (what paprec's config.json records)."""
    return {
        "d_model": config.d_model,
        "num_layers": config.num_layers,
        "num_decoder_layers": config.num_decoder_layers,
        "num_heads": config.num_heads,
        "d_kv": config.d_kv,
        "d_ff": config.d_ff,
        "dropout_rate": config.dropout_rate,
        "feed_forward_proj": config.feed_forward_proj,
        "relative_attention_num_buckets": config.relative_attention_num_buckets,
        "relative_attention_max_distance": config.relative_attention_max_distance,
    }


class RecLM(nn.Module):
    """T5 encoder-decoder (`.t5`) with P5's whole-word embedding (`.whole_word`)."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.t5 = T5ForConditionalGeneration(config)
        self.whole_word = nn.Embedding(N_WHOLE_WORDS, config.d_model)
        #: Output rows of the atomic item tokens when they are untied from the input rows (`untie_items`).
        self.item_head: nn.Parameter | None = None
        self.item_offset = 0
        #: Learned logit bias of the item tokens the prompt itself lists, at the first decoding step
        #: (`add_seen_bias`); None: no such bias (T5's and P5's layout).
        self.seen_bias: nn.Parameter | None = None
        self.seen_items = (0, 0)

    def untie_items(self, item_offset: int, n_items: int) -> None:
        """Give the item tokens (vocabulary rows `item_offset .. item_offset + n_items - 1`) output rows of
        their own, [n_items, d], started as copies of their current (tied) rows. T5 ties the LM head to the
        input embedding, so a prompt item's own row is also the output row it scores highest with: a model
        that starts from co-occurrence rows ranks the items of the prompt first (issue #18: half of the
        top 10 on ML-100K, where nobody rates a movie twice). Text and user rows stay tied."""
        rows = self.t5.shared.weight.detach()[item_offset : item_offset + n_items].clone()
        if rows.shape[0] != n_items or n_items < 1:
            raise ValueError(f"item rows {item_offset}..{item_offset + n_items - 1} outside the vocabulary")
        self.item_head = nn.Parameter(rows)
        self.item_offset = int(item_offset)

    def set_dropout(self, rate: float) -> None:
        """Train with dropout `rate` from now on: every `nn.Dropout` of the T5 and the attention dropout T5 keeps
        as a float (`T5Attention.dropout`), as if the model had been built with `dropout_rate=rate`. A model
        started from a checkpoint (`paprec train --init`) trains with the run's dropout, not the checkpoint's."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout {rate}: expected 0 <= rate < 1")
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = rate
            elif isinstance(getattr(module, "dropout", None), float):
                setattr(module, "dropout", rate)  # noqa: B010  (a plain float attribute, e.g. T5Attention's)
        self.t5.config.dropout_rate = rate

    def add_seen_bias(self, item_offset: int, n_items: int) -> None:
        """Give the model one learned scalar, started at 0, added to the first decoding step's logit of every
        item token (vocabulary rows `item_offset .. item_offset + n_items - 1`) that appears in the encoder
        input: a repeat-or-explore prior (RepeatNet, Ren et al. 2019) in one number. Tied rows make the
        prompt's own items score highest (issue #18: on ML-100K, where nobody rates a movie twice, about half
        of the top 10 were items the user already had); the bias lets the data say how likely a repeat is.
        Atomic ids only (one token per item)."""
        if n_items < 1 or item_offset < 1 or item_offset + n_items > self.t5.config.vocab_size:
            raise ValueError(f"item rows {item_offset}..{item_offset + n_items - 1} outside the vocabulary")
        self.seen_bias = nn.Parameter(torch.zeros(1))
        self.seen_items = (int(item_offset), int(item_offset + n_items))

    def seen_rows_only(
        self,
        prompt_ids: torch.Tensor,
        first_targets: torch.Tensor | None = None,
        lists_candidates: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`prompt_ids` [B, L] with the rows the seen bias must leave alone blanked to padding (never biased):
        rows whose answer does not start with an item token (`first_targets` [B]: rating digits, attribute
        words, where lowering the listed items could only ever help, so the bias would learn "never repeat"
        from rows that say nothing about repeats), and rows that list candidates (`lists_candidates` [B] bool:
        the direct task, whose answer is one of its own listed items by construction). Training
        (`training.loop`) and scoring (`Recommender.nll`, `Recommender.rank_beam`) apply this same rule."""
        off = torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
        if first_targets is not None:
            off |= ~self._is_item(first_targets)
        if lists_candidates is not None:
            off |= lists_candidates.to(off.device)
        return prompt_ids.masked_fill(off[:, None], 0)

    def seen_logit_bias(self, prompt_ids: torch.Tensor, rows: torch.Tensor | slice | None) -> torch.Tensor:
        """[B, C] the seen bias for vocabulary columns `rows` (all when None) of prompts `prompt_ids` [B, L]:
        `seen_bias` where the column is an item token of that prompt, else 0. Needs `add_seen_bias`."""
        if self.seen_bias is None:
            raise ValueError("the model has no seen bias (add_seen_bias)")
        first, end = self.seen_items
        is_item = self._is_item(prompt_ids)
        counts = torch.zeros(prompt_ids.shape[0], end - first, dtype=torch.int32, device=prompt_ids.device)
        # other tokens add 0 at column 0: counting, unlike scatter_, cannot overwrite item 1's mark there
        counts.scatter_add_(1, (prompt_ids - first).masked_fill(~is_item, 0), is_item.to(torch.int32))
        seen = counts > 0  # [B, n_items]
        if not (isinstance(rows, slice) and rows.start == first and rows.stop == end and rows.step in (None, 1)):
            full = torch.zeros(prompt_ids.shape[0], self.t5.config.vocab_size, dtype=torch.bool,
                               device=prompt_ids.device)
            full[:, first:end] = seen
            seen = full if rows is None else full[:, rows]
        return seen * self.seen_bias

    def _is_item(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Where `token_ids` are item tokens of the seen bias (`add_seen_bias`'s rows), bool, same shape."""
        first, end = self.seen_items
        return (token_ids >= first) & (token_ids < end)

    def output_weight(self) -> torch.Tensor:
        """The LM head's weight [V, d]: the tied rows, with the item rows of `item_head` when untied."""
        weight = self.t5.lm_head.weight
        if self.item_head is None:
            return weight
        end = self.item_offset + self.item_head.shape[0]
        return torch.cat([weight[: self.item_offset], self.item_head.to(weight.dtype), weight[end:]])

    @property
    def config(self) -> T5Config:
        return self.t5.config

    def embed(self, input_ids: torch.Tensor, whole_word_ids: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings plus whole-word embeddings; without `whole_word_ids` the token embeddings only
        (as P5's and PAP-REC's evaluation code run the model)."""
        tokens = self.t5.shared(input_ids)
        return tokens if whole_word_ids is None else tokens + self.whole_word(whole_word_ids)

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, whole_word_ids: torch.Tensor | None
    ) -> torch.Tensor:
        """Encoder hidden states [B, S, d]."""
        out = self.t5.encoder(inputs_embeds=self.embed(input_ids, whole_word_ids), attention_mask=attention_mask)
        return out.last_hidden_state

    def project(
        self, hidden: torch.Tensor, rows: torch.Tensor | slice | None = None, prompt_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """LM-head logits of decoder states, optionally for some vocabulary rows only (ranking over
        items then skips the text and user rows). Matches `T5ForConditionalGeneration`'s head.

        `hidden` is [B, d] (the first decoding step) or [B, T, d] (steps 0..T-1). With a seen bias
        (`add_seen_bias`) and `prompt_ids` [B, L] (the encoder input), the first step's logits of the
        prompt's own item tokens get the bias; without `prompt_ids` they do not."""
        if self.t5.config.scale_decoder_outputs:
            hidden = hidden * (self.t5.config.d_model**-0.5)
        if self.item_head is not None and isinstance(rows, slice) and rows.start == self.item_offset \
                and rows.stop == self.item_offset + self.item_head.shape[0] and rows.step in (None, 1):
            logits = F.linear(hidden, self.item_head.to(hidden.dtype))  # ranking over all items
        else:
            weight = self.output_weight()
            logits = F.linear(hidden, weight if rows is None else weight[rows])
        if self.seen_bias is None or prompt_ids is None:
            return logits
        bias = self.seen_logit_bias(prompt_ids, rows).to(logits.dtype)
        if logits.dim() == 2:
            return logits + bias
        return torch.cat([logits[:, :1] + bias[:, None], logits[:, 1:]], dim=1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        whole_word_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        encoder_outputs: torch.Tensor | None = None,
        seen_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Seq2SeqLMOutput:
        """As T5's forward, except that `labels` (-100 for ignored positions) only supply the
        teacher-forced decoder inputs: the caller computes its own loss from the logits, so T5's
        internal cross-entropy (a second one over [B, T, vocab] per step) is never computed and `loss`
        stays None. `encoder_outputs` (hidden states from `encode`) skips the encoder. With a seen bias,
        the first step's logits of the items in `seen_ids` [B, L] (default: `input_ids`) get it; training
        passes `seen_rows_only(...)`: the rows the bias does not apply to blanked."""
        if encoder_outputs is None:
            encoder_outputs = self.encode(input_ids, attention_mask, whole_word_ids)
        if decoder_input_ids is None and labels is not None:
            decoder_input_ids = self.t5.prepare_decoder_input_ids_from_labels(labels=labels)
        if self.item_head is not None or self.seen_bias is not None:  # T5's own head has neither
            dec = self.t5.decoder(input_ids=decoder_input_ids, encoder_hidden_states=encoder_outputs,
                                  encoder_attention_mask=attention_mask, **kwargs)
            prompt = seen_ids if seen_ids is not None else input_ids
            return Seq2SeqLMOutput(logits=self.project(dec.last_hidden_state, prompt_ids=prompt))
        out: Seq2SeqLMOutput = self.t5(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_outputs),
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            **kwargs,
        )
        return out


def build_model(config: T5Config, seed: int, *, zero_whole_word: bool = False) -> RecLM:
    """A freshly initialised RecLM; seeding does not disturb the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RecLM(config)
    if zero_whole_word:
        nn.init.zeros_(model.whole_word.weight)
    return model
