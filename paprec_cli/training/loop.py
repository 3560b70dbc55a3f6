"""The optimisation loop: AdamW, warm-up then decay, gradient clipping, bf16 autocast on CUDA.

The learning-rate schedule runs on *progress*, the larger of steps done / steps planned and time used
/ `--time-budget`: a budgeted run still warms up and decays fully instead of stopping at a high rate.
Without a budget, progress depends on steps only, so runs are reproducible.

Under torchrun the model is wrapped in DistributedDataParallel and each rank trains on its share of every
global batch; the loss is the global token mean (local token sum x world size / global token count, as
DDP averages gradients), so the curve matches a single process with the same global batch. The clock is
rank 0's, so a --time-budget stops every rank at the same step.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from paprec_cli.distributed import DistContext
from paprec_cli.model.backbone import RecLM
from paprec_cli.training.batches import IGNORE, TrainBatch
from paprec_cli.training.recipe import Recipe


def lr_factor(progress: float, recipe: Recipe) -> float:
    """Multiplier of the peak learning rate at `progress` in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    if recipe.warmup > 0 and progress < recipe.warmup:
        return max(progress / recipe.warmup, 1e-3)
    span = max(1.0 - recipe.warmup, 1e-9)
    done = (progress - recipe.warmup) / span
    floor = recipe.min_lr_ratio
    if recipe.schedule == "linear":
        return floor + (1.0 - floor) * (1.0 - done)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * done))


def seen_item_penalty(
    first_logits: torch.Tensor,
    input_ids: torch.Tensor,
    first_labels: torch.Tensor,
    item_tokens: tuple[int, int],
    kind: str = "pairwise",
) -> torch.Tensor:
    """[B] penalty on the distinct item tokens of each prompt (`input_ids` [B, L], ids in
    [item_tokens[0], item_tokens[1])) at the first target position (`first_logits` [B, V]); the target
    itself (`first_labels` [B]) is never penalised, and prompts without items get 0.

    `pairwise`: the mean over those items of `softplus(logit(item) - logit(target))` (BPR's loss, the
    items as negatives), strong while an item outranks the target. `unlikelihood` (Welleck et al., 2020):
    `-sum log(1 - p(item))`; measured too weak here: its gradient is p(item), about 1/1000 on a flat
    softmax. From-scratch RLMs with co-occurrence item rows put about half of their top 10 on the prompt's
    own items (measured on ML-100K, where no user rates a movie twice)."""
    first, end = item_tokens
    is_item = (input_ids >= first) & (input_ids < end)
    seen = torch.zeros_like(first_logits, dtype=torch.bool)
    seen.scatter_(1, input_ids.masked_fill(~is_item, 0), is_item)  # column 0 (padding) only ever gets False
    seen[:, 0] = False
    target = first_labels.clamp_min(0).unsqueeze(1)
    seen.scatter_(1, target, torch.zeros_like(target, dtype=torch.bool))
    if kind == "unlikelihood":
        probs = first_logits.softmax(dim=-1)
        return -(torch.log1p(-probs.clamp(max=1 - 1e-6)) * seen).sum(dim=1)
    margin = F.softplus(first_logits - first_logits.gather(1, target))
    return (margin * seen).sum(dim=1) / seen.sum(dim=1).clamp_min(1)


def drop_users(input_ids: torch.Tensor, user_tokens: tuple[int, int], unk_id: int, rate: float,
               generator: torch.Generator) -> torch.Tensor:
    """`input_ids` [B, L] with every user token (ids in [user_tokens[0], user_tokens[1])) of a row replaced by
    `unk_id`, for a share `rate` of the rows drawn with `generator` (CPU); a new tensor, the input unchanged.

    Token-level dropout of the user id (cf. word dropout, Gal & Ghahramani 2016): an RLM with atomic user ids
    leaned on the user's row (on ML-100K, another user's id in the prompt dropped test HR@10 from 0.090 to
    0.031) and ranked the user's own training items first; without the id in a share of its training prompts
    it has to read the history."""
    first, end = user_tokens
    rows = torch.rand(input_ids.shape[0], generator=generator) < rate
    is_user = (input_ids >= first) & (input_ids < end) & rows.to(input_ids.device).unsqueeze(1)
    return input_ids.masked_fill(is_user, unk_id)


