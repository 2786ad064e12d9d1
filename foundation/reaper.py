"""A watchdog that outlives a command to stop what it started: `python -m foundation.reaper PID`.

A command killed with SIGKILL cannot clean up; its Prefect API server and local Ray processes
would keep running with no parent. The reaper, started by the command in a session of its own,
remembers every process below the command while it runs and, once the command is gone, stops
those still alive (and whatever they started). It imports nothing heavy and polls /proc.
"""

from __future__ import annotations

import os
import sys
import time

from foundation.process_tree import (
    ProcessId,
    is_alive,
    list_descendants,
    list_orphans,
    read_stat,
    stop_processes,
)

# What starts between two looks is found as an orphan of the session. A look walks /proc: every
# 0.25 s it took ~2% of a core from a build on 2 cores.
POLL_S = 1.0


def watch(parent: ProcessId) -> set[ProcessId]:
    """Everything seen below parent until parent ends."""
    seen: set[ProcessId] = set()
    me = os.getpid()
    while is_alive(parent):
        seen.update(p for p in list_descendants(parent.pid) if p.pid != me)
        time.sleep(POLL_S)
    return seen


def reap(seen: set[ProcessId], session: int, parent_started: int) -> None:
    """Stop the remembered processes still alive, and what they started after the parent died.

    Children the parent started in its last moments (after the last look) are found as orphans of
    its session started after it.
    """
    me = os.getpid()
    for _ in range(3):
        roots = {p for p in seen if is_alive(p)} | set(list_orphans(session, parent_started))
        below = {child for p in roots for child in list_descendants(p.pid)}
        targets = sorted((roots | below) - {p for p in roots | below if p.pid == me}, key=lambda p: p.pid)
        if not targets:
            return
        stop_processes(targets, grace_s=2.0)
        seen = set(targets)


def main(argv: list[str]) -> int:
    """argv: the command's pid, then its session and start time (read here when not given)."""
    parent_pid = int(argv[1])
    if len(argv) > 3:
        session, started = int(argv[2]), int(argv[3])
    elif (stat := read_stat(parent_pid)) is not None:
        session, started = stat.session, stat.started
    else:
        return 0
    # Gone already (it stopped before this process started): what it started is found as orphans.
    reap(watch(ProcessId(parent_pid, started)), session, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
