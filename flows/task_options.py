"""Prefect options every build task shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.client.schemas.objects import State

from workers.worker_crash import WorkerCrashError


class StageTaskOptions(TypedDict, total=False):
    """The `@task` keyword arguments these option sets give (a typed subset of Prefect's)."""

    cache_policy: CachePolicy
    log_prints: bool
    retries: int
    retry_condition_fn: Callable[[object, object, State[Any]], bool]


STAGE_TASK: StageTaskOptions = {"cache_policy": NO_CACHE, "log_prints": False}


def retry_unless_worker_crashed(task: object, task_run: object, state: State[Any]) -> bool:
    """Prefect retry condition: a model worker that kept dying through its restarts would die again."""
    try:
        state.result()
    except WorkerCrashError:
        return False
    except Exception:
        return True
    return True


# Tasks that drive the model: one more try for a transient failure, none after a worker crash.
MODEL_TASK: StageTaskOptions = {**STAGE_TASK, "retries": 1, "retry_condition_fn": retry_unless_worker_crashed}
