"""What every build task shares: task options and reading a stage's shards."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from schemas.records import Skeleton
from taxonomy.skeleton_table import skeletons_of_table
from workers.worker_crash import WorkerCrashError

STAGE_TASK = {"cache_policy": NO_CACHE, "log_prints": False}


def retry_unless_worker_crashed(task: object, task_run: object, state: State) -> bool:
    """Prefect retry condition: a model worker that kept dying through its restarts would die again."""
    try:
        state.result()
    except WorkerCrashError:
        return False
    except Exception:
        return True
    return True


# Tasks that drive the model: one more try for a transient failure, none after a worker crash.
MODEL_TASK = {**STAGE_TASK, "retries": 1, "retry_condition_fn": retry_unless_worker_crashed}


def shard_ranges(first_slot: int, count: int, shard_size: int) -> list[range]:
    end = first_slot + count
    return [range(start, min(start + shard_size, end)) for start in range(first_slot, end, shard_size)]


def read_skeletons(path: Path) -> list[Skeleton]:
    return skeletons_of_table(pq.read_table(path))


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()
