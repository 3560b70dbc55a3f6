"""First-order (HotFlip-style) candidate ranking: which tokens would most lower the loss in a slot.

Swapping the embedding in a slot from e_cur to e_v changes the loss by about grad . (e_v - e_cur), so
ranking the vocabulary by `-grad . e_v` puts the most promising replacements first.
"""

from __future__ import annotations

import torch


def top_candidates(grads: torch.Tensor, embedding: torch.Tensor, vocab: torch.Tensor, current: torch.Tensor,
                   k: int, chunk: int = 1024) -> torch.Tensor:
    """Top-`k` token ids per slot, best first.

    grads: [S, d] averaged loss gradients at S slots; embedding: [V_all, d] the model's token table;
    vocab: [V] allowed ids; current: [S] the token now in each slot (never proposed again).
    Ties keep vocabulary order (stable sort), so the ranking is reproducible.
    """
    table = embedding[vocab.to(embedding.device)].to(torch.float32)
    vocab_here = vocab.to(table.device)
    k = min(k, vocab.numel() - 1)
    out = []
    for start in range(0, grads.shape[0], chunk):  # bounded memory: `chunk` slots x V scores at a time
        rows = slice(start, start + chunk)
        scores = -(grads[rows].to(table.device, torch.float32) @ table.T)  # [s, V]
        same = vocab_here.unsqueeze(0) == current[rows].to(table.device).unsqueeze(1)
        scores = scores.masked_fill(same, float("-inf"))
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        out.append(vocab_here[order].cpu())
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)
