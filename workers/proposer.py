"""Ray-parallel proposing: Ray Data map_batches over requests with a pool of model actors."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa

from schemas.config import BackendConfig
from schemas.errors import UserInputError
from schemas.records import Skeleton, proposal_json_schema
from taxonomy.model import Taxonomy
from taxonomy.opening import pronouns_for
from workers.backend import GenerationRequest, GenerationResult
from workers.prompts import render_proposal_messages
from workers.worker_crash import (
    WorkerCrashError,
    crash_folder,
    enable_crash_trace,
    is_worker_death,
    read_crash_signal,
)

if TYPE_CHECKING:
    import ray.data

RESULT_SCHEMA = pa.schema([
    ("request_id", pa.string()),
    ("text", pa.string()),
    ("error", pa.string()),
    ("finish_reason", pa.string()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("retries", pa.int64()),
])


def generation_seed(run_seed: int, slot: int, round_no: int) -> int:
    """Per-request sampling seed: reruns of a slot and round decode the same way."""
    return (run_seed * 1_000_003 + slot * 101 + round_no) % (2**31 - 1)


def build_requests(skeletons: list[Skeleton], taxonomy: Taxonomy, cfg: BackendConfig, run_seed: int,
                   round_no: int, feedback: dict[str, list[str]] | None = None) -> list[GenerationRequest]:
    """One request per skeleton; in revise rounds with its feedback."""
    feedback = feedback or {}
    return [
        GenerationRequest(
            request_id=s.persona_id,
            messages=render_proposal_messages(s, taxonomy, feedback.get(s.persona_id)),
            json_schema=continuation_schema(s),
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            repeat_penalty=cfg.repeat_penalty,
            seed=generation_seed(run_seed, s.slot, round_no),
        )
        for s in skeletons
    ]


# The continuation opens with the person's pronoun and one of these verbs: a small model then goes on
# with new details instead of restating the opening ("She is an 85-year-old ...").
OPENING_VERBS = (
    "starts", "spends", "works", "loves", "enjoys", "has", "lives", "keeps", "takes", "wakes", "cares", "likes",
    "grew", "moved", "runs", "volunteers", "values", "hopes", "begins", "finds", "shares", "plans", "walks",
    "cooks", "reads", "drives", "saves", "misses", "knows", "learned", "raised", "retired", "studies", "fixes",
    "tends", "prefers", "dreams", "still", "often", "usually", "never", "rarely", "always",
)


def continuation_schema(skeleton: Skeleton) -> dict:
    """The proposal schema, with the narrative held to start '<Pronoun> <verb> ' and to carry no markup."""
    schema = proposal_json_schema()
    subject = pronouns_for(skeleton.attributes)[0].capitalize()
    narrative = dict(schema["properties"]["narrative"])
    # No quote, backslash or newline in the class: llama.cpp would let them end the JSON string early.
    narrative["pattern"] = rf"^{subject} ({'|'.join(OPENING_VERBS)}) [^<>*#_|`\"\\\n]*$"
    return {**schema, "properties": {**schema["properties"], "narrative": narrative}}


class ProposeActor:
    """A Ray actor holding one model; each call answers one Arrow batch of requests."""

    def __init__(self, backend_cfg: dict, threads: int, secrets: dict[str, str] | None = None,
                 crash_dir: str | None = None) -> None:
        from workers.factory import create_backend

        self.crash_trace = enable_crash_trace(crash_dir)  # names the signal if native code kills us

        # Workers on other nodes (or started before the variable was set) lack the driver's
        # environment: the API key travels in memory with the actor, never to disk.
        os.environ.update(secrets or {})
        self.backend = create_backend(BackendConfig.model_validate(backend_cfg), threads=threads)

    def __call__(self, batch: pa.Table) -> pa.Table:
        requests = [
            GenerationRequest(
                request_id=row["request_id"],
                messages=orjson.loads(row["messages"]),
                json_schema=orjson.loads(row["json_schema"]),
                max_tokens=row["max_tokens"],
                temperature=row["temperature"],
                seed=row["seed"],
                repeat_penalty=row["repeat_penalty"],
            )
            for row in batch.to_pylist()
        ]
        results = self.backend.generate(requests)
        return pa.Table.from_pylist([r.model_dump() for r in results], schema=RESULT_SCHEMA)


def backend_secrets(cfg: BackendConfig) -> dict[str, str]:
    """The API key a backend needs, read from the driver's environment (or a clear error)."""
    if not cfg.api_key_env:
        return {}
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise UserInputError("run config", "backend.api_key_env", f"${cfg.api_key_env} is not set",
                             f"export {cfg.api_key_env}=<key> before running")
    return {cfg.api_key_env: key}


