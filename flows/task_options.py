"""Prefect options every build task shares."""

from __future__ import annotations

from prefect.cache_policies import NO_CACHE
from prefect.states import State

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
