"""The search problem on a real model: gradients -> candidates, rows -> surrogate values.

Connects the schedule to a frozen recommendation LM. Shared candidates come from the loss gradient
averaged over a seeded sample of training examples; personal candidates from each validation user's own
training examples. All candidates of a step are scored together (candidates x validation examples).

Under `torchrun` (a `DistContext` with several ranks) the work is split in whole batches: each rank runs a
contiguous share of exactly the batches a single process would run (for the fast scorer, in its
sort-by-length order), so every row's value is bitwise the single-process one whatever the number of
processes. Surrogate rows are combined with an all_reduce of float64 per-row values (zeros for other ranks'
rows: exact), then averaged per user as before, so every rank takes the same decisions as one process.
Gradient sums are all_reduced in float64 (sum + count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from paprec_cli.distributed import DistContext
from paprec_cli.model.codec import EncodedPrompt
from paprec_cli.model.rows import TriggerRows
from paprec_cli.search.candidates import top_candidates
from paprec_cli.search.gradients import gradient_sums
from paprec_cli.search.layout import Layout, PromptBuilder, PromptTokens, check_positions
from paprec_cli.search.surrogate import RowScorer, autocast, per_user_means
from paprec_cli.specs import Example, TaskSpec

if TYPE_CHECKING:
    from paprec_cli.model.inference import Recommender


@dataclass
class ExampleSet:
    """Examples with their encoded arguments and, for validation sets, each example's user position."""

    examples: list[Example]
    builder: PromptBuilder
    user_pos: np.ndarray  # [N] position of the example's user in `users` (or group id)

    def prompts(self, triggers: Sequence[Sequence[int]]) -> list[EncodedPrompt]:
        return [self.builder.prompt(i, t) for i, t in enumerate(triggers)]

    def trigger_matrix(self, tokens: PromptTokens) -> np.ndarray:
        """[N, T] each example's trigger ids under `tokens` (shared slots, then its user's personal ones)."""
        width = len(tokens.shared) + len(tokens.personal_default)
        rows = [tokens.triggers_for(ex.user) for ex in self.examples]
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), width)

    def blocks(self, tokens: PromptTokens, column: int, values: np.ndarray) -> np.ndarray:
        """[C, N, T] every example's triggers under `tokens`, with trigger `column` set to values[c] (a [C, N]
        array, or [C, 1] for one token per block)."""
        blocks = np.repeat(self.trigger_matrix(tokens)[None], len(values), axis=0)
        blocks[:, :, column] = values
        return blocks

    def rows(self, blocks: np.ndarray) -> TriggerRows:
        """C blocks of per-example triggers [C, N, T] as rows: row c*N + i is example i with blocks[c, i]."""
        n_blocks, n = blocks.shape[:2]
        return self.builder.rows(np.tile(np.arange(n), n_blocks), blocks.reshape(n_blocks * n, -1))


