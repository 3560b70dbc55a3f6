"""How far a k-beam constrained ranking is from the exact one, on a sub-word id model.

The exact top-k scores every item: its teacher-forced log-probability (its tokens and EOS summed,
`Recommender.score_candidates` over all items), then a top-k. A trie-constrained beam of width w keeps
the w best prefixes at each step, so an item whose first piece is less likely than the prefix it
shares with other items can fall out before its last piece. `beam_recovery` measures, for each width,
the share of the exact top-k the beam's top-k recovers (|beam top-k ∩ exact top-k| / k, averaged over
prompts) and how often the two top-1 items agree. The search surrogate's default beam
(`search.surrogate.SURROGATE_BEAMS`) is the smallest width measured to recover at least 90% of the exact
top-5 (bench/beam_gap.py, docs/BEAM-GAP.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from paprec_cli.errors import PaprecError
from paprec_cli.model.encoded import EncodedPrompt
from paprec_cli.model.inference import Recommender


@dataclass(frozen=True)
class Recovery:
    """One beam width: `recovered` = mean share of the exact top-k in the beam's top-k (0..1);
    `top1` = share of prompts whose top-1 items agree; `prompts` = how many were measured."""

    beams: int
    recovered: float
    top1: float
    prompts: int


def exact_top(recommender: Recommender, prompts: Sequence[EncodedPrompt], k: int, batch_size: int = 16) -> torch.Tensor:
    """[N, k] the exact top-k items (1-based) of each prompt: every item scored, best first (CPU tensor)."""
    codec = recommender.codec
    every = torch.arange(1, codec.n_items + 1).unsqueeze(0)
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = codec.collate(list(prompts[start : start + batch_size]), recommender.device)
        scores = recommender.score_candidates(batch, every.expand(batch.input_ids.shape[0], -1))
        out.append(scores.topk(min(k, codec.n_items), dim=1).indices.cpu() + 1)
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)


def beam_top(
    recommender: Recommender, prompts: Sequence[EncodedPrompt], k: int, beams: int, batch_size: int = 64
) -> torch.Tensor:
    """[N, k] the top-k of a `beams`-wide constrained beam search (`Recommender.rank_all`), CPU tensor."""
    codec = recommender.codec
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = codec.collate(list(prompts[start : start + batch_size]), recommender.device)
        out.append(recommender.rank_all(batch, k, num_beams=beams).cpu())
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)


def overlap(found: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """[N] |found_i ∩ exact_i| / k per row (0 entries in `found` never count)."""
    k = exact.shape[1]
    hits = (found.unsqueeze(2) == exact.unsqueeze(1)) & (found.unsqueeze(2) > 0)
    return hits.any(dim=2).sum(dim=1).double() / k


def beam_recovery(
    recommender: Recommender, prompts: Sequence[EncodedPrompt], widths: Sequence[int], k: int = 5
) -> list[Recovery]:
    """For each width in `widths` (each >= k), how much of the exact top-`k` the beam's top-`k` recovers.

    Sub-word id models only (atomic ids rank exactly in one step). Cost: one exact pass scoring every
    item per prompt, plus one beam search per width. Errors: `PaprecError` for atomic ids or a width < k."""
    if recommender.codec.id_scheme != "subword":
        raise PaprecError("beam recovery: atomic ids rank exactly; measure a model with sub-word ids")
    if any(w < k for w in widths):
        raise PaprecError(f"beam recovery: every beam width must be at least k={k}, got {list(widths)}")
    exact = exact_top(recommender, prompts, k)
    out = []
    for width in widths:
        found = beam_top(recommender, prompts, k, width)
        share = overlap(found, exact)
        top1 = (found[:, 0] == exact[:, 0]).double()
        n = len(prompts)
        out.append(Recovery(int(width), float(share.mean()) if n else 0.0, float(top1.mean()) if n else 0.0, n))
    return out


def smallest_width(recoveries: Sequence[Recovery], target: float = 0.9) -> int | None:
    """The narrowest measured width recovering at least `target` of the exact top-k (None: none does)."""
    ok = [r.beams for r in recoveries if r.recovered >= target]
    return min(ok) if ok else None
