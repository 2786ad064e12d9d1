"""The processes a command started, read from /proc, and stopping them (Linux; elsewhere a no-op).

A process is named by (pid, start time), so a pid the kernel reuses for someone else's process is
never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: int  # clock ticks after boot (field 22 of /proc/PID/stat)


@dataclass(frozen=True)
class ProcessStat:
    parent: int
    session: int
    started: int


def read_stat(pid: int) -> ProcessStat | None:
    """Parent, session and start time of a live process, or None when it is gone (or a zombie)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name before ")" may hold spaces
    if fields[0] == "Z":
        return None
    return ProcessStat(parent=int(fields[1]), session=int(fields[3]), started=int(fields[19]))


def identify(pid: int) -> ProcessId | None:
    stat = read_stat(pid)
    return ProcessId(pid, stat.started) if stat else None


def is_alive(process: ProcessId) -> bool:
    stat = read_stat(process.pid)
    return stat is not None and stat.started == process.started


def read_process_table() -> dict[int, ProcessStat]:
    if not PROC.is_dir():
        return {}
    table = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := read_stat(int(entry.name))):
            table[int(entry.name)] = stat
    return table


def list_descendants(root: int, table: dict[int, ProcessStat] | None = None) -> list[ProcessId]:
    """Every live process below root (children, grandchildren, ...), parents before children."""
    table = read_process_table() if table is None else table
    children: dict[int, list[ProcessId]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.parent, []).append(ProcessId(pid, stat.started))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def list_orphans(session: int, started_after: int) -> list[ProcessId]:
    """Processes of a session, started after a moment, whose parent is gone (re-parented outside it).

    A command that dies leaves its children to init (or a subreaper) with their session intact;
    this finds those it started too shortly before dying for a watcher to have seen them.
    """
    table = read_process_table()
    return [
        ProcessId(pid, stat.started)
        for pid, stat in table.items()
        if stat.session == session
        and stat.started >= started_after
        and (stat.parent not in table or table[stat.parent].session != session)
    ]


def signal_processes(processes: list[ProcessId], signum: int) -> None:
    for process in processes:
        if is_alive(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, signum)


def stop_processes(processes: list[ProcessId], grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after grace_s."""
    signal_processes(processes, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_alive(p) for p in processes):
        time.sleep(0.05)
    signal_processes(processes, signal.SIGKILL)


def stop_descendants(root: int, grace_s: float = 3.0) -> None:
    """Stop everything below root, including what its children start while they are being stopped."""
    for _ in range(3):
        processes = list_descendants(root)
        if not processes:
            return
        stop_processes(processes, grace_s)
