"""The build_corpus flow: per wave, stream (sample -> propose -> validate -> revise -> settle), judge
and dedup; then write the records and publish the run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.futures import PrefectFuture
from prefect.utilities.annotations import quote

from corpus.persona_records import persona_files
from corpus.publish import library_versions, publish, run_lineage
from corpus.run_folder import RunFolder, prepare_run_folder, run_root
from corpus.run_lock import run_lock
from corpus.run_metrics import tokens_spent
from dedup.embedders.factory import check_embedder_files
from flows.artifacts import publish_summary_artifacts
from flows.dedup_stage import dedup_corpus, kept_per_stratum, over_quota_slots, save_dedup_index
from flows.judge_stage import final_stage, gate_shard, judge_wave
from flows.progress import stage_progress
from flows.task_options import MODEL_TASK, STAGE_TASK
from flows.wave_stream import WaveStream
from foundation.atomic_files import commit_once, remove_stale_temporaries, uncommitted, write_bytes_atomically
from foundation.process_guard import take_back_stop_signals
from schemas.config import RunConfig
from taxonomy.loader import load_taxonomy
from taxonomy.model import Taxonomy
from taxonomy.quotas import (
    QuotaCell,
    SlotPlan,
    backfill_asks,
    plan_backfill,
    plan_slots,
    shard_ranges,
    shortfall,
)
from validators.rule_pack import load_rule_pack
from workers.cpu_tasks import MAX_TASKS_IN_FLIGHT, run_all, share, tasks_can_run
from workers.engine_pool import Engines, backend_secrets
from workers.factory import check_model
from workers.proposer import ensure_ray


@dataclass(frozen=True)
class BuildInputs:
    """A config's checked inputs: its taxonomy and slot plan."""

    taxonomy: Taxonomy
    plan: SlotPlan


def check_inputs(cfg: RunConfig) -> BuildInputs:
    """Load the taxonomy, plan the slots, read the rules and check models, secrets and the embedder,
    so bad input fails before any write."""
    taxonomy = load_taxonomy(cfg.taxonomy)
    plan = plan_slots(cfg, taxonomy)
    load_rule_pack()
    backend_secrets(cfg.backend)
    check_model(cfg.backend)
    if cfg.dedup.semantic:
        check_embedder_files(cfg.dedup.embedder, "run config", "dedup.embedder")
    if cfg.judge.enabled and cfg.judge.backend:
        check_model(cfg.judge.backend)
    return BuildInputs(taxonomy, plan)


# Inputs a command checked before starting Prefect, for the build flow it starts next (one entry).
_handed_over: dict[str, BuildInputs] = {}


def check_inputs_for_build(cfg: RunConfig) -> BuildInputs:
    """`check_inputs`, and hand the result to the next `build_corpus` of this config in this process,
    so a command checks (and plans the quotas) once. A build started any other way (a deployment,
    each scheduled run of `populace serve`) checks its inputs afresh."""
    inputs = check_inputs(cfg)
    _handed_over.clear()
    _handed_over[cfg.model_dump_json()] = inputs
    return inputs


@flow(name="build_corpus", log_prints=True, validate_parameters=False)
def build_corpus(cfg: RunConfig, out: str | None = None, ray_address: str | None = None) -> str:
    """Build (or resume) the corpus a config describes; returns the run folder."""
    take_back_stop_signals()  # Prefect's SIGTERM bridge would stop the flow without stopping Ray
    # Before the run folder exists: bad input writes nothing.
    inputs = _handed_over.pop(cfg.model_dump_json(), None) or check_inputs(cfg)
    root = run_root(cfg, Path(out) if out else None)
    ensure_ray(ray_address)  # a cluster that cannot be joined is bad input too: nothing written yet
    with run_lock(root):  # a second build into the same folder refuses instead of interleaving
        run = prepare_run_folder(cfg, root)
        remove_stale_temporaries(run.root)  # safe under the lock: no writer is alive
        build = Build(run, cfg, inputs)
        with Engines() as engines:  # model workers load once and serve every round, wave and judge pass
            for wave, wave_cells in build.waves():
                build.run_wave(wave, wave_cells, engines)
        return build.finish(engines.starts.summary())


