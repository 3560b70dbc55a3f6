"""Batched inference on a frozen RecLM: exact ranking, candidate scoring, rating, teacher-forced NLL.

Ranking over all items (`rank_all`):
- `atomic` ids: ONE decoder step from the start token, then a top-k over the item rows of the LM head
  (only the item rows are projected). Exact, and every output is an item by construction.
- `subword` ids: a trie-constrained beam search with a KV cache (`beam.py`); every output is an item
  of the dataset by construction.

Rating (`predict_rating`), as the model was trained (`codec.rating_readout`):
- "expected" (paprec's own models trained on integral ratings "1".."5"): the expected value of the
  rating under the model's first-step distribution restricted to the tokens of "1".."5" (softmax over
  those five logits), i.e. `sum_r r * p(r) / sum_r p(r)`. Smooth (good for the search's surrogate).
- "decoded" (P5 checkpoints, trained on one-decimal strings such as "4.3", and paprec models trained
  on non-integral ratings): the greedy decoded text read as a number, NaN when it is not one. Also used
  when the digits "1".."5" are not single tokens of the vocabulary.

Decoding (`decoding`): "paprec" (the default, above) or "p5", what P5's and PAP-REC's evaluation code
does: no whole-word embeddings in the encoder, ranking by transformers' unconstrained 20-beam search with
length-normalised scores (`length_penalty=1.0`), outputs that are not an item id of the dataset dropped
and counted (`p5_counts`), ratings read as the greedy decoded number. Candidate scoring (direct task)
stays teacher-forced, without whole-word embeddings. Subword ids only.

Pure inference runs under `torch.inference_mode()`, in eval mode (restored afterwards), with bf16
autocast on CUDA. `nll` keeps autograd on so the search can back-propagate to the input embeddings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from paprec_cli.errors import PaprecError
from paprec_cli.model.backbone import RecLM
from paprec_cli.model.batching import Batch, host_to_device
from paprec_cli.model.beam import ItemTrie, constrained_beam_search
from paprec_cli.model.codec import PromptCodec

#: Elements (rows x max(vocab, items)) one chunk of beam search or candidate scoring may touch: 128 MiB
#: of float32 logits on the CPU; 1 GiB on CUDA, where a chunk of a few hundred rows is mostly launch
#: overhead (a real P5 checkpoint's 32,100-token T5 vocabulary with 5 beams gives 209 rows under the CPU
#: budget; paprec's own subword vocabularies are far smaller).
DECODINGS = ("paprec", "p5")
#: P5's and PAP-REC's beam width (and sequences returned) when ranking all items.
P5_BEAMS = 20
ROW_BUDGET = 1 << 25
CUDA_ROW_BUDGET = 1 << 28
#: Decoder tokens per packed row when scoring sub-word candidates (see `_score_subword`).
PACK_TOKENS = 256


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Recommender:
    """Inference API used by search, eval and recommend; `model` must not be trained meanwhile."""

    def __init__(
        self, model: RecLM, codec: PromptCodec, device: torch.device | str | None = None, decoding: str = "paprec"
    ) -> None:
        if decoding not in DECODINGS:
            raise PaprecError(f"--decoding {decoding}: expected one of {', '.join(DECODINGS)}")
        if decoding == "p5" and codec.id_scheme != "subword":
            raise PaprecError("--decoding p5: needs a model with subword ids (a P5 checkpoint), not atomic ids")
        self.decoding = decoding
        #: --decoding p5: generated sequences, and those dropped because they are not an item id.
        self.p5_counts = {"generated": 0, "dropped": 0}
        #: --decoding p5: (sequences generated, sequences dropped) of each ranked prompt, in call order.
        self.p5_rows: list[tuple[int, int]] = []
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device)
        self.codec = codec
        self._item_seqs: torch.Tensor | None = None
        self._trie: ItemTrie | None = None
        self._baseline_trie: Any = None  # generate.item_trie(codec), built once for the beam baseline
        self._rating: tuple[tuple[int, ...], torch.Tensor] | None = None
        self._decoder_ids: dict[tuple[int, ...], torch.Tensor] = {}
        self.row_budget = CUDA_ROW_BUDGET if self.device.type == "cuda" else ROW_BUDGET

    # ------------------------------------------------------------------ plumbing
    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _eval(self, grad: bool = False) -> Iterator[None]:
        """Eval mode for the call. A model already in eval mode is left alone: switching walks every
        module, about 1 ms a call even for tiny, and the search calls this once per batch."""
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with contextlib.nullcontext() if grad else torch.inference_mode(), self.autocast():
                yield
        finally:
            if was_training:
                self.model.train()

    def item_sequences(self) -> torch.Tensor:
        if self._item_seqs is None:
            self._item_seqs = self.codec.item_sequences().to(self.device)
        return self._item_seqs

    def item_trie(self) -> ItemTrie:
        if self._trie is None:
            self._trie = ItemTrie.build(self.codec.item_sequences(), self.codec.pad_id).to(self.device)
        return self._trie

    def _encode(self, batch: Batch) -> tuple[Batch, torch.Tensor]:
        batch = batch.to(self.device)
        return batch, self.model.encode(batch.input_ids, batch.attention_mask, self._whole_word(batch))

    def _whole_word(self, batch: Batch) -> torch.Tensor | None:
        return None if self.decoding == "p5" else batch.whole_word_ids

    def _last_hidden(self, enc: torch.Tensor, mask: torch.Tensor, prefix: Sequence[int] = ()) -> torch.Tensor:
        """Decoder state after the start token (and a teacher-forced `prefix`), [B, d]."""
        key = tuple(int(t) for t in prefix)
        ids = self._decoder_ids.get(key)
        if ids is None:  # made once: a fresh host-to-device copy per batch would wait for the GPU
            ids = torch.tensor([self.codec.decoder_start_id, *key], dtype=torch.long, device=self.device)
            self._decoder_ids[key] = ids
        dec = self.model.t5.decoder(
            input_ids=ids.expand(enc.shape[0], -1),
            encoder_hidden_states=enc,
            encoder_attention_mask=mask,
            use_cache=False,
        )
        return dec.last_hidden_state[:, -1]

    # ------------------------------------------------------------------ training-style loss
    def nll(
        self, batch: Batch, targets: Sequence[Sequence[int]], lists_candidates: Sequence[bool] | None = None
    ) -> torch.Tensor:
        """Per-example mean token NLL of `targets` (token ids, usually ending with EOS) under teacher
        forcing, [B]; differentiable w.r.t. the input embeddings (hook `model.t5.shared`).
        `lists_candidates` [B]: rows whose prompt lists candidates (direct), which a seen bias leaves alone,
        as in training (`RecLM.seen_rows_only`)."""
        batch = batch.to(self.device)
        labels = _pad(targets, -100).to(self.device)
        decoder_in = labels.new_full(labels.shape, self.codec.pad_id)
        decoder_in[:, 0] = self.codec.decoder_start_id
        decoder_in[:, 1:] = labels[:, :-1].clamp(min=0).masked_fill(labels[:, :-1] < 0, self.codec.pad_id)
        with self._eval(grad=True):
            out = self.model(
                batch.input_ids,
                batch.attention_mask,
                self._whole_word(batch),
                decoder_input_ids=decoder_in,
                use_cache=False,
                **self._seen_ids(batch, labels[:, 0], lists_candidates),
            )
            logits = out.logits.float()
            # Over the last (contiguous) axis: 2.4x faster than classes on axis 1 of a transposed view on a CPU.
            token_nll = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="none"
            ).view(labels.shape)
        counts = (labels >= 0).sum(dim=1).clamp(min=1)
        return token_nll.sum(dim=1) / counts

    def _seen_ids(
        self, batch: Batch, first_targets: torch.Tensor | None, lists_candidates: Sequence[bool] | None
    ) -> dict[str, torch.Tensor]:
        """The forward's `seen_ids` for a model with a seen bias (the rows it applies to), else nothing."""
        if self.model.seen_bias is None:
            return {}
        flags = None if lists_candidates is None else torch.tensor(list(lists_candidates), dtype=torch.bool)
        return {"seen_ids": self.model.seen_rows_only(batch.input_ids, first_targets, flags)}

    # ------------------------------------------------------------------ ranking
    def rank_all(self, batch: Batch, k: int, num_beams: int | None = None) -> torch.Tensor:
        """Top-`k` items over all items, [B, k] 1-based indices on `self.device`, best first.
        `num_beams` (subword only; default k, at least k) widens the constrained beam search."""
        k = min(int(k), self.codec.n_items)
        with self._eval():
            batch, enc = self._encode(batch)
            if self.decoding == "p5":
                from paprec_cli.model.generate import generate_p5

                top, generated, dropped = generate_p5(
                    self.model, self.codec, enc, batch.attention_mask, k, max(P5_BEAMS, k)
                )
                self.p5_counts["generated"] += generated
                self.p5_counts["dropped"] += sum(dropped)
                per_row = generated // max(len(dropped), 1)
                self.p5_rows.extend((per_row, d) for d in dropped)
                return top
            if self.codec.id_scheme == "atomic":
                rows = slice(self.codec.item_offset, self.codec.item_offset + self.codec.n_items)
                logits = self.model.project(self._last_hidden(enc, batch.attention_mask), rows, batch.input_ids)
                return logits.float().topk(k, dim=-1).indices + 1
            beams = max(k, num_beams or k)
            return self._beam(enc, batch.attention_mask, beams)[0][:, :k]

    def _beam(self, enc: torch.Tensor, mask: torch.Tensor, beams: int) -> tuple[torch.Tensor, torch.Tensor]:
        trie = self.item_trie()
        vocab = self.model.t5.config.vocab_size
        chunk = max(1, self.row_budget // (beams * (vocab + trie.max_children * 4)))
        parts = [
            constrained_beam_search(
                self.model,
                enc[i : i + chunk],
                mask[i : i + chunk],
                trie,
                num_beams=beams,
                start_id=self.codec.decoder_start_id,
                pad_id=self.codec.pad_id,
            )
            for i in range(0, enc.shape[0], chunk)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def score_candidates(
        self, batch: Batch, candidates: torch.Tensor, lists_candidates: Sequence[bool] | None = None
    ) -> torch.Tensor:
        """Log-probability of each candidate item, [B, C] (float32).

        atomic: log p(item token) at the first step (the EOS that follows is not scored);
        subword: teacher-forced sum of the log-probs of the item's tokens and its EOS.
        `lists_candidates` [B]: rows whose prompt lists the candidates (direct), which a seen bias leaves
        alone, as in training (`RecLM.seen_rows_only`); None: every row ranks freely (sequential)."""
        with self._eval():
            batch, enc = self._encode(batch)
            candidates = host_to_device(candidates, self.device)
            if self.codec.id_scheme == "atomic":
                hidden = self._last_hidden(enc, batch.attention_mask)
                prompt_ids = self._seen_ids(batch, None, lists_candidates).get("seen_ids", batch.input_ids)
                logp = torch.log_softmax(self.model.project(hidden, prompt_ids=prompt_ids).float(), -1)
                return logp.gather(1, candidates + (self.codec.item_offset - 1))
            return self._score_subword(enc, batch.attention_mask, candidates)

    def _score_subword(self, enc: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probs of candidates' token sequences, packed: the candidates of an example
        are laid side by side in one decoder row ([start, tokens...] per candidate) with a
        block-diagonal causal mask, so the encoder states are projected to cross-attention keys and
        values once per row of `PACK_TOKENS`, not once per candidate. Exact: T5's self-attention bias
        is relative (unchanged inside a block) and cross-attention has no position bias."""
        n_batch, n_cand = candidates.shape
        seqs_all = self.item_sequences()
        length = int(seqs_all.shape[1])
        per_pack = max(1, min(n_cand, PACK_TOKENS // length))
        n_packs = -(-n_cand // per_pack)
        padded = torch.ones(n_batch, n_packs * per_pack, dtype=torch.long, device=self.device)
        padded[:, :n_cand] = candidates
        seqs = seqs_all[padded.reshape(-1) - 1].view(n_batch * n_packs, per_pack, length)
        decoder_in = torch.full_like(seqs, self.codec.pad_id)
        decoder_in[..., 0] = self.codec.decoder_start_id
        decoder_in[..., 1:] = seqs[..., :-1]
        decoder_in = decoder_in.view(n_batch * n_packs, per_pack * length)
        labels = seqs.masked_fill(seqs == self.codec.pad_id, -100).view(n_batch * n_packs, per_pack * length)
        block = torch.arange(per_pack * length, device=self.device) // length
        pos = torch.arange(per_pack * length, device=self.device)
        allowed = (block[:, None] == block[None, :]) & (pos[None, :] <= pos[:, None])
        block_mask = torch.zeros(allowed.shape, device=self.device).masked_fill(
            ~allowed, torch.finfo(torch.float32).min
        )
        block_mask = block_mask[None, None]
        vocab = self.model.t5.config.vocab_size
        rows = max(1, self.row_budget // (per_pack * length * vocab))
        out = []
        for i in range(0, decoder_in.shape[0], rows):
            index = torch.arange(i, min(i + rows, decoder_in.shape[0]), device=self.device)
            owner = torch.div(index, n_packs, rounding_mode="floor")
            dec = self.model.t5.decoder(
                input_ids=decoder_in[index],
                attention_mask=block_mask,
                encoder_hidden_states=enc[owner],
                encoder_attention_mask=mask[owner],
                use_cache=False,
            )
            logits = self.model.project(dec.last_hidden_state).float()
            nll = F.cross_entropy(logits.transpose(1, 2), labels[index], ignore_index=-100, reduction="none")
            out.append(-nll.view(len(index), per_pack, length).sum(dim=2))
        return torch.cat(out).view(n_batch, n_packs * per_pack)[:, :n_cand]

    def rank_beam(
        self, batch: Batch, k: int, num_beams: int = 20, lists_candidates: Sequence[bool] | None = None
    ) -> torch.Tensor:
        """The slow baseline: transformers' `generate` with `num_beams` beams, constrained to valid ids
        (a Python trie for subword ids, one mask per step for atomic ids), [B, k] 1-based indices.
        `lists_candidates` [B]: rows whose prompt lists candidates, which a seen bias leaves alone.

        The trie is built once per recommender, so the baseline's time is the beam search, not set-up."""
        from paprec_cli.model.generate import generate_items, item_trie

        if self._baseline_trie is None:
            self._baseline_trie = item_trie(self.codec)
        k = min(int(k), self.codec.n_items)
        with self._eval():
            batch, enc = self._encode(batch)
            return generate_items(
                self.model, self.codec, enc, batch.attention_mask, k, max(num_beams, k), self._baseline_trie,
                prompt_ids=self._seen_ids(batch, None, lists_candidates).get("seen_ids", batch.input_ids),
            )

    # ------------------------------------------------------------------ rating
    def rating_tokens(self) -> tuple[tuple[int, ...], torch.Tensor]:
        """(the tokens before the rating digit, the digits' token ids on the device)."""
        if self._rating is None:
            prefix, ids = self.codec.rating_tokens()
            self._rating = (tuple(int(t) for t in prefix), torch.tensor(ids, dtype=torch.long, device=self.device))
        return self._rating

    def predict_rating(self, batch: Batch) -> torch.Tensor:
        """[B] float32 ratings: the expected rating over the tokens "1".."5" at the first decoding step, or
        the greedy decoded number (`codec.rating_readout == "decoded"`, or digits that are not single tokens)."""
        if self.decoding == "p5" or self.codec.rating_readout == "decoded" or not self.codec.ratings_are_tokens():
            from paprec_cli.model.generate import decode_ratings

            with self._eval():
                batch, enc = self._encode(batch)
                return decode_ratings(self.model, self.codec, enc, batch.attention_mask)
        prefix, ids = self.rating_tokens()
        with self._eval():
            batch, enc = self._encode(batch)
            hidden = self._last_hidden(enc, batch.attention_mask, prefix)
            probs = torch.softmax(self.model.project(hidden, ids).float(), dim=-1)
            values = torch.arange(1, ids.numel() + 1, dtype=torch.float32, device=self.device)
            return (probs * values).sum(dim=-1)  # not `probs @ values`: autocast would make that bf16


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max((len(r) for r in rows), default=1)
    out = torch.full((len(rows), max(width, 1)), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            out[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return out
