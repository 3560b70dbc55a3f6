"""Trie-constrained beam search over item ids, batched and with a KV cache.

The prefix trie of all items' token sequences (each ending with EOS) is flattened into tensors
(children of a node are a contiguous slice of an edge list), so one search step is a fixed set of
gathers over `beams x max_children` and one top-k: no Python per beam and no host-device sync inside
the loop, which runs a fixed number of steps (the longest item sequence). A finished beam (after EOS)
stays in the beam with a frozen score, so the final beams are the best complete sequences. Every
result is an item of the dataset by construction: nothing is decoded into a string and repaired.

Scores are summed token log-probabilities (no length penalty), i.e. the joint probability of the id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from paprec_cli.model.backbone import RecLM

NEG_INF = float("-inf")


@dataclass(frozen=True)
class ItemTrie:
    """Node 0 is the root; `node_item[v]` is the item whose sequence (with EOS) ends at v, else 0."""

    child_start: torch.Tensor  # [nodes]
    child_count: torch.Tensor  # [nodes]
    child_token: torch.Tensor  # [edges]
    child_node: torch.Tensor  # [edges]
    node_item: torch.Tensor  # [nodes]
    root_token: torch.Tensor  # [R] the root's children, kept apart so the first step needs no host sync
    root_node: torch.Tensor  # [R]
    max_children: int  # over non-root nodes (the root is expanded once, at the first step)
    depth: int  # longest sequence, EOS included

    @classmethod
    def build(cls, seqs: torch.Tensor, pad_id: int) -> ItemTrie:
        """From [n_items, L] rows (tokens, EOS, pad); row i - 1 is item i."""
        children: list[dict[int, int]] = [{}]
        items = [0]
        for row, seq in enumerate(seqs.tolist(), start=1):
            node = 0
            for token in seq:
                if token == pad_id:
                    break
                nxt = children[node].get(token)
                if nxt is None:
                    nxt = len(children)
                    children[node][token] = nxt
                    children.append({})
                    items.append(0)
                node = nxt
            items[node] = row
        starts: list[int] = []
        counts: list[int] = []
        tokens: list[int] = []
        nodes: list[int] = []
        for kids in children:
            starts.append(len(tokens))
            counts.append(len(kids))
            tokens.extend(kids.keys())
            nodes.extend(kids.values())
        widest = max(counts[1:], default=1)
        return cls(
            torch.tensor(starts),
            torch.tensor(counts),
            torch.tensor(tokens),
            torch.tensor(nodes),
            torch.tensor(items),
            torch.tensor(list(children[0].keys())),
            torch.tensor(list(children[0].values())),
            max(widest, 1),
            int((seqs != pad_id).sum(dim=1).max()),
        )

    def to(self, device: torch.device) -> ItemTrie:
        return ItemTrie(
            self.child_start.to(device),
            self.child_count.to(device),
            self.child_token.to(device),
            self.child_node.to(device),
            self.node_item.to(device),
            self.root_token.to(device),
            self.root_node.to(device),
            self.max_children,
            self.depth,
        )


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
    trie: ItemTrie,
    *,
    num_beams: int,
    start_id: int,
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best `num_beams` items per example: (item indices [B, K] 1-based, 0 where no hypothesis is
    left; scores [B, K]), best first."""
    batch, device = enc.shape[0], enc.device
    beams = num_beams
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    start = torch.full((batch, 1), start_id, dtype=torch.long, device=device)
    logp = _step_logp(model, start, enc, mask, cache)  # [B, V]
    first_scores = logp[:, trie.root_token]  # [B, R]
    if first_scores.shape[1] < beams:  # fewer first tokens than beams: pad with dead hypotheses
        first_scores = torch.nn.functional.pad(first_scores, (0, beams - first_scores.shape[1]), value=NEG_INF)
    scores, slot = first_scores.topk(beams, dim=-1)  # [B, K]
    slot = slot.clamp(max=trie.root_token.numel() - 1)
    node = trie.root_node[slot]
    last = trie.root_token[slot]

    cache.batch_repeat_interleave(beams)
    # After the first step cross-attention reads its keys and values from the cache, so the decoder
    # only needs the encoder states' shape, dtype and device: a stride-0 view instead of a K-fold copy.
    enc_k = enc[:1, :1].expand(batch * beams, enc.shape[1], enc.shape[2])
    mask_k = mask.repeat_interleave(beams, dim=0)
    offsets = (torch.arange(batch, device=device) * beams).unsqueeze(1)
    width = trie.max_children
    lanes = torch.arange(width, device=device)
    n_edges = trie.child_token.numel()
    for _ in range(1, trie.depth):
        logp = _step_logp(model, last.reshape(-1, 1), enc_k, mask_k, cache).view(batch, beams, -1)
        count = trie.child_count[node]  # [B, K]
        edge = (trie.child_start[node].unsqueeze(-1) + lanes).clamp(max=n_edges - 1)  # [B, K, W]
        token = trie.child_token[edge]
        child = trie.child_node[edge]
        total = scores.unsqueeze(-1) + logp.gather(2, token)
        total = total.masked_fill(lanes >= count.unsqueeze(-1), NEG_INF)
        # A finished beam (a leaf: no children) carries on in lane 0 with its score and node unchanged.
        finished = (count == 0).unsqueeze(-1) & (lanes == 0)
        total = torch.where(finished, scores.unsqueeze(-1).expand_as(total), total)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        child = torch.where(finished, node.unsqueeze(-1).expand_as(child), child)
        scores, flat = total.reshape(batch, beams * width).topk(beams, dim=-1)
        parent = torch.div(flat, width, rounding_mode="floor")
        node = child.reshape(batch, -1).gather(1, flat)
        last = token.reshape(batch, -1).gather(1, flat)
        # Beams of one example share the cross-attention cache, so only self-attention is reordered.
        cache.self_attention_cache.reorder_cache((offsets + parent).reshape(-1))  # type: ignore[arg-type]
    items = trie.node_item[node]
    found = (items > 0) & torch.isfinite(scores)
    return torch.where(found, items, torch.zeros_like(items)), scores.masked_fill(~found, NEG_INF)
