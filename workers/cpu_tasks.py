"""Pure stage cores as Ray tasks: sampling, validation, settling and record building use every CPU
of the cluster, while the driver only reads, coordinates and commits shards.

Cores take and return Arrow tables (and plain values), so a task runs on any node: it never
touches the run folder, which may be local to the driver.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pyarrow as pa
import pyarrow.parquet as pq


class TaskOptions(TypedDict):
    """The ray.remote options of a CPU task."""

    num_cpus: int
    max_retries: int


# Each task reserves one CPU: on one machine they run beside the driver and the model workers, and
# a cluster spreads them over its nodes. Cores are pure, so a task lost with its worker is rerun.
CPU_TASK_OPTIONS: TaskOptions = {"num_cpus": 1, "max_retries": 3}
# Tasks queued at once by run_all: enough to fill a cluster's CPUs, bounded so inputs stream.
MAX_TASKS_IN_FLIGHT = 16


@dataclass(frozen=True)
class StoredTable:
    """A committed shard file's bytes, sent to a task in place of the table read from it: the task
    reads it (as a table, or a dict of them) before its core runs. Reading a file into a table and
    serializing the table for Ray cost the driver several times what sending the file does."""

    data: bytes

    @classmethod
    def of(cls, path: Path) -> StoredTable:
        return cls(path.read_bytes())

    def read(self) -> pa.Table:
        return pq.read_table(pa.BufferReader(self.data))


def resolved(arg: Any) -> Any:
    """A task's argument with every StoredTable in it (or in a dict of them) read."""
    if isinstance(arg, StoredTable):
        return arg.read()
    if isinstance(arg, dict) and any(isinstance(value, StoredTable) for value in arg.values()):
        return {key: resolved(value) for key, value in arg.items()}
    return arg


def run_timed(core: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """core(*args) and the seconds it computed (summed per stage into the manifest), stored tables read first."""
    started = time.perf_counter()
    result = core(*(resolved(arg) for arg in args))
    return result, time.perf_counter() - started


def run_here(core: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """run_timed in this process, with object-store arguments fetched first (as a task would get them)."""
    import ray

    return run_timed(core, *(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args))


@functools.cache
def _remote_runner() -> Any:
    import ray

    return ray.remote(**CPU_TASK_OPTIONS)(run_timed)


def submit(core: Callable[..., Any], *args: Any) -> Any:
    """Start core(*args) as a Ray task; its ref resolves to (result, seconds). ObjectRef args resolve first."""
    return _remote_runner().remote(core, *args)


def share(value: Any) -> Any:
    """Put a value every task reads (the taxonomy) into the object store once."""
    import ray

    return ray.put(value)


def tasks_can_run(reserved_cpus: float) -> bool:
    """Whether CPU tasks can be scheduled beside model workers that hold `reserved_cpus` for the whole
    build. When they hold every CPU (two pools on a 2-CPU node), a task would wait forever: run inline."""
    import ray

    if not ray.is_initialized():
        return False
    cpus: float = ray.cluster_resources().get("CPU", 0.0)  # type: ignore[no-untyped-call]  # unannotated in Ray
    return cpus - reserved_cpus >= CPU_TASK_OPTIONS["num_cpus"]


def run_all(
    core: Callable[..., Any],
    jobs: Iterable[tuple[Any, tuple[Any, ...]]],
    parallel: bool = True,
    in_flight: int = MAX_TASKS_IN_FLIGHT,
) -> Iterator[tuple[Any, Any, float]]:
    """(key, core(*args), seconds) for each (key, args) job, as each finishes.

    As Ray tasks when `parallel` and this process has joined Ray (a build), in this process otherwise
    (commands that never start Ray, test helpers, and clusters whose CPUs the model workers hold).
    Jobs are drawn lazily, at most `in_flight` at a time, so a million personas never sit in the
    object store at once."""
    import ray

    if not parallel or not ray.is_initialized():
        for key, args in jobs:
            yield key, *run_here(core, *args)
        return
    todo = iter(jobs)
    refs: dict[Any, Any] = {}
    while True:
        for key, args in itertools.islice(todo, max(0, in_flight - len(refs))):
            refs[submit(core, *args)] = key
        if not refs:
            return
        (ref,), _ = ray.wait(list(refs), num_returns=1)
        yield refs.pop(ref), *ray.get(ref)