@dataclass
class Build:
    """One build under its run folder's lock: the waves' stages, then the finish."""

    run: RunFolder
    cfg: RunConfig
    inputs: BuildInputs
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    shards: list[int] = field(default_factory=list)
    slots: int = 0  # slots planned so far, over all waves
    clusters: Path | None = None  # the latest wave's clusters
    missing: dict[str, int] = field(default_factory=dict)
    stopped_by: str | None = None
    early_write: PrefectFuture[float] | None = None  # the first wave's records, written during backfill

    @property
    def taxonomy(self) -> Taxonomy:
        return self.inputs.taxonomy

    def waves(self) -> Iterator[tuple[int, list[QuotaCell]]]:
        """Wave 0 fills the plan; each backfill wave gives new slots (new ids) to the strata that
        validation and dedup left short, until the quotas are met or a limit stops it."""
        wave_cells = self.inputs.plan.slot_cells
        kept_before = 0
        for wave in range(self.cfg.max_backfill_waves + 1):
            yield wave, wave_cells
            assert self.clusters is not None  # run_wave has just set it
            kept = kept_per_stratum(self.run, self.shards, self.clusters)
            self.missing = shortfall(self.inputs.plan.cells, kept)
            self.stopped_by = backfill_stop(self.cfg, self.missing, wave, tokens_spent(self.run))
            if self.stopped_by:
                get_run_logger().info("no further backfill: %s", self.stopped_by)
                return
            # The share of this wave's slots not kept: what the next wave asks for beyond the shortfall.
            loss = 1 - (sum(kept.values()) - kept_before) / len(wave_cells)
            kept_before = sum(kept.values())
            wave_cells = plan_backfill(self.inputs.plan.cells, backfill_asks(self.missing, loss))
            if wave == 0:
                self.write_first_wave()

    def write_first_wave(self) -> None:
        """Start writing the first wave's personas and rejects beside the backfill waves. They are final
        once its dedup is done: a backfill wave only adds rows to the clusters, and only backfill slots
        can end beyond a quota (the first wave asks exactly the quotas, so it keeps at most them)."""
        assert self.clusters is not None  # wave 0's dedup has run
        lineage = run_lineage(self.run, self.cfg, self.taxonomy)
        self.early_write = write_records.submit(
            self.run, lineage, list(self.shards), self.clusters, final_stage(self.cfg), progress=False
        )

    def run_wave(self, wave: int, wave_cells: list[QuotaCell], engines: Engines) -> None:
        ranges = shard_ranges(self.slots, len(wave_cells), self.cfg.shard_size)
        wave_shards = list(range(len(self.shards), len(self.shards) + len(ranges)))
        get_run_logger().info("wave %d: %d slots in %d shards", wave, len(wave_cells), len(wave_shards))
        plan = {
            shard: (slots, wave_cells[slots.start - self.slots : slots.stop - self.slots])
            for shard, slots in zip(wave_shards, ranges, strict=True)
        }
        self.shards += wave_shards
        self.slots += len(wave_cells)
        # Sampling, validation and settling run beside the model workers: their seconds are task seconds.
        with self.stage("sample_propose_validate_settle", f"stream:wave-{wave}"):
            # quote(): Prefect would otherwise walk every quota cell of the plan to look for futures.
            # Prefect unwraps quote() before the call; its Task typing does not model that.
            task_seconds = stream_wave(  # type: ignore[call-overload]
                self.run, self.cfg, quote(self.taxonomy), wave, quote(plan), engines
            )
            for kind, seconds in task_seconds.items():
                add_seconds(self.timings, f"{kind}_cpu", seconds)
        if self.cfg.judge.enabled:
            with self.stage("judge", f"judge:wave-{wave}"):
                judge_wave(self.run, self.cfg, self.taxonomy, wave_shards, engines)
                for shard in wave_shards:
                    gate_shard(self.run, self.cfg, shard)
        with self.stage("dedup", f"dedup:wave-{wave}"):
            parallel = tasks_can_run(engines.reserved_cpus())
            self.clusters = dedup_corpus(self.run, self.cfg, self.shards, wave, parallel)

    def finish(self, engine_starts: dict[str, Any]) -> str:
        """Write personas and rejects, then publish the run while the dedup index is stored."""
        assert self.clusters is not None  # every build runs wave 0
        logger = get_run_logger()
        logger.info(
            "model workers: %d engine starts, %.1f s loading", engine_starts["starts"], engine_starts["start_seconds"]
        )
        lineage = run_lineage(self.run, self.cfg, self.taxonomy)
        with self.stage("write", "write"):
            quotas = {cell.label: cell.count for cell in self.inputs.plan.cells}
            clusters = self.clusters
            # Committed once, so a rerun after a crash sets the same personas aside.
            trimmed = (
                pq.read_table(
                    commit_once(self.run.over_quota, lambda: over_quota_slots(self.run, self.shards, clusters, quotas))
                )
                .column("persona_id")
                .combine_chunks()
            )
            seconds = self.early_write.result() if self.early_write else 0.0  # skipped below once written
            seconds += write_records(
                self.run, lineage, self.shards, self.clusters, final_stage(self.cfg), quote(trimmed)
            )
            add_seconds(self.timings, "write_cpu", seconds)
        # The dedup index (the kept personas' features, read back and stored) is saved beside publishing:
        # neither reads what the other writes, and each leaves the other's core idle for long stretches.
        with ThreadPoolExecutor(1, thread_name_prefix="dedup-index") as pool:
            index_saved = pool.submit(self.store_dedup_index, trimmed)
            manifest = self.publish_run(engine_starts)
            add_seconds(self.timings, "dedup_index", index_saved.result())
        manifest = self.run.update_manifest(
            {"last_run_seconds": round(time.monotonic() - self.started, 3), "last_run_stage_seconds": self.timings}
        )
        publish_summary_artifacts(self.run.root.name, manifest)
        logger.info(
            "done: %d personas (%d requested), %d rejects of %d slots",
            manifest["produced"],
            self.cfg.population,
            manifest["rejected"],
            self.slots,
        )
        return str(self.run.root)

    def store_dedup_index(self, trimmed: pa.Array) -> float:
        """Store the dedup index; returns its seconds."""
        started = time.monotonic()
        assert self.clusters is not None  # every build runs wave 0
        save_dedup_index(self.run, self.cfg, self.shards, self.clusters, trimmed)
        return time.monotonic() - started

    def publish_run(self, engine_starts: dict[str, Any]) -> dict[str, Any]:
        """Count the run into its manifest and write the catalog, the card and the report."""
        publish_started = time.monotonic()
        manifest = publish(
            self.run,
            self.cfg,
            self.taxonomy,
            self.inputs.plan.cells,
            {
                "slots": self.slots,
                "backfilled": self.slots - self.cfg.population,
                "short_by_stratum": self.missing,
                "shards": len(self.shards),
                "backfill_stopped_by": self.stopped_by,
                "tokens_spent": tokens_spent(self.run),
                "versions": library_versions(),
                "last_run_seconds": round(time.monotonic() - self.started, 3),
                "last_run_stage_seconds": self.timings,
                "last_run_engines": engine_starts,
                "finished_at": datetime.now(UTC).isoformat(),
            },
        )
        # The report shows the seconds up to publishing; the manifest counts publishing too.
        add_seconds(self.timings, "publish", time.monotonic() - publish_started)
        return manifest

    @contextmanager
    def stage(self, name: str, key: str) -> Iterator[None]:
        """Time a stage and mark it done in the manifest."""
        t0 = time.monotonic()
        yield
        add_seconds(self.timings, name, time.monotonic() - t0)
        self.run.mark_stage_done(key)


