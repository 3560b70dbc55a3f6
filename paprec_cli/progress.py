"""Progress on stderr that works everywhere: rich bars on a terminal, plain log lines elsewhere.

On a terminal (and without `-q`) long loops draw rich progress bars. When stderr is not a terminal (a
batch job's log file, a pipe) bars would draw nothing for minutes, so the same events become plain,
timestamp-free lines, one per event: one per training epoch (plus one a minute inside a long epoch), one
per search step (round, phase, position, surrogate, accepted, elapsed, ETA) and one a minute during a long
evaluation (`heartbeat`). `-q` silences all of it; `-v` adds detail (candidates and baselines per step).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from paprec_cli.output import Output

#: Seconds between two plain lines of the same long operation (epoch, evaluation).
HEARTBEAT_S = 60.0
Clock = Callable[[], float]


class StepState(Protocol):
    """What the search observer reads from the search state (see `paprec_cli.search.state`)."""

    accepted_shared: int
    personal_changes: int


def duration(seconds: float | None) -> str:
    """`75.2` -> "1m15s", `3725` -> "1h02m05s", `4.2` -> "4.2s"; None/NaN -> "?"."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def live(console: Console) -> bool:
    """True when `console` should draw rich bars: a terminal, not silenced."""
    return console.is_terminal and not console.quiet


def log_line(console: Console, line: str) -> None:
    """One plain progress line on `console` (no markup, never wrapped), unless it is quiet."""
    if not console.quiet:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


# -- training ----------------------------------------------------------------------------------------
@dataclass
class EpochLog:
    """Callback of `Trainer.run_epoch` off a terminal: a line at most once per `every` seconds."""

    console: Console
    epoch: int
    epochs: int
    steps: int
    clock: Clock = time.monotonic
    every: float = HEARTBEAT_S
    started: float = field(init=False)
    last: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.last = self.clock()

    def __call__(self, steps: int, loss: float, examples: int) -> None:
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        eta = elapsed / steps * (self.steps - steps) if steps else None
        log_line(self.console, f"epoch {self.epoch}/{self.epochs}: step {steps}/{self.steps}, loss {loss:.4f}, "
                               f"{examples / elapsed:,.0f} ex/s, elapsed {duration(elapsed)}, ETA {duration(eta)}")


@dataclass
class EpochBar:
    """Callback target of `Trainer.run_epoch`: advances the bar and shows running loss and speed."""

    progress: Progress
    task_id: Any
    started: float

    def __call__(self, steps: int, loss: float, examples: int) -> None:
        elapsed = max(self.progress.get_time() - self.started, 1e-9)
        self.progress.update(self.task_id, completed=steps, loss=f"{loss:.4f}", speed=f"{examples / elapsed:,.0f} ex/s")


@contextmanager
def epoch_bar(console: Console, epoch: int, epochs: int, steps: int) -> Iterator[Callable[[int, float, int], None]]:
    """Progress of one training epoch of `steps` batches: a rich bar on a terminal, else `EpochLog`.

    The epoch's closing line (loss, speed, validation) is the trainer's own `say`."""
    if not live(console):
        yield EpochLog(console, epoch, epochs, steps)
        return
    progress = Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task_id = progress.add_task("train", total=steps, epoch=f"{epoch}/{epochs}", loss="-", speed="-")
        yield EpochBar(progress, task_id, progress.get_time())