class ModelProblem:
    """`SearchProblem` over a `Recommender` and one task's validation users."""

    def __init__(self, recommender: Recommender, task: TaskSpec, layout: Layout, vocab: torch.Tensor, *, top_k: int,
                 scorer: RowScorer, validation: list[Example], shared_grad: list[Example],
                 personal_grad: list[Example], batch_size: int, dist: DistContext | None = None,
                 n_validation: int | None = None, personal_pool: dict[int, tuple[int, ...]] | None = None) -> None:
        self.recommender, self.task, self.layout = recommender, task, layout
        self.codec = recommender.codec
        self.vocab, self.top_k, self.scorer, self.batch_size = vocab, top_k, scorer, batch_size
        self.users = sorted({ex.user for ex in validation})
        position = {u: i for i, u in enumerate(self.users)}
        self.validation = self._set(validation, [position[ex.user] for ex in validation])
        #: the first `n_validation` search examples are validation-split ones (the rest: training examples)
        self.n_validation = len(validation) if n_validation is None else n_validation
        self.weights = np.bincount(self.validation.user_pos, minlength=len(self.users)).astype(np.float64)
        self.shared_grad = self._set(shared_grad, [0] * len(shared_grad))
        mine = [ex for ex in personal_grad if ex.user in position]
        self.personal_grad = self._set(mine, [position[ex.user] for ex in mine])
        #: extra personal candidates per user (e.g. their history words), tried after the gradient's top-k
        self.set_personal_pool(personal_pool or {})
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._subsets: dict[str, ExampleSet] = {}
        self._validation_only: ExampleSet | None = None
        self.dist = dist or DistContext.single(str(recommender.device))
        if validation:
            first = self.validation
            trig = list(range(layout.n_triggers))
            check_positions(first.builder.prompt(0, trig), first.builder.positions(0), trig)
            check_positions(first.rows(np.asarray([[trig]])).prompt(0), first.builder.positions(0), trig)

    def _set(self, examples: list[Example], user_pos: list[int]) -> ExampleSet:
        builder = PromptBuilder(self.codec, self.layout, [ex.argument for ex in examples])
        return ExampleSet(examples, builder, np.asarray(user_pos, dtype=np.int64))

    def validation_only(self) -> ExampleSet:
        """The search examples from the validation split (without the extra training examples)."""
        n = self.n_validation
        return self._set(self.validation.examples[:n], self.validation.user_pos[:n].tolist())

    def token_text(self, token: int) -> str:
        return str(self.codec.token_text(int(token)))

    # -- surrogate ------------------------------------------------------------------------------
    def _score_blocks(self, blocks: np.ndarray, group: ExampleSet) -> np.ndarray:
        """[C, N] values of C blocks of per-example triggers [C, N, T] over `group`'s N examples; one batched
        pass when the scorer allows."""
        examples, n = group.examples, len(group.examples)
        if self.scorer.batched:
            values = self.scorer(group.rows(blocks), examples * len(blocks))
            return values.reshape(len(blocks), n)
        if not len(blocks):
            return np.zeros((0, n))
        return np.stack([self.scorer(group.rows(block[None]), examples) for block in blocks])

    def _user_means(self, blocks: np.ndarray, group: ExampleSet | None = None) -> np.ndarray:
        """[C, U] per-user means of C blocks over `group`'s rows (default: every validation row; rows sharded
        under torchrun); users without a row in `group` are NaN."""
        group = self.validation if group is None else group
        values = self._sharded_blocks(blocks, group) if self.dist.active else self._score_blocks(blocks, group)
        means = per_user_means(values, group.user_pos, len(self.users))
        if group is not self.validation:
            means[..., np.bincount(group.user_pos, minlength=len(self.users)) == 0] = np.nan
        return means

    def _sharded_blocks(self, blocks: np.ndarray, group: ExampleSet) -> np.ndarray:
        """`_score_blocks` computed by all ranks: each scores its whole batches, one float64 all_reduce."""
        n = len(group.examples)
        calls = [blocks] if self.scorer.batched else [block[None] for block in blocks]
        size = int(getattr(self.scorer, "batch_size", self.batch_size))
        parts = []
        for part in calls:
            rows = group.rows(part)
            order = np.arange(len(rows))
            if getattr(self.scorer, "sorts_by_length", False):
                order = np.argsort(rows.lengths(), kind="stable")
            start, stop = self.dist.bounds(len(order), align=size)
            mine = order[start:stop]
            values = np.zeros(len(rows))
            if len(mine):
                values[mine] = self.scorer(rows.subset(mine), [group.examples[i % n] for i in mine])
            parts.append(values)
        total = self.dist.all_reduce_sum(torch.from_numpy(np.concatenate(parts) if parts else np.zeros(0))).numpy()
        return total.reshape(len(blocks), n)

    def evaluate(self, tokens: PromptTokens) -> np.ndarray:
        return self._user_means(self.validation.trigger_matrix(tokens)[None])[0]

    def evaluate_validation(self, tokens: PromptTokens) -> np.ndarray:
        """[U] per-user means over the validation-split search examples only (no extra training examples,
        which the model was trained on); equal to `evaluate` when the search has no extra examples."""
        if self.n_validation == len(self.validation.examples):
            return self.evaluate(tokens)
        if self._validation_only is None:
            self._validation_only = self.validation_only()
        group = self._validation_only
        return self._user_means(group.trigger_matrix(tokens)[None], group)[0]

    def set_personal_pool(self, pool: dict[int, tuple[int, ...]]) -> None:
        """Replace the extra personal candidates per user (`personal_pool`), e.g. after a start rule is chosen."""
        self.personal_pool = {int(u): tuple(int(t) for t in w) for u, w in pool.items()}
        self.pool_width = max((len(w) for w in self.personal_pool.values()), default=0)

    def evaluate_shared(self, tokens: PromptTokens, slot: int, candidates: Sequence[int],
                        users: np.ndarray | None = None) -> np.ndarray:
        """[C, U]; with `users` (a [U] bool mask) only those users' examples are scored (others NaN)."""
        values = np.asarray(candidates, dtype=np.int64)[:, None]
        group = self.validation if users is None else self._users_subset(users)
        return self._user_means(group.blocks(tokens, slot, values), group)

    def _users_subset(self, users: np.ndarray) -> ExampleSet:
        """The validation examples of the users in the [U] bool mask `users` (cached: a round reuses it)."""
        key = np.packbits(np.asarray(users, dtype=bool)).tobytes().hex()
        cached = self._subsets.get(key)
        if cached is None:
            keep = np.flatnonzero(np.asarray(users, dtype=bool)[self.validation.user_pos])
            cached = self._set([self.validation.examples[i] for i in keep], self.validation.user_pos[keep].tolist())
            if len(self._subsets) >= 4:
                self._subsets.clear()
            self._subsets[key] = cached
        return cached

    def evaluate_personal(self, tokens: PromptTokens, slot: int, candidates: np.ndarray) -> np.ndarray:
        """Block j holds every user's own j-th candidate, so all users' candidates go in one pass."""
        values = np.asarray(candidates, dtype=np.int64)[self.validation.user_pos].T  # [k, N]
        return self._user_means(self.validation.blocks(tokens, self.layout.n_shared + slot, values)).T  # [U, k]

    # -- candidates -----------------------------------------------------------------------------
    def _gradients(self, which: str, tokens: PromptTokens) -> tuple[torch.Tensor, torch.Tensor]:
        """(sums [G, T, d], counts [G]) at the current prompt, cached until the prompt changes."""
        key = (which, tokens.key())
        cached = self._cache.get(which)
        if cached is not None and cached[0] == key:
            return cached[1]  # type: ignore[no-any-return]
        group = self.shared_grad if which == "shared" else self.personal_grad
        n_groups = 1 if which == "shared" else len(self.users)
        rec, codec = self.recommender, self.codec
        prompts = group.prompts([tokens.triggers_for(ex.user) for ex in group.examples])
        # Sums are per group, so the order is free: by length, each batch is padded only to similar prompts.
        order = np.argsort(np.fromiter((len(p) for p in prompts), np.int64, len(prompts)), kind="stable").tolist()
        prompts = [prompts[i] for i in order]
        targets = [codec.target_ids(self.task.target_words(group.examples[i])) for i in order]
        positions = [group.builder.positions(i) for i in order]
        owners = group.user_pos[order].tolist()
        # a task's examples all list candidates (direct) or none do: a seen bias skips the former, as in training
        listed = any(ex.candidates is not None for ex in group.examples)

        def loss(batch_prompts: Sequence[EncodedPrompt], batch_targets: Sequence[Sequence[int]]) -> torch.Tensor:
            with autocast(rec.device):
                return rec.nll(codec.collate(list(batch_prompts), rec.device), [list(t) for t in batch_targets],
                               [listed] * len(batch_prompts))

        start, stop = self.dist.bounds(len(prompts), align=self.batch_size)  # whole batches: see module doc
        if start < stop:
            result = gradient_sums(loss, rec.model.t5.shared, prompts[start:stop], targets[start:stop],
                                   positions[start:stop], owners[start:stop], n_groups,
                                   self.batch_size)
        else:  # more ranks than batches: this rank adds zeros
            result = (torch.zeros(n_groups, self.layout.n_triggers, self._embedding().shape[1], dtype=torch.float64),
                      torch.zeros(n_groups, dtype=torch.long))
        if self.dist.active:
            result = (self.dist.all_reduce_sum(result[0]), self.dist.all_reduce_sum(result[1]).round().long())
        self._cache[which] = (key, result)
        return result

    def shared_candidates(self, tokens: PromptTokens, slot: int) -> list[int]:
        sums, counts = self._gradients("shared", tokens)
        grads = sums[0, : self.layout.n_shared] / max(int(counts[0]), 1)
        current = torch.tensor(tokens.shared, dtype=torch.long)
        ranked = top_candidates(grads, self._embedding(), self.vocab, current, self.top_k)
        return [int(t) for t in ranked[slot]]

    def personal_candidates(self, tokens: PromptTokens, slot: int) -> np.ndarray:
        at = self.layout.n_shared + slot
        sums, counts = self._gradients("personal", tokens)
        grads = sums[:, at] / counts.clamp(min=1).unsqueeze(1).to(sums.dtype)
        if bool((counts == 0).any()):  # users without training examples follow the shared sample's gradient
            shared_sums, shared_counts = self._gradients("shared", tokens)
            fallback = shared_sums[0, at] / max(int(shared_counts[0]), 1)
            grads[counts == 0] = fallback
        current = torch.tensor([tokens.personal_for(u)[slot] for u in self.users], dtype=torch.long)
        ranked = top_candidates(grads, self._embedding(), self.vocab, current, self.top_k).numpy()
        return self._with_pool(ranked, current.numpy())

    def _with_pool(self, ranked: np.ndarray, current: np.ndarray) -> np.ndarray:
        """[U, k + m]: each user's gradient candidates, then their pool words not already there (and not the
        current token); unused pool columns repeat the user's first candidate (scored, never better than it)."""
        if not self.pool_width:
            return ranked
        out = np.repeat(ranked[:, :1], ranked.shape[1] + self.pool_width, axis=1)
        out[:, : ranked.shape[1]] = ranked
        for i, user in enumerate(self.users):
            fresh = [t for t in self.personal_pool.get(int(user), ())
                     if t != current[i] and t not in ranked[i]]
            out[i, ranked.shape[1]: ranked.shape[1] + len(fresh)] = fresh
        return out

    def _embedding(self) -> torch.Tensor:
        return self.recommender.model.t5.shared.weight.detach()