def future_loss(first_logits: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
    """[B] mean negative log-probability of each row's future items (`future` [B, K] token ids, IGNORE
    where a row has fewer) at the first target position (`first_logits` [B, V]); 0 for a row without any.

    The items that follow the target in the user's training sequence become targets of the same
    position, the "future window" of a dense all-action loss (PinnerFormer, Pancha et al., KDD 2022):
    where the order inside a session is noise (MovieLens rates many films at once), the next item alone
    is a thin signal and the window is a denser one. `Mixture.future` sets K, `Recipe.future_weight` its
    weight."""
    valid = future != IGNORE
    log_probs = first_logits.log_softmax(dim=-1).gather(1, future.clamp_min(0))
    return -(log_probs * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, list[nn.Parameter] | float]]:
    """Decay matrices only: layer-norm weights, biases and the whole-word embedding are exempt."""
    decay: list[nn.Parameter] = []
    keep: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim < 2 or "layer_norm" in name or "whole_word" in name
        (keep if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def _matmul_seconds(threads: int, size: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(4096, size), torch.randn(size, size)
    a @ b  # warm the thread pool up
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return time.perf_counter() - started


def cpu_threads(device: str, size: int = 128, repeats: int = 20) -> int:
    """Intra-op threads for CPU training: torch's default or one, whichever is faster here right now.

    On a machine whose cores are busy with other work, torch's default (one thread per core) stalls in
    OpenMP spin-waits: measured 6.5x slower than one thread on 2 contended cores, which left the quick start
    with one epoch. On a free machine the default is faster. The load average cannot tell the two apart
    (it still counts the `pip install` that just finished), so a ~50 ms matmul of the model's width is timed
    both ways. `OMP_NUM_THREADS` wins when set. Returns the thread count in use.
    """
    default = torch.get_num_threads()
    if not device.startswith("cpu") or os.environ.get("OMP_NUM_THREADS") or default <= 1:
        return default
    parallel = min(_matmul_seconds(default, size, repeats) for _ in range(2))
    single = min(_matmul_seconds(1, size, repeats) for _ in range(2))
    chosen = default if parallel <= single else 1
    torch.set_num_threads(chosen)
    return chosen


@dataclass
class Clock:
    """Wall time of this training session plus time already spent before a resume."""

    offset: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.offset + time.perf_counter() - self.started


@dataclass
class EpochStats:
    loss: float
    steps: int
    examples: int
    tokens: int
    seconds: float
    stopped_by_budget: bool

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


class Trainer:
    """Owns the model's optimiser and schedule; `run_epoch` trains over one epoch's batches."""

    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe,
        device: str,
        planned_steps: int,
        time_budget: float | None = None,
        clock: Clock | None = None,
        dist: DistContext | None = None,
        anneal_to_budget: bool = True,
        item_tokens: tuple[int, int] | None = None,
        user_tokens: tuple[int, int] | None = None,
        unk_id: int = -1,
        seed: int = 0,
    ) -> None:
        """`item_tokens`: the [first, end) token ids of atomic items, for `Recipe.seen_penalty`; `user_tokens`
        and `unk_id`: those of atomic users and the tokenizer's unknown token, for `Recipe.user_dropout` (drawn
        per step from `seed`, so a resumed run masks the rows an uninterrupted one would)."""
        self.model = model
        self.dist = dist or DistContext.single(device)
        self.net: nn.Module = model  # what the forward runs: the DDP wrapper under torchrun
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else None
            self.net = DistributedDataParallel(model, device_ids=ids)
        self.recipe = recipe
        self.device = torch.device(device)
        self.planned_steps = max(planned_steps, 1)
        self.time_budget = time_budget
        self.anneal_to_budget = anneal_to_budget
        self.item_tokens = item_tokens
        self.user_tokens = user_tokens if unk_id >= 0 else None
        self.unk_id = unk_id
        self.seed = seed
        self.clock = clock or Clock()
        self._elapsed = self.dist.main_clock(self.clock.elapsed)
        self.step = 0
        self.optimizer = torch.optim.AdamW(
            parameter_groups(model, recipe.weight_decay),
            lr=recipe.lr,
            betas=(0.9, 0.999),
            eps=1e-8,
            fused=self.device.type == "cuda",  # one kernel for all parameters instead of a loop per tensor
        )

    @property
    def autocast(self) -> torch.autocast:
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def progress(self) -> float:
        done = self.step / self.planned_steps
        if self.time_budget and self.anneal_to_budget:
            done = max(done, self._elapsed() / self.time_budget)
        return min(done, 1.0)

    def out_of_time(self) -> bool:
        return bool(self.time_budget) and self._elapsed() >= float(self.time_budget or 0)

    def loss(self, batch: TrainBatch, reduction: str = "mean") -> torch.Tensor:
        inputs = batch.inputs.to(self.device)
        labels = batch.labels.to(self.device, non_blocking=True)
        input_ids = inputs.input_ids
        if self.recipe.user_dropout > 0 and self.user_tokens is not None and self.model.training:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
            input_ids = drop_users(input_ids, self.user_tokens, self.unk_id, self.recipe.user_dropout, generator)
        extra: dict[str, torch.Tensor] = {}
        if isinstance(self.model, RecLM) and self.model.seen_bias is not None:  # not on non-item answers/candidates
            candidates = batch.candidates.to(self.device) if batch.candidates is not None else None
            extra["seen_ids"] = self.model.seen_rows_only(inputs.input_ids, labels[:, 0], candidates)
        with self.autocast:
            out = self.net(input_ids, inputs.attention_mask, inputs.whole_word_ids, labels=labels, **extra)
        logits = out.logits.float()
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE,
            label_smoothing=self.recipe.label_smoothing,
            reduction=reduction,
        )
        if self.recipe.seen_penalty > 0 and self.item_tokens is not None:
            penalty = seen_item_penalty(
                logits[:, 0], inputs.input_ids, labels[:, 0], self.item_tokens, self.recipe.seen_penalty_kind
            )
            n_tokens = (labels != IGNORE).sum().clamp_min(1)
            # per token of the mean, so the weight means the same in "mean" and "sum" (torchrun) reductions
            penalty = penalty.sum() / n_tokens if reduction == "mean" else penalty.sum()
            loss = loss + self.recipe.seen_penalty * penalty
        if batch.future is not None and self.recipe.future_weight > 0:
            window = future_loss(logits[:, 0], batch.future.to(self.device))
            n_tokens = (labels != IGNORE).sum().clamp_min(1)
            window = window.sum() / n_tokens if reduction == "mean" else window.sum()
            loss = loss + self.recipe.future_weight * window
        return loss

    def _sharded_loss(self, batch: TrainBatch) -> tuple[torch.Tensor, float]:
        """(what to backpropagate, the global mean loss) for this rank's share of a global batch."""
        total = self.loss(batch, reduction="sum") * batch.weight
        n_local = float((batch.labels != IGNORE).sum()) * batch.weight
        summed = self.dist.all_reduce_sum(torch.tensor([float(total.detach()), n_local]))
        n_global = max(float(summed[1]), 1.0)
        return total * (self.dist.world_size / n_global), float(summed[0]) / n_global

    def train_step(self, batch: TrainBatch) -> torch.Tensor:
        """One optimiser step; returns the (global mean) loss detached but left on the device.

        Reading the value (`float(...)`) waits for the GPU, so callers do it every few steps, not every step.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = self.recipe.lr * lr_factor(self.progress(), self.recipe)
        self.model.train()
        if self.dist.active:
            loss, global_mean = self._sharded_loss(batch)
            reported = torch.tensor(global_mean, device=self.device)
        else:
            loss = self.loss(batch)
            reported = loss.detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        self.step += 1
        return reported

    def run_epoch(
        self, batches: Iterable[TrainBatch], on_step: Callable[[int, float, int], None] | None = None
    ) -> EpochStats:
        """Train until the batches run out or the time budget is spent (checked after each step)."""
        start = time.perf_counter()
        running = torch.zeros((), dtype=torch.float32, device=self.device)
        steps = examples = tokens = 0
        stopped = False
        for batch in batches:
            running += self.train_step(batch)
            steps += 1
            examples += len(batch)
            tokens += batch.n_tokens
            stopped = self.out_of_time()
            if steps % self.read_every == 0 or stopped:
                self._report(float(running), steps, examples, on_step)
            if stopped:
                break
        total_loss = float(running)
        self._report(total_loss, steps, examples, None)
        seconds = time.perf_counter() - start
        return EpochStats(total_loss / max(steps, 1), steps, examples, tokens, seconds, stopped)

    @property
    def read_every(self) -> int:
        """Steps between reads of the loss: every step on the CPU (free), every 16 on a GPU (a sync)."""
        return 1 if self.device.type == "cpu" else 16

    def _report(
        self, total_loss: float, steps: int, examples: int, on_step: Callable[[int, float, int], None] | None
    ) -> None:
        if not math.isfinite(total_loss):
            raise FloatingPointError(f"training loss became {total_loss} by step {self.step}; lower --lr")
        if on_step is not None and steps:
            on_step(steps, total_loss / steps, examples)

    def lr_now(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])
