"""Progress for long stages: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f}/s" if task.speed else "-/s", style="progress.data.speed")


@contextmanager
def stage_progress(label: str, total: int) -> Iterator[Callable[[], None]]:
    """An advance() callback: a bar with count, rate and ETA on a terminal, log lines every 10 s otherwise."""
    if sys.stderr.isatty():
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeRemainingColumn(),
            transient=False,
        ) as bar:
            task_id = bar.add_task(label, total=total)
            yield lambda: bar.advance(task_id)
        return
    done, last = 0, time.monotonic()
    started = last

    def advance() -> None:
        nonlocal done, last
        done += 1
        if done == total or time.monotonic() - last > 10:
            now = time.monotonic()
            rate = done / max(now - started, 1e-9)
            eta = (total - done) / rate if rate else 0.0
            last = now
            print(f"{label}: {done}/{total} ({rate:.2f}/s, ETA {eta:.0f} s)", file=sys.stderr, flush=True)

    yield advance