def ensure_ray(address: str | None = None) -> None:
    """Join the given cluster, or start a local Ray sized to this machine (once per process)."""
    import ray

    if ray.is_initialized():
        return
    # ray.init replaces the driver's SIGTERM handler with one that exits at once; the
    # application's own handler (stop Ray and Prefect, exit 143) stays in charge.
    in_main_thread = threading.current_thread() is threading.main_thread()
    sigterm_handler = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             configure_logging=False, ignore_reinit_error=True)
    if in_main_thread and sigterm_handler is not None:
        signal.signal(signal.SIGTERM, sigterm_handler)


def propose_with_ray(requests: list[GenerationRequest], cfg: BackendConfig, address: str | None = None,
                     stage: str = "propose") -> Iterator[GenerationResult]:
    """Stream results as actors finish batches, so callers can commit whole shards early.

    A model worker that dies is restarted (and its batch rerun) up to cfg.max_worker_restarts
    times; after that a WorkerCrashError names the signal, the stage and the likely cause.
    """
    import ray
    import ray.data

    if not requests:
        return
    ensure_ray(address)
    if cfg.kind == "vllm":  # vLLM engines are Ray Data LLM's own actors
        from workers.vllm_backend import propose_with_vllm

        yield from propose_with_vllm(requests, cfg)
        return
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    cpus = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    threads = cfg.threads_per_worker or max(1, cpus // cfg.workers)
    rows = [
        {"request_id": r.request_id, "messages": orjson.dumps(r.messages).decode(),
         "json_schema": orjson.dumps(r.json_schema).decode(), "max_tokens": r.max_tokens,
         "temperature": r.temperature, "seed": r.seed, "repeat_penalty": r.repeat_penalty}
        for r in requests
    ]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // cfg.batch_size))
    with crash_folder() as crash_dir:
        answered = map_with_actors(dataset, cfg, {"backend_cfg": cfg.model_dump(mode="json"), "threads": threads,
                                                  "secrets": backend_secrets(cfg), "crash_dir": str(crash_dir)})
        try:
            for batch in answered.iter_batches(batch_format="pyarrow", batch_size=None):
                for row in batch.to_pylist():
                    yield GenerationResult.model_validate(row)
        except Exception as exc:
            if is_worker_death(exc):
                raise WorkerCrashError(stage, read_crash_signal(crash_dir), cfg.max_worker_restarts,
                                       str(exc).splitlines()[0]) from exc
            raise


def map_with_actors(dataset: ray.data.Dataset, cfg: BackendConfig, actor_kwargs: dict) -> ray.data.Dataset:
    """The lazy map over a pool of cfg.workers ProposeActors, each restarted at most max_worker_restarts times."""
    import ray.data

    with warnings.catch_warnings():
        # Ray 2.60 takes actor restart limits only as extra remote args, which it marks deprecated.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated", category=DeprecationWarning)
        return dataset.map_batches(
            ProposeActor,
            fn_constructor_kwargs=actor_kwargs,
            batch_size=cfg.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=cfg.workers),
            num_cpus=1,
            # Ray Data restarts a dead actor forever by default: a worker that dies on every
            # request (a CPU that traps an instruction) would hang the build with no message.
            max_restarts=cfg.max_worker_restarts,
            max_task_retries=cfg.max_worker_restarts,
        )
