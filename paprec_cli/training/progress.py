"""Rich progress on stderr: one bar per epoch with loss, examples/s and ETA (hidden by --quiet)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


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
def epoch_bar(console: Console, epoch: int, epochs: int, steps: int) -> Iterator[EpochBar]:
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
        disable=console.quiet,
    )
    with progress:
        task_id = progress.add_task("train", total=steps, epoch=f"{epoch}/{epochs}", loss="-", speed="-")
        yield EpochBar(progress, task_id, progress.get_time())