@task(**MODEL_TASK)
def stream_wave(
    run: RunFolder,
    cfg: RunConfig,
    taxonomy: Taxonomy,
    wave: int,
    plan: dict[int, tuple[range, list[QuotaCell]]],
    engines: Engines,
) -> dict[str, float]:
    """Sample, propose, validate, revise and settle a wave's shards, streamed (flows/wave_stream.py)."""

    def round_done(round_no: int) -> None:
        run.mark_stage_done(f"propose:wave-{wave}:round-{round_no}")
        run.mark_stage_done(f"validate:wave-{wave}:round-{round_no}")

    taxonomy_ref = share(taxonomy)  # one copy in Ray's object store for every task of the wave
    stream = WaveStream(
        run,
        cfg,
        taxonomy_ref,
        list(plan),
        engines,
        round_done,
        lambda: run.mark_stage_done(f"sample:wave-{wave}"),
        plan,
    )
    stream.run_wave(f"propose wave {wave}")
    run.mark_stage_done(f"settle:wave-{wave}")
    return stream.task_seconds


@task(**STAGE_TASK)
def write_records(
    run: RunFolder,
    lineage: dict[str, Any],
    shards: list[int],
    clusters_path: Path,
    settled_stage: str = "settled",
    over_quota: pa.Array | None = None,
    progress: bool = True,
) -> float:
    """Personas and rejects of every shard not yet written (built in parallel tasks, committed here);
    returns the tasks' seconds. The clusters table is read once and each task gets its shard's rows;
    `over_quota`: ids kept beyond their stratum's quota, written as rejects. Without `progress` (a
    write beside a wave, whose bar is showing) it reports nothing and keeps two shards in flight,
    not a cluster's worth: it only fills the CPUs the wave leaves idle, and holds less memory."""
    clusters = pq.read_table(clusters_path)
    now = datetime.now(UTC)
    # A shard counts as written once its personas file exists (its rejects are written first).
    todo = uncommitted({s: run.stage_shard("personas", s) for s in shards})

    def jobs() -> Iterator[tuple[int, tuple[Any, ...]]]:
        for shard in todo:
            settled = pq.read_table(run.stage_shard(settled_stage, shard))
            mine = clusters.filter(pc.is_in(clusters.column("persona_id"), value_set=settled.column("persona_id")))
            yield shard, (settled, mine, lineage, now, f"shard {shard}", over_quota)

    seconds = 0.0
    with stage_progress("write (shards)", len(todo)) if progress else nullcontext(lambda: None) as advance:
        in_flight = MAX_TASKS_IN_FLIGHT if progress else 2
        for shard, (personas, rejects), spent in run_all(persona_files, jobs(), in_flight=in_flight):
            write_bytes_atomically(rejects, run.stage_shard("rejects", shard))
            write_bytes_atomically(personas, run.stage_shard("personas", shard))
            seconds += spent
            advance()
    return seconds


def backfill_stop(cfg: RunConfig, missing: dict[str, int], wave: int, spent: int) -> str | None:
    """Why no further backfill wave starts (quotas met, waves or token budget spent), or None to go on."""
    if not missing:
        return "quotas_met"
    if wave >= cfg.max_backfill_waves:
        return "max_backfill_waves"
    if cfg.max_backfill_tokens is not None and spent >= cfg.max_backfill_tokens:
        return "token_budget"
    return None


def add_seconds(timings: dict[str, float], key: str, seconds: float) -> None:
    timings[key] = round(timings.get(key, 0.0) + seconds, 3)
