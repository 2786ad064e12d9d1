"""Model workers that live for a whole build: each loads its engine once, then answers every pass.

A pool holds `backend.workers` Ray actors for one backend config. Every propose round, backfill
wave and judge pass sends its requests to the same actors, so a model (a llama.cpp GGUF, a vLLM
engine, an HTTP client) is loaded once per build, not once per pass. Each actor is restarted at
most `backend.max_worker_restarts` times (and its batch rerun); after that the pool raises a
WorkerCrashError naming the signal, the stage and the likely cause.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import orjson

from schemas.config import BackendConfig
from schemas.errors import BackendError, UserInputError
from workers.backend import GenerationRequest, GenerationResult
from workers.factory import takes_overlapping_batches
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
# How often the driver, while no answer arrives, looks for workers that no node can host.
PLACEMENT_POLL_SECONDS = 5.0
# GCS actor states of a worker that is not running: waiting for a node, or for one to replace a lost one.
NOT_RUNNING = ("DEPENDENCIES_UNREADY", "PENDING_CREATION", "RESTARTING")
log = logging.getLogger("populace.workers")
T = TypeVar("T")


class PlacementError(BackendError):
    """No node of the cluster could host a model worker for longer than backend.placement_timeout_s."""


class EngineWorker:
    """The body of one Ray actor: one backend, built once, answering batches of requests."""

    def __init__(self, backend_cfg: dict[str, Any], secrets: dict[str, str], crash_dir: str | None) -> None:
        import ray

        from workers.factory import create_backend

        self.crash_trace = enable_crash_trace(crash_dir)  # names the signal if native code kills us
        # Workers on other nodes lack the driver's environment: the API key travels in memory with
        # the actor, never to disk.
        os.environ.update(secrets)
        cfg = BackendConfig.model_validate(backend_cfg)
        node = ray.get_runtime_context().get_node_id()
        threads = cfg.threads_per_worker or node_threads(cfg, node_cpus(node))
        started = time.monotonic()
        self.backend = create_backend(cfg, threads=threads)
        # A restarted actor runs this constructor again under a new id: the driver counts starts by id,
        # from its answers and (on the driver's node) from a note here, for a worker killed before answering.
        self.start: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "seconds": round(time.monotonic() - started, 3),
            "node": node,
            "threads": threads,
            "pid": os.getpid(),
        }
        if crash_dir and Path(crash_dir).is_dir():
            (Path(crash_dir) / f"start-{self.start['id']}.json").write_bytes(orjson.dumps(self.start))

    def ready(self) -> dict[str, Any]:
        return self.start

    def generate(self, requests: list[dict[str, Any]]) -> dict[str, Any]:
        results = self.backend.generate([GenerationRequest.model_validate(r) for r in requests])
        return {"start": self.start, "results": [r.model_dump() for r in results]}


def node_cpus(node_id: str) -> float:
    """The CPUs a Ray node declares (its `ray start --num-cpus`), or this machine's count."""
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]  # unannotated in Ray
    declared = next((n["Resources"].get("CPU", 0.0) for n in nodes if n["NodeID"] == node_id), 0.0)
    return declared or float(os.cpu_count() or 1)


