"""Trie-constrained beam search over item ids, batched and with a KV cache.

The "trie" is implicit: each beam keeps a boolean row over all items (`alive[b, i]`: item i's token
sequence starts with the beam's prefix). The tokens allowed next are the alive items' next tokens,
gathered with one scatter per step, so the whole search is a fixed number of tensor steps (the
longest item sequence) with no Python per beam and no host-device sync. A finished beam (after EOS)
stays in the beam with a frozen score, so the final beams are the best complete sequences, each an
item of the dataset by construction: nothing is ever decoded into a string and repaired.

Scores are summed token log-probabilities (no length penalty), i.e. the joint probability of the id.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from paprec_cli.model.backbone import RecLM

NEG_INF = float("-inf")


def _step_logp(
    model: RecLM, tokens: torch.Tensor, enc: torch.Tensor, mask: torch.Tensor, cache: EncoderDecoderCache
) -> torch.Tensor:
    out = model.t5.decoder(
        input_ids=tokens, encoder_hidden_states=enc, encoder_attention_mask=mask, cache=cache, use_cache=True
    )
    return torch.log_softmax(model.project(out.last_hidden_state[:, -1]).float(), dim=-1)


def constrained_beam_search(
    model: RecLM,
    enc: torch.Tensor,
    mask: torch.Tensor,
    seqs: torch.Tensor,
    *,
    num_beams: int,
    start_id: int,
    eos_id: int,
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best `num_beams` items per example: (item indices [B, K] 1-based, 0 where no hypothesis is
    left; scores [B, K]), best first. `seqs` is [n_items, L]: each item's tokens, EOS, then pad."""
    batch = enc.shape[0]
    n_items, length = seqs.shape
    beams = min(num_beams, n_items)
    device = enc.device
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    start = torch.full((batch, 1), start_id, dtype=torch.long, device=device)
    logp = _step_logp(model, start, enc, mask, cache)  # [B, V]
    vocab = logp.shape[-1]
    first = seqs[:, 0]
    allowed0 = torch.zeros(vocab, dtype=torch.bool, device=device)
    allowed0[first] = True
    scores, tokens = logp.masked_fill(~allowed0, NEG_INF).topk(beams, dim=-1)  # [B, K]
    alive = first.view(1, 1, -1) == tokens.unsqueeze(-1)  # [B, K, n]
    alive &= torch.isfinite(scores).unsqueeze(-1)

    cache.batch_repeat_interleave(beams)
    enc_k = enc.repeat_interleave(beams, dim=0)
    mask_k = mask.repeat_interleave(beams, dim=0)
    offsets = (torch.arange(batch, device=device) * beams).unsqueeze(1)
    last = tokens.reshape(-1, 1)
    rows = batch * beams
    for t in range(1, length):
        logp = _step_logp(model, last, enc_k, mask_k, cache)  # [B*K, V]
        column = seqs[:, t]
        hit = torch.zeros(rows, vocab, device=device).scatter_reduce_(
            1, column.expand(rows, n_items), alive.reshape(rows, n_items).float(), reduce="amax"
        )
        step = logp.masked_fill(hit <= 0, NEG_INF)
        done = (last[:, 0] == eos_id) | (last[:, 0] == pad_id)
        frozen = torch.full_like(step, NEG_INF)
        frozen[:, pad_id] = 0.0
        step = torch.where(done.unsqueeze(1), frozen, step)
        total = (scores.reshape(rows, 1) + step).reshape(batch, beams * vocab)
        scores, flat = total.topk(beams, dim=-1)
        parent = torch.div(flat, vocab, rounding_mode="floor")
        tokens = flat - parent * vocab
        alive = alive.gather(1, parent.unsqueeze(-1).expand(batch, beams, n_items))
        alive &= column.view(1, 1, -1) == tokens.unsqueeze(-1)
        alive &= torch.isfinite(scores).unsqueeze(-1)
        # Beams of one example share the cross-attention cache, so only self-attention is reordered.
        cache.self_attention_cache.reorder_cache((offsets + parent).reshape(-1))  # type: ignore[arg-type]
        last = tokens.reshape(-1, 1)
    found = alive.any(dim=-1)
    items = torch.where(found, alive.float().argmax(dim=-1) + 1, torch.zeros_like(tokens))
    return items, scores.masked_fill(~found, NEG_INF)
