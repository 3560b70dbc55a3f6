"""torch.distributed for paprec: one small context built from what `torchrun` sets, passed down explicitly.

Why a context and not `torch.distributed` calls sprinkled around: the same code must run unchanged as a
plain single process (no `torchrun`), where every helper here is the identity, and tests must be able to
build several contexts without touching process-global flags. Nothing here keeps module-level state; the
process group itself is torch's, created by `DistContext.from_env` and ended by `destroy`.

Launch: `torchrun --nproc-per-node N -m paprec_cli ...` (one node) or add `--nnodes --node-rank
--rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id` (several nodes): torchrun sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and paprec reads only those. NCCL on CUDA, gloo on the CPU.

Collectives run with a timeout (`PAPREC_DIST_TIMEOUT` seconds, default 300): when one rank fails, the
others get an error from their next collective instead of waiting forever (torchrun also stops the
remaining workers of a failed group). A failed collective becomes a one-line `PaprecError`.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO, TypeVar

import numpy as np
import torch

from paprec_cli.errors import PaprecError, first_line

TIMEOUT_ENV = "PAPREC_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
T = TypeVar("T")
ShardMode = Literal["contiguous", "strided"]


def timeout_seconds(env: dict[str, str] | None = None) -> float:
    """`PAPREC_DIST_TIMEOUT` (seconds, > 0), else 300."""
    env = dict(os.environ) if env is None else env
    raw = env.get(TIMEOUT_ENV)
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise PaprecError(f"{TIMEOUT_ENV}={raw}: expected a positive number of seconds")
    return value


def _int_env(env: dict[str, str], name: str) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        raise PaprecError(f"{name} is not set: launch with `torchrun --nproc-per-node N -m paprec_cli ...`, "
                          "which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT")
    try:
        return int(raw)
    except ValueError:
        raise PaprecError(f"{name}={raw}: expected an integer (set by torchrun)") from None


def bounds(n: int, world_size: int, rank: int, align: int = 1) -> tuple[int, int]:
    """[start, stop) of `rank`'s contiguous share of `n` items, cut at multiples of `align`.

    Cutting at batch boundaries (`align` = batch size) keeps every batch exactly the one a single
    process would run, so per-example results do not change with the number of processes.
    """
    blocks = -(-n // max(align, 1))
    base, extra = divmod(blocks, world_size)
    first = rank * base + min(rank, extra)
    last = first + base + (1 if rank < extra else 0)
    return min(first * align, n), min(last * align, n)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) group; all helpers are no-ops alone.

    `backend` is None for a single process. Every rank must call the collectives in the same order.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    #: Collectives that failed here (a peer died or timed out): the group cannot meet again at the end.
    failures: list[str] = field(default_factory=list, compare=False, repr=False)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def single(cls, device: str = "cpu") -> DistContext:
        return cls(device=device)

    @classmethod
    def from_env(cls, device: str = "auto", env: dict[str, str] | None = None, init: bool = True) -> DistContext:
        """The context torchrun's environment describes (a single process when WORLD_SIZE is unset or 1).

        `device` is the resolved `--device` ("cpu", "cuda", "cuda:N" or "auto"); under torchrun, CUDA
        means `cuda:LOCAL_RANK` and NCCL, anything else gloo. `init=False` only validates (for tests).
        """
        env = dict(os.environ) if env is None else env
        world = env.get("WORLD_SIZE")
        if world in (None, "", "1"):
            if env.get("RANK") not in (None, "", "0"):
                raise PaprecError(f"RANK={env.get('RANK')} is set but WORLD_SIZE is not; launch with torchrun")
            return cls.single(_plain_device(device))
        world_size = _int_env(env, "WORLD_SIZE")
        rank = _int_env(env, "RANK")
        local_rank = int(env.get("LOCAL_RANK") or 0)
        if world_size < 1 or not 0 <= rank < world_size:
            raise PaprecError(f"RANK={rank} with WORLD_SIZE={world_size}: expected 0 <= RANK < WORLD_SIZE")
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
        if missing:
            raise PaprecError(f"WORLD_SIZE={world_size} but {' and '.join(missing)} not set: launch with torchrun "
                              "(multi-node: --rdzv-backend c10d --rdzv-endpoint HOST:PORT)")
        timeout = timeout_seconds(env)
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise PaprecError(f"--device {device}: no CUDA device is visible on rank {rank}")
        if use_cuda:
            if local_rank >= torch.cuda.device_count():
                raise PaprecError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) "
                                  "are visible: lower --nproc-per-node")
            backend, dev = "nccl", f"cuda:{local_rank}"
        else:
            backend, dev = "gloo", "cpu"
        ctx = cls(rank, world_size, local_rank, dev, backend, timeout)
        if init:
            ctx._init()
        return ctx

    def _init(self) -> None:
        import torch.distributed as dist

        if self.backend == "nccl":
            torch.cuda.set_device(self.local_rank)
        if dist.is_initialized():
            return
        try:
            dist.init_process_group(self.backend, rank=self.rank, world_size=self.world_size,
                                    timeout=datetime.timedelta(seconds=self.timeout))
        except Exception as exc:  # rendezvous failures are many exception types
            raise PaprecError(f"rank {self.rank}/{self.world_size}: could not join the process group at "
                              f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} within "
                              f"{self.timeout:g}s ({_first_line(exc)})") from None

    # -- who am I -------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """Rank 0 owns files, progress display and the `--json` line."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process: the collectives really communicate."""
        return self.world_size > 1 and self.backend is not None

    def describe(self) -> str:
        return f"rank {self.rank}/{self.world_size} ({self.backend or 'single process'}, {self.device})"

    # -- sharding -------------------------------------------------------------------------------
    def bounds(self, n: int, align: int = 1) -> tuple[int, int]:
        """This rank's contiguous [start, stop) of `n` items, cut at multiples of `align`."""
        return bounds(n, self.world_size, self.rank, align)

    def shard(self, items: Sequence[T] | int, mode: ShardMode = "contiguous", align: int = 1) -> list[T] | range:
        """This rank's share: every item on exactly one rank, the same split on every run.

        contiguous: one block per rank, in rank order (concatenating the ranks' shards gives the input);
        strided: items rank, rank + W, ... (balances work when cost grows along the list).
        An int `n` shards `range(n)`.
        """
        seq: Sequence[Any] = range(items) if isinstance(items, int) else items
        if mode == "strided":
            picked = seq[self.rank :: self.world_size]
            return picked if isinstance(picked, range) else list(picked)
        start, stop = self.bounds(len(seq), align)
        return seq[start:stop] if isinstance(seq, range) else list(seq[start:stop])

    # -- collectives ----------------------------------------------------------------------------
    def all_reduce_sum(self, tensor: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The elementwise sum over ranks, in float64 (a new CPU tensor; the input is left alone).

        float64 because a sum of float32 partials in another order than a single process would differ in
        the last bits; in float64 the difference is far below what the float32 inputs can resolve.
        """
        value = torch.as_tensor(tensor).detach().to("cpu", torch.float64).clone()
        if not self.active:
            return value
        import torch.distributed as dist

        moved = value.to(self.device)
        self._call("all_reduce", lambda: dist.all_reduce(moved, op=dist.ReduceOp.SUM))
        return moved.cpu()

    def all_gather_object(self, obj: T) -> list[T]:
        """Every rank's `obj`, in rank order (picklable objects)."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        self._call("all_gather_object", lambda: dist.all_gather_object(out, obj))
        return out

    def gather_shards(self, items: Sequence[T]) -> list[T]:
        """Every rank's contiguous shard (from `shard`), joined in rank order: the list one process builds.

        For per-item results (predictions, per-user answers) that rank 0 must report in input order.
        """
        return [item for part in self.all_gather_object(list(items)) for item in part]

    def broadcast_object(self, obj: T | None, src: int = 0) -> T:
        """`src`'s `obj` on every rank (others pass anything, e.g. None)."""
        if not self.active:
            return obj  # type: ignore[return-value]
        import torch.distributed as dist

        box: list[Any] = [obj]
        self._call("broadcast_object", lambda: dist.broadcast_object_list(box, src=src))
        return box[0]  # type: ignore[no-any-return]

    def barrier(self) -> None:
        if not self.active:
            return
        import torch.distributed as dist

        self._call("barrier", lambda: dist.barrier())

    def check_all(self, ok: bool, message: str) -> None:
        """Raise `PaprecError(message)` on every rank when any rank says not ok (a collective vote)."""
        bad = self.all_reduce_sum(torch.tensor([0.0 if ok else 1.0]))
        if float(bad[0]) > 0:
            raise PaprecError(message)

    def _call(self, name: str, op: Callable[[], T]) -> T:
        try:
            return op()
        except Exception as exc:  # DistBackendError, RuntimeError from gloo, timeouts ...
            self.failures.append(name)
            raise PaprecError(f"{self.describe()}: {name} failed: another process failed or did not answer "
                              f"within {self.timeout:g}s ({TIMEOUT_ENV}) ({_first_line(exc)})") from None

    def main_clock(self, clock: Callable[[], float]) -> Callable[[], float]:
        """A clock that reads rank 0's `clock` on every rank (a collective per call).

        Decisions that depend on time (a --time-budget) must be the same on every rank, or the ranks
        would stop at different steps and wait on each other forever.
        """
        if not self.active:
            return clock

        def shared() -> float:
            return float(self.broadcast_object(clock() if self.is_main else None))

        return shared

    def run_on_main(self, func: Callable[[], T]) -> T:
        """Run `func` on rank 0 and hand its result (or its `PaprecError`) to every rank.

        For work only rank 0 may do (creating the run directory, reading a state to resume): the other
        ranks then fail with the same one-line error instead of waiting for a rank that already left.
        """
        if not self.active:
            return func()
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                outcome = (True, func())
            except PaprecError as exc:
                outcome = (False, str(exc))
        ok, value = self.broadcast_object(outcome)
        if not ok:
            raise PaprecError(value)
        return value  # type: ignore[no-any-return]

    # -- rank-0 output --------------------------------------------------------------------------
    def main_only(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Run `func` on rank 0 only (writing files, printing results); None elsewhere."""
        return func(*args, **kwargs) if self.is_main else None

    def print(self, message: str, file: TextIO | None = None) -> None:
        """Print on rank 0 only (stdout by default)."""
        if self.is_main:
            print(message, file=file or sys.stdout, flush=True)

    # -- end ------------------------------------------------------------------------------------
    def destroy(self) -> None:
        """End the process group (safe to call twice, or alone)."""
        if not self.active:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
            # Drop finished collective work now, while the interpreter is whole: gloo objects first freed
            # during interpreter shutdown can abort the process ("terminate called without an active exception").
            gc.collect()


@contextlib.contextmanager
def distributed(device: str = "auto", env: dict[str, str] | None = None) -> Iterator[DistContext]:
    """`with distributed(device) as dist:` the context for this process, destroyed at exit."""
    ctx = DistContext.from_env(device, env)
    try:
        yield ctx
    except BaseException:
        ctx.destroy()
        raise
    # A rank that tears its gloo connections down while a peer still reads from them can abort in C++
    # ("terminate called without an active exception", seen 1 run in 3): all finish together first,
    # unless a collective already failed (the peers are gone; waiting would only add a timeout).
    if not ctx.failures:
        ctx.barrier()
    ctx.destroy()


def launched_by_torchrun(env: dict[str, str] | None = None) -> bool:
    """True when WORLD_SIZE says more than one process."""
    env = dict(os.environ) if env is None else env
    return env.get("WORLD_SIZE") not in (None, "", "1")


def _plain_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _first_line(exc: BaseException) -> str:
    return first_line(exc, 200)


def resolve_device(device: str) -> str:
    """The device a `--device` value names (validated); "auto" picks CUDA when torch sees one."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PaprecError(f"--device {device}: no CUDA device is visible to torch; use --device cpu or auto")
        return device
    raise PaprecError(f"--device {device}: expected auto, cpu, cuda or cuda:N")
