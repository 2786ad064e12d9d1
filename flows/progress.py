"""Progress for long stages: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def stage_progress(label: str, total: int) -> Iterator[Callable[[], None]]:
    if sys.stderr.isatty():
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), transient=False) as bar:
            task_id = bar.add_task(label, total=total)
            yield lambda: bar.advance(task_id)
        return
    done, last = 0, time.monotonic()

    def advance() -> None:
        nonlocal done, last
        done += 1
        if done == total or time.monotonic() - last > 10:
            last = time.monotonic()
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    yield advance
