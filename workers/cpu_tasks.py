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
from typing import Any

# Each task reserves one CPU: on one machine they run beside the driver and the model workers, and
# a cluster spreads them over its nodes. Cores are pure, so a task lost with its worker is rerun.
CPU_TASK_OPTIONS = {"num_cpus": 1, "max_retries": 3}
# Tasks queued at once by run_all: enough to fill a cluster's CPUs, bounded so inputs stream.
MAX_TASKS_IN_FLIGHT = 16


def run_timed(core: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """core(*args) and the seconds it computed (summed per stage into the manifest)."""
    started = time.perf_counter()
    result = core(*args)
    return result, time.perf_counter() - started


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


def run_all(core: Callable[..., Any], jobs: Iterable[tuple[Any, tuple]],
            in_flight: int = MAX_TASKS_IN_FLIGHT) -> Iterator[tuple[Any, Any, float]]:
    """(key, core(*args), seconds) for each (key, args) job, as each finishes.

    On Ray when this process has joined it (a build), in this process otherwise (commands that never
    start Ray, and test helpers). Jobs are drawn lazily, at most `in_flight` at a time, so a million
    personas never sit in the object store at once."""
    import ray

    if not ray.is_initialized():
        for key, args in jobs:
            yield key, *run_timed(core, *args)
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