def node_threads(cfg: BackendConfig, cpus: float) -> int:
    """Threads for one model worker: the node's CPUs shared among the pool's workers that fit on it."""
    fit = int(cpus // cfg.cpus_per_worker) if cfg.cpus_per_worker else cfg.workers
    return max(1, int(cpus) // max(1, min(cfg.workers, fit)))


@dataclass
class EngineStarts:
    """Engine loads seen by the driver: one per actor start, restarts included."""

    starts: dict[str, dict[str, Any]] = field(default_factory=dict)  # start id -> {seconds, node, threads}

    def record(self, start: dict[str, Any]) -> None:
        self.starts.setdefault(start["id"], {k: start[k] for k in ("seconds", "node", "threads") if k in start})

    def read_notes(self, folder: Path) -> None:
        for note in folder.glob("start-*.json"):
            self.record(orjson.loads(note.read_bytes()))

    def summary(self) -> dict[str, Any]:
        return {
            "starts": len(self.starts),
            "start_seconds": round(sum(s["seconds"] for s in self.starts.values()), 3),
            "placements": [{"node": s.get("node"), "threads": s.get("threads")} for s in self.starts.values()],
        }


def backend_secrets(cfg: BackendConfig) -> dict[str, str]:
    """The API key a backend needs, read from the driver's environment (or a clear error)."""
    if not cfg.api_key_env:
        return {}
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise UserInputError(
            "run config",
            "backend.api_key_env",
            f"${cfg.api_key_env} is not set",
            f"export {cfg.api_key_env}=<key> before running",
        )
    return {cfg.api_key_env: key}


class EnginePool:
    """`cfg.workers` long-lived model actors for one backend config."""

    def __init__(self, cfg: BackendConfig, crash_dir: Path, starts: EngineStarts) -> None:
        import ray

        self.cfg = cfg
        self.crash_dir = crash_dir
        self.starts = starts
        actor_class = ray.remote(EngineWorker).options(
            num_cpus=cfg.cpus_per_worker,
            num_gpus=cfg.gpus_per_worker,
            resources=cfg.resources or None,
            # Ray restarts nothing by default; a bounded number of restarts (with the batch rerun)
            # survives an out-of-memory kill, and a worker that dies on every request stops the build.
            max_restarts=cfg.max_worker_restarts,
            max_task_retries=cfg.max_worker_restarts,
            max_concurrency=BATCHES_IN_FLIGHT_PER_WORKER if takes_overlapping_batches(cfg) else 1,
        )
        kwargs = {
            "backend_cfg": cfg.model_dump(mode="json"),
            "secrets": backend_secrets(cfg),
            "crash_dir": str(crash_dir),
        }
        # Actor handles: Ray resolves their methods (ready, generate) at run time, untyped.
        self.actors: list[Any] = [actor_class.remote(**kwargs) for _ in range(cfg.workers)]
        self.unplaced_since: float | None = None
        self.running_pids = [0] * len(self.actors)  # each worker's process, as its last answer said
        self._wait_until_loaded()

    def _answered(self, worker: int, start: dict[str, Any]) -> None:
        self.starts.record(start)
        self.running_pids[worker] = start.get("pid", 0)

    def _wait_until_loaded(self) -> None:
        import ray

        loading = {actor.ready.remote(): worker for worker, actor in enumerate(self.actors)}
        try:
            while loading:
                (ref,) = self._wait_for_one(list(loading), "model load")
                self._answered(loading.pop(ref), ray.get(ref))
        except Exception as exc:
            self._raise_for(exc, "model load")
            raise

    def _wait_for_one(self, refs: list[Any], stage: str) -> list[Any]:
        """The first ref to finish; while none does, a worker no node can host for too long stops the build."""
        import ray

        while True:
            ready, _ = ray.wait(refs, num_returns=1, timeout=PLACEMENT_POLL_SECONDS)
            if ready:
                return ready
            self._check_placement(stage)

    def _check_placement(self, stage: str) -> None:
        unplaced = unplaced_workers(self.actors, self.running_pids)
        if not unplaced:
            self.unplaced_since = None
            return
        now = time.monotonic()
        if self.unplaced_since is None:
            self.unplaced_since = now
            log.warning(
                "%d %s model worker(s) waiting for a Ray node with %s free (%s)",
                unplaced,
                self.cfg.kind,
                self.demand(),
                stage,
            )
        waited = now - self.unplaced_since
        if waited >= self.cfg.placement_timeout_s:
            raise PlacementError(
                f"no Ray node could host {unplaced} of {len(self.actors)} {self.cfg.kind} model worker(s) for "
                f"{waited:.0f} s ({stage}): each reserves {self.demand()}; {cluster_capacity()} (fix: add a node "
                f"with those resources, e.g. `{self.node_command()}`, "
                "lower backend.workers, cpus_per_worker, gpus_per_worker or resources, or raise "
                "backend.placement_timeout_s; rerun the same command to resume)"
            )

    def node_command(self) -> str:
        """The `ray start` that adds a node able to host one worker."""
        parts = ["ray start --address HEAD:PORT", f"--num-cpus {max(1, math.ceil(self.cfg.cpus_per_worker))}"]
        if self.cfg.gpus_per_worker:
            parts.append(f"--num-gpus {math.ceil(self.cfg.gpus_per_worker)}")
        if self.cfg.resources:
            parts.append(f"--resources '{orjson.dumps(self.cfg.resources).decode()}'")
        return " ".join(parts)

    def demand(self) -> str:
        wanted = {"CPU": self.cfg.cpus_per_worker, "GPU": self.cfg.gpus_per_worker, **self.cfg.resources}
        return ", ".join(f"{name} {amount:g}" for name, amount in wanted.items() if amount)

    def _raise_for(self, exc: BaseException, stage: str) -> None:
        failure = creation_failure(exc)
        if failure:
            raise BackendError(f"the {self.cfg.kind} model worker could not start: {failure}") from None
        if is_worker_death(exc):
            raise WorkerCrashError(
                stage, read_crash_signal(self.crash_dir), self.cfg.max_worker_restarts, str(exc).splitlines()[0]
            ) from exc

    def generate(self, requests: Iterable[GenerationRequest], stage: str) -> Iterator[GenerationResult]:
        """Answer every request; results stream in the order batches finish (match them by request_id)."""
        stream = self.stream(stage)
        stream.add(requests)
        for event in stream:
            yield event.value

    def stream(self, stage: str) -> RequestStream:
        """A stream the caller feeds while it reads: requests added as answers arrive keep the workers busy."""
        return RequestStream(lambda: self, stage)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


@dataclass(frozen=True)
class StreamEvent:
    """One thing a RequestStream delivers: a generation result, or a tracked Ray task's return value."""

    kind: str  # "result" or "task"
    value: Any
    tag: Any = None


class RequestStream:
    """Requests for one pool, fed while answers are read, and other Ray tasks waited on beside them.

    The caller adds requests (they go out in batches, BATCHES_IN_FLIGHT_PER_WORKER per worker) and
    tracks Ray refs of its own work (validation, settling); iterating yields each result and each
    finished task as it comes, until nothing is queued, in flight or tracked. So the driver validates
    and revises while the model workers keep generating.
    """

    def __init__(self, open_pool: Callable[[], EnginePool], stage: str) -> None:
        self.open_pool = open_pool
        self._pool: EnginePool | None = None  # opened by the first request: a resumed wave may need none
        self.stage = stage
        self.pending: deque[list[dict[str, Any]]] = deque()
        self.in_flight: dict[Any, tuple[int, list[dict[str, Any]]]] = {}  # ref -> (worker, its batch)
        self.tracked: dict[Any, Any] = {}  # ref -> the caller's tag
        self.load: list[int] = []
        self.resent = 0

    @property
    def pool(self) -> EnginePool:
        if self._pool is None:
            self._pool = self.open_pool()
            self.load = [0] * len(self._pool.actors)
        return self._pool

    def add(self, requests: Iterable[GenerationRequest]) -> None:
        self.add_dumped([r.model_dump() for r in requests])

    def add_dumped(self, requests: list[dict[str, Any]]) -> None:
        """Requests already in the form the workers take (GenerationRequest dumps, made in a CPU task)."""
        if requests:
            self.pending.extend(chunked(requests, self.pool.cfg.batch_size))
            self._fill()

    def track(self, ref: Any, tag: Any) -> None:
        self.tracked[ref] = tag

    @property
    def queued_requests(self) -> int:
        """Requests not yet answered: queued here or in a batch a worker holds."""
        return sum(len(b) for b in self.pending) + sum(len(b) for _, b in self.in_flight.values())

    def _fill(self) -> None:
        while self.pending and min(self.load) < BATCHES_IN_FLIGHT_PER_WORKER:
            worker = self.load.index(min(self.load))
            batch = self.pending.popleft()
            self.in_flight[self.pool.actors[worker].generate.remote(batch)] = (worker, batch)
            self.load[worker] += 1

    def __iter__(self) -> Iterator[StreamEvent]:
        import ray

        while self.in_flight or self.tracked or self.pending:
            self._fill()
            if self._pool is None:  # only the caller's own tasks so far: no workers to watch
                (ref,), _ = ray.wait(list(self.tracked), num_returns=1)
            else:
                (ref,) = self._pool._wait_for_one([*self.in_flight, *self.tracked], self.stage)
            if ref in self.tracked:
                tag = self.tracked.pop(ref)
                yield StreamEvent("task", ray.get(ref), tag)
                continue
            answer = self._answer_of(ref)
            if answer is not None:
                for row in answer["results"]:
                    yield StreamEvent("result", GenerationResult.model_validate(row))

    def _answer_of(self, ref: Any) -> dict[str, Any] | None:
        """A finished batch's answer, or None when it must be sent again (its node went away)."""
        import ray
        from ray.exceptions import ActorUnavailableError

        worker, batch = self.in_flight.pop(ref)
        self.load[worker] -= 1
        pool = self.pool
        try:
            answer: dict[str, Any] = ray.get(ref)  # what EngineWorker.generate returned
        except ActorUnavailableError as exc:
            # The worker's node went away while the batch ran (Ray does not rerun it itself: it may
            # have run). Answers are matched by request id, so the batch is sent again; the worker
            # restarts elsewhere, and one that cannot is a placement error or a worker death.
            self.resent += 1
            if self.resent > len(pool.actors) * (pool.cfg.max_worker_restarts + 1) * BATCHES_IN_FLIGHT_PER_WORKER:
                pool._raise_for(exc, self.stage)
                raise
            self.pending.appendleft(batch)
            return None
        except Exception as exc:
            pool._raise_for(exc, self.stage)
            raise
        self._fill()
        pool._answered(worker, answer["start"])
        return answer


def unplaced_workers(actors: list[Any], running_pids: list[int]) -> int:
    """Workers not running anywhere: waiting for a node to host them, or for one to replace a lost node.

    Read from the GCS actor table: a worker that is not alive is placed (perhaps loading its model)
    once a new process holds it, one other than the process that last answered. Ray's public state
    API would need the dashboard, which a build may run without.
    """
    from ray._private import state

    count = 0
    for actor, last_pid in zip(actors, running_pids, strict=True):
        info = state.actors(actor_id=actor._actor_id.hex())
        count += info.get("State") in NOT_RUNNING and info.get("Pid", 0) in (0, last_pid)
    return count


def cluster_capacity() -> str:
    """What the cluster's live nodes declare and what is free now, for the placement error."""
    import ray

    def shown(resources: dict[str, float]) -> str:
        return ", ".join(
            f"{k} {v:g}"
            for k, v in sorted(resources.items())
            if not k.startswith("node:") and k not in ("memory", "object_store_memory")
        )

    # ray.nodes() and ray.available_resources() are unannotated in Ray.
    live: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    free: dict[str, float] = ray.available_resources()  # type: ignore[no-untyped-call]
    nodes = [f"{n['NodeManagerAddress']} ({shown(n['Resources'])})" for n in live if n["Alive"]]
    return f"live nodes: {'; '.join(nodes) or 'none'}; free now: {shown(free) or 'nothing'}"


def chunked(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if self.crash_dir is not None:
                self.starts.read_notes(self.crash_dir)
            for pool in self.pools.values():
                pool.close()
        except Exception:  # Ray may already be down (a stop signal): nothing left to free
            pass
        finally:
            self.pools.clear()
            self._crash_dirs.__exit__(exc_type, exc, traceback)

    def pool(self, cfg: BackendConfig) -> EnginePool:
        key = cfg.model_dump_json()
        if key not in self.pools:
            if self.crash_dir is None:
                raise RuntimeError("Engines is used outside its `with` block")
            self.pools[key] = EnginePool(cfg, self.crash_dir, self.starts)
        return self.pools[key]

    def stream(self, cfg: BackendConfig, stage: str) -> RequestStream:
        """A stream whose pool starts with its first request (a resumed wave with nothing left loads no model)."""
        return RequestStream(lambda: self.pool(cfg), stage)

    def reserved_cpus(self, *starting: BackendConfig) -> float:
        """Ray CPUs the workers hold for as long as the build runs: the live pools' and those of the
        pools `starting` will open (a stream opens its pool only with its first request)."""
        configs = {key: pool.cfg for key, pool in self.pools.items()}
        configs.update((cfg.model_dump_json(), cfg) for cfg in starting)
        return sum(cfg.workers * cfg.cpus_per_worker for cfg in configs.values())

    def generate(self, cfg: BackendConfig, requests: list[GenerationRequest], stage: str) -> Iterator[GenerationResult]:
        if not requests:
            return iter(())
        return self.pool(cfg).generate(requests, stage)
