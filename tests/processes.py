"""The machine's process table from /proc (Linux), for tests that kill what a build started."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str  # the process title's first 15 characters (ray::EngineWork, raylet, python3, ...)
    session: int


def process_table() -> list[ProcessInfo]:
    table = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it ended while we looked
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        table.append(ProcessInfo(int(stat.parent.name), name, int(rest.split()[3])))
    return table
