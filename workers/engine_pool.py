"""Model workers that live for a whole build: each loads its engine once, then answers every pass.

A pool holds `backend.workers` Ray actors for one backend config. Every propose round, backfill
wave and judge pass sends its requests to the same actors, so a model (a llama.cpp GGUF, a vLLM
engine, an HTTP client) is loaded once per build, not once per pass. Each actor is restarted at
most `backend.max_worker_restarts` times (and its batch rerun); after that the pool raises a
WorkerCrashError naming the signal, the stage and the likely cause.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.config import BackendConfig
from schemas.errors import BackendError, UserInputError
from workers.backend import GenerationRequest, GenerationResult
from workers.worker_crash import (
    WorkerCrashError,
    crash_folder,
    creation_failure,
    enable_crash_trace,
    is_worker_death,
    read_crash_signal,
)

# Batches queued per actor: the next batch is waiting when one finishes, so an engine never idles
# while the driver turns results around.
BATCHES_IN_FLIGHT_PER_WORKER = 2


class EngineWorker:
    """The body of one Ray actor: one backend, built once, answering batches of requests."""

    def __init__(self, backend_cfg: dict, threads: int, secrets: dict[str, str], crash_dir: str | None) -> None:
        from workers.factory import create_backend

        self.crash_trace = enable_crash_trace(crash_dir)  # names the signal if native code kills us
        # Workers on other nodes lack the driver's environment: the API key travels in memory with
        # the actor, never to disk.
        os.environ.update(secrets)
        started = time.monotonic()
        self.backend = create_backend(BackendConfig.model_validate(backend_cfg), threads=threads)
        # A restarted actor runs this constructor again under a new id: the driver counts starts by id,
        # from its answers and (on the driver's node) from a note here, for a worker killed before answering.
        self.start = {"id": uuid.uuid4().hex, "seconds": round(time.monotonic() - started, 3)}
        if crash_dir and Path(crash_dir).is_dir():
            (Path(crash_dir) / f"start-{self.start['id']}.json").write_bytes(orjson.dumps(self.start))

    def ready(self) -> dict:
        return self.start

    def generate(self, requests: list[dict]) -> dict:
        results = self.backend.generate([GenerationRequest.model_validate(r) for r in requests])
        return {"start": self.start, "results": [r.model_dump() for r in results]}


@dataclass
class EngineStarts:
    """Engine loads seen by the driver: one per actor start, restarts included."""

    seconds: dict[str, float] = field(default_factory=dict)  # start id -> seconds spent loading

    def record(self, start: dict) -> None:
        self.seconds.setdefault(start["id"], float(start["seconds"]))

    def read_notes(self, folder: Path) -> None:
        for note in folder.glob("start-*.json"):
            self.record(orjson.loads(note.read_bytes()))

    def summary(self) -> dict[str, Any]:
        return {"starts": len(self.seconds), "start_seconds": round(sum(self.seconds.values()), 3)}


def worker_threads(cfg: BackendConfig) -> int:
    """Threads per model worker: the configured number, or this cluster's CPUs shared among the workers."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    return cfg.threads_per_worker or max(1, cpus // cfg.workers)


def backend_secrets(cfg: BackendConfig) -> dict[str, str]:
    """The API key a backend needs, read from the driver's environment (or a clear error)."""
    if not cfg.api_key_env:
        return {}
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise UserInputError("run config", "backend.api_key_env", f"${cfg.api_key_env} is not set",
                             f"export {cfg.api_key_env}=<key> before running")
    return {cfg.api_key_env: key}


class EnginePool:
    """`cfg.workers` long-lived model actors for one backend config."""

    def __init__(self, cfg: BackendConfig, crash_dir: Path, starts: EngineStarts) -> None:
        import ray

        self.cfg = cfg
        self.crash_dir = crash_dir
        self.starts = starts
        actor_class = ray.remote(EngineWorker).options(
            num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker,
            # Ray restarts nothing by default; a bounded number of restarts (with the batch rerun)
            # survives an out-of-memory kill, and a worker that dies on every request stops the build.
            max_restarts=cfg.max_worker_restarts, max_task_retries=cfg.max_worker_restarts,
        )
        kwargs = {"backend_cfg": cfg.model_dump(mode="json"), "threads": worker_threads(cfg),
                  "secrets": backend_secrets(cfg), "crash_dir": str(crash_dir)}
        self.actors = [actor_class.remote(**kwargs) for _ in range(cfg.workers)]
        self._wait_until_loaded()

    def _wait_until_loaded(self) -> None:
        import ray

        try:
            for start in ray.get([actor.ready.remote() for actor in self.actors]):
                self.starts.record(start)
        except Exception as exc:
            self._raise_for(exc, "model load")
            raise

    def _raise_for(self, exc: BaseException, stage: str) -> None:
        failure = creation_failure(exc)
        if failure:
            raise BackendError(f"the {self.cfg.kind} model worker could not start: {failure}") from None
        if is_worker_death(exc):
            raise WorkerCrashError(stage, read_crash_signal(self.crash_dir), self.cfg.max_worker_restarts,
                                   str(exc).splitlines()[0]) from exc

    def generate(self, requests: Iterable[GenerationRequest], stage: str) -> Iterator[GenerationResult]:
        """Answer every request; results stream in the order batches finish (match them by request_id)."""
        import ray

        pending = deque(chunked([r.model_dump() for r in requests], self.cfg.batch_size))
        in_flight: dict[Any, int] = {}
        load = [0] * len(self.actors)

        def fill() -> None:
            while pending and min(load) < BATCHES_IN_FLIGHT_PER_WORKER:
                worker = load.index(min(load))
                in_flight[self.actors[worker].generate.remote(pending.popleft())] = worker
                load[worker] += 1

        fill()
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            load[in_flight.pop(ref)] -= 1
            try:
                answer = ray.get(ref)
            except Exception as exc:
                self._raise_for(exc, stage)
                raise
            fill()
            self.starts.record(answer["start"])
            for row in answer["results"]:
                yield GenerationResult.model_validate(row)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


def chunked(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Engines:
    """The model pools of one command (a build: the proposer's, and the judge's when it differs).

    Use as a context manager: pools start on first use and are stopped on exit.
    """

    def __init__(self) -> None:
        self.pools: dict[str, EnginePool] = {}
        self.starts = EngineStarts()
        self._crash_dirs = crash_folder()
        self.crash_dir: Path | None = None

    def __enter__(self) -> Engines:
        self.crash_dir = self._crash_dirs.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.crash_dir is not None:
                self.starts.read_notes(self.crash_dir)
            for pool in self.pools.values():
                pool.close()
        except Exception:  # Ray may already be down (a stop signal): nothing left to free
            pass
        finally:
            self.pools.clear()
            self._crash_dirs.__exit__(*exc_info)

    def pool(self, cfg: BackendConfig) -> EnginePool:
        key = cfg.model_dump_json()
        if key not in self.pools:
            if self.crash_dir is None:
                raise RuntimeError("Engines is used outside its `with` block")
            self.pools[key] = EnginePool(cfg, self.crash_dir, self.starts)
        return self.pools[key]

    def generate(self, cfg: BackendConfig, requests: list[GenerationRequest],
                 stage: str) -> Iterator[GenerationResult]:
        if not requests:
            return iter(())
        return self.pool(cfg).generate(requests, stage)