# -- search ------------------------------------------------------------------------------------------
@dataclass
class SearchLog:
    """Turns search steps into one plain line each; also the text of the terminal bar.

    `per_round` steps make a round (shared slots, plus one personal step); the ETA is the mean step time
    times the steps left to `max_rounds`, capped by what is left of `time_budget` (seconds). A search
    that converges early finishes before its ETA.
    """

    per_round: int
    max_rounds: int
    time_budget: float | None = None
    verbose: bool = False
    clock: Clock = time.monotonic
    started: float = field(init=False)
    steps: int = 0
    round: int = 0
    in_round: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def eta(self, elapsed: float, record: dict[str, Any]) -> float | None:
        """Seconds left: mean step time x steps left to `max_rounds` (slots are visited in a shuffled
        order, so steps are counted per round), capped by the time budget left; None before a step."""
        if int(record["round"]) != self.round:
            self.round, self.in_round = int(record["round"]), 0
        self.in_round += 1
        done = (self.round - 1) * self.per_round + min(self.in_round, self.per_round)
        left = max(self.max_rounds * self.per_round - done, 0)
        estimate = elapsed / self.steps * left if self.steps else None
        if self.time_budget is not None:
            budget_left = max(self.time_budget - elapsed, 0.0)
            estimate = budget_left if estimate is None else min(estimate, budget_left)
        return estimate

    def line(self, state: StepState, record: dict[str, Any]) -> str:
        self.steps += 1
        elapsed = self.clock() - self.started
        kind = record.get("kind", "?")
        if kind == "personal":
            accepted = f"changed {record.get('changed', 0)} user(s)"
        else:
            kept = record.get("accepted")
            accepted = f"accepted '{kept['text']}'" if kept else "accepted none"
        position = str(record.get("position", "?"))
        where = position if position.startswith(kind) else f"{kind} {position}"  # "personal[0]", not twice
        text = (f"search: round {record['round']}/{self.max_rounds} {where} "
                f"surrogate {float(record['surrogate']):.4f} {accepted} (kept {state.accepted_shared} shared, "
                f"{state.personal_changes} personal) elapsed {duration(elapsed)} "
                f"ETA {duration(self.eta(elapsed, record))}")
        if self.verbose:
            tried = record.get("candidates") or record.get("users") or []
            text += f" [baseline {float(record.get('baseline', math.nan)):.4f}, {len(tried)} tried, " \
                    f"step {float(record.get('seconds', math.nan)):.2f}s]"
        return text


Observer = Callable[[Any, dict[str, Any]], None]
#: The key of an observer record that is a message, not a step (`runner.search`: the guarded history start).
NOTE = "note"


@contextmanager
def search_progress(out: Output, per_round: int, max_rounds: int, time_budget: float | None = None,
                    clock: Clock = time.monotonic) -> Iterator[Observer]:
    """Observer for `runner.search`: a rich bar per round on a terminal, one log line per step elsewhere
    (and on a terminal too with `-v`). Silent with `-q`."""
    log = SearchLog(per_round, max_rounds, time_budget, out.verbose, clock)
    console = out.err
    if console.quiet:
        yield lambda state, record: None
        return
    if not live(console):
        def plain(state: Any, record: dict[str, Any]) -> None:
            if NOTE in record:  # a message before the rounds (`runner.Observer`)
                log_line(console, str(record[NOTE]))
            elif record:
                log_line(console, log.line(state, record))

        yield plain
        return
    columns = (TextColumn("{task.description}"), BarColumn(bar_width=12), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("starting", total=per_round)
        seen = {"round": 0}

        def observe(state: Any, record: dict[str, Any]) -> None:
            if NOTE in record:
                progress.console.print(str(record[NOTE]), markup=False, highlight=False, soft_wrap=True)
                return
            if not record:
                return
            text = log.line(state, record)
            if out.verbose:
                progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
            if record["round"] != seen["round"]:
                seen["round"] = record["round"]
                progress.reset(bar, total=per_round)
            progress.update(bar, advance=1, description=(
                f"round {record['round']}/{max_rounds} {record['position']:<11} best {record['surrogate']:.4f} "
                f"kept {state.accepted_shared} shared/{state.personal_changes} personal"))

        yield observe


# -- long operations ---------------------------------------------------------------------------------
@contextmanager
def heartbeat(console: Console, label: str, every: float = HEARTBEAT_S) -> Iterator[None]:
    """While the block runs, write "`label`: still running, elapsed 2m00s" every `every` seconds off a
    terminal (a terminal shows the command's own status); nothing when quiet or on a terminal."""
    if console.quiet or console.is_terminal:
        yield
        return
    stop = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            log_line(console, f"{label}: still running, elapsed {duration(time.monotonic() - started)}")

    thread = threading.Thread(target=beat, name="paprec-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
