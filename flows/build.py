"""The build_corpus flow: sample -> propose -> validate -> revise -> dedup -> write."""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.utilities.annotations import quote

from corpus.catalog import build_catalog
from corpus.dataset_card import write_dataset_card
from corpus.persona_records import persona_tables
from corpus.report import write_report
from corpus.run_folder import RunFolder, remove_stale_temporaries, write_table_atomically
from corpus.run_lock import run_lock
from corpus.run_metrics import summarize_run, tokens_spent
from corpus.sampling_metrics import cells_as_json, sampling_metrics
from dedup.embedders.factory import check_embedder_files
from flows.artifacts import publish_summary_artifacts
from flows.dedup_stage import dedup_corpus, kept_per_stratum, save_dedup_index
from flows.judge_stage import final_stage, gate_shard, judge_wave
from flows.process_guard import take_back_stop_signals
from flows.progress import stage_progress
from flows.run_setup import prepare_run_folder, run_id_for
from flows.stage_io import MODEL_TASK, STAGE_TASK, shard_ranges
from flows.wave_stream import WaveStream
from schemas.config import RunConfig
from taxonomy.loader import load_taxonomy
from taxonomy.model import Taxonomy
from taxonomy.names import NAME_SOURCE
from taxonomy.presets import load_preset
from taxonomy.quotas import QuotaCell, assign_slots, plan_backfill, plan_quotas, shortfall
from taxonomy.sample_tally import metrics_scope
from validators.rule_pack import load_rule_pack
from workers.cpu_tasks import run_all, share, tasks_can_run
from workers.engine_pool import Engines, backend_secrets
from workers.factory import check_model
from workers.prompts import template_hash
from workers.proposer import ensure_ray


@task(**MODEL_TASK)
def stream_wave(
    run: RunFolder,
    cfg: RunConfig,
    taxonomy: Taxonomy,
    taxonomy_ref: object,
    wave: int,
    plan: dict[int, tuple[range, list[QuotaCell]]],
    engines: Engines,
) -> dict[str, float]:
    """Sample, propose, validate, revise and settle a wave's shards, streamed (flows/wave_stream.py)."""

    def round_done(round_no: int) -> None:
        mark_stage_done(run, f"propose:wave-{wave}:round-{round_no}")
        mark_stage_done(run, f"validate:wave-{wave}:round-{round_no}")

    waves = WaveStream(
        run,
        cfg,
        taxonomy,
        taxonomy_ref,
        list(plan),
        engines,
        round_done,
        lambda: mark_stage_done(run, f"sample:wave-{wave}"),
        plan,
    )
    waves.run_wave(f"propose wave {wave}")
    mark_stage_done(run, f"settle:wave-{wave}")
    return waves.task_seconds


def lineage_for(run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy) -> dict:
    return {
        "run_id": run.root.name,
        "taxonomy_name": taxonomy.name,
        "taxonomy_version": taxonomy.version,
        "taxonomy_hash": taxonomy.content_hash,
        "seed": cfg.seed,
        "backend": cfg.backend.kind,
        "model": cfg.backend.model,
        "prompt_template_hash": template_hash(),
    }


@task(**STAGE_TASK)
def write_records(
    run: RunFolder, lineage: dict, shards: list[int], clusters_path: Path, settled_stage: str = "settled"
) -> float:
    """Personas and rejects of every shard not yet written (built in parallel tasks, committed here);
    returns the tasks' seconds. The clusters table is read once and each task gets its shard's rows."""
    clusters = pq.read_table(clusters_path)
    now = datetime.now(UTC)

    def jobs():
        for shard in shards:
            if run.stage_shard("personas", shard).is_file() and run.stage_shard("rejects", shard).is_file():
                continue
            settled = pq.read_table(run.stage_shard(settled_stage, shard))
            mine = clusters.filter(pc.is_in(clusters.column("persona_id"), value_set=settled.column("persona_id")))
            yield shard, (settled, mine, lineage, now, f"shard {shard}")

    seconds = 0.0
    with stage_progress("write (shards)", len(shards)) as advance:
        for shard, (personas, rejects), spent in run_all(persona_tables, jobs()):
            # Rejects first: a shard counts as written only when its personas file exists.
            write_table_atomically(rejects, run.stage_shard("rejects", shard))
            write_table_atomically(personas, run.stage_shard("personas", shard))
            seconds += spent
            advance()
    return seconds


def library_versions() -> dict[str, str]:
    names = ["populace", "prefect", "ray", "duckdb", "pyarrow", "pandera", "datasketch", "llama_cpp_python", "pydantic"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def check_inputs(cfg: RunConfig) -> Taxonomy:
    """Load the taxonomy, plan the quotas and read the rules, so bad input fails before any write."""
    taxonomy = load_taxonomy(cfg.taxonomy)
    plan_quotas(cfg.strata, taxonomy, cfg.population, cfg.quotas)
    load_rule_pack()
    backend_secrets(cfg.backend)
    check_model(cfg.backend)
    if cfg.dedup.semantic:
        check_embedder_files(cfg.dedup.embedder, "run config", "dedup.embedder")
    if cfg.judge.enabled and cfg.judge.backend:
        check_model(cfg.judge.backend)
    return taxonomy


def persona_sampling_metrics(run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy, cells: list[QuotaCell]) -> dict:
    """Plan fit, preset fit and taxonomy coverage of the personas kept (empty when none were)."""
    if not any((run.root / "personas").glob("*.parquet")):
        return {}
    preset = load_preset(cfg.quotas.preset, taxonomy) if cfg.quotas.preset else None
    return sampling_metrics(
        str(run.root / "personas" / "*.parquet"), cells_as_json(cells), metrics_scope(taxonomy, preset)
    )


def backfill_stop(cfg: RunConfig, missing: dict, wave: int, spent: int) -> str | None:
    """Why no further backfill wave starts (quotas met, waves or token budget spent), or None to go on."""
    if not missing:
        return "quotas_met"
    if wave >= cfg.max_backfill_waves:
        return "max_backfill_waves"
    if cfg.max_backfill_tokens is not None and spent >= cfg.max_backfill_tokens:
        return "token_budget"
    return None


def leaf_counts(taxonomy: Taxonomy) -> dict[str, int]:
    """Leaves per root category, the denominators of the report's coverage plot."""
    return {root: len(leaves) for root, leaves in taxonomy.leaves_by_root().items() if leaves}


def add_seconds(timings: dict[str, float], key: str, seconds: float) -> None:
    timings[key] = round(timings.get(key, 0.0) + seconds, 3)


def mark_stage_done(run: RunFolder, stage: str) -> None:
    """Record progress in the manifest, so an operator sees how far an interrupted run got."""
    manifest = run.read_manifest()
    manifest.setdefault("stages", {})[stage] = "done"
    run.write_manifest(manifest)


@flow(name="build_corpus", log_prints=True, validate_parameters=False)
def build_corpus(cfg: RunConfig, out: str | None = None, ray_address: str | None = None) -> str:
    """Build (or resume) the corpus a config describes; returns the run folder."""
    take_back_stop_signals()  # Prefect's SIGTERM bridge would stop the flow without stopping Ray
    taxonomy = check_inputs(cfg)  # before the run folder exists: bad input writes nothing
    root = Path(out) if out else Path(cfg.output_dir) / run_id_for(cfg)
    ensure_ray(ray_address)  # a cluster that cannot be joined is bad input too: nothing written yet
    with run_lock(root):  # a second build into the same folder refuses instead of interleaving
        run = prepare_run_folder(cfg, root)
        remove_stale_temporaries(run.root)  # safe under the lock: no writer is alive
        return build_locked(run, cfg, taxonomy)


def build_locked(run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy) -> str:
    """The stages, under the run folder's lock (Ray already joined by build_corpus)."""
    logger = get_run_logger()
    started = time.monotonic()
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str, key: str):
        t0 = time.monotonic()
        yield
        timings[name] = round(timings.get(name, 0.0) + time.monotonic() - t0, 3)
        mark_stage_done(run, key)

    cells = plan_quotas(cfg.strata, taxonomy, cfg.population, cfg.quotas)
    wave_cells = assign_slots(cells, cfg.seed)
    shards: list[int] = []
    first_slot = 0
    taxonomy_ref = share(taxonomy)  # one copy in the object store for every task of the build
    with Engines() as engines:  # model workers load once and serve every round, wave and judge pass
        for wave in range(cfg.max_backfill_waves + 1):
            ranges = shard_ranges(first_slot, len(wave_cells), cfg.shard_size)
            wave_shards = list(range(len(shards), len(shards) + len(ranges)))
            shards += wave_shards
            logger.info("wave %d: %d slots in %d shards", wave, len(wave_cells), len(wave_shards))
            plan = {
                shard: (slots, wave_cells[slots.start - first_slot : slots.stop - first_slot])
                for shard, slots in zip(wave_shards, ranges, strict=True)
            }
            # Sampling, validation and settling run beside the model workers: their seconds are task seconds.
            with stage("sample_propose_validate_settle", f"stream:wave-{wave}"):
                # quote(): Prefect would otherwise walk every quota cell of the plan to look for futures.
                for kind, seconds in stream_wave(
                    run, cfg, quote(taxonomy), taxonomy_ref, wave, quote(plan), engines
                ).items():
                    add_seconds(timings, f"{kind}_cpu", seconds)
            if cfg.judge.enabled:
                with stage("judge", f"judge:wave-{wave}"):
                    judge_wave(run, cfg, taxonomy, wave_shards, engines)
                    for shard in wave_shards:
                        gate_shard(run, cfg, shard)
            with stage("dedup", f"dedup:wave-{wave}"):
                clusters_path = dedup_corpus(run, cfg, shards, wave, tasks_can_run(engines.reserved_cpus()))
            first_slot += len(wave_cells)
            missing = shortfall(cells, kept_per_stratum(run, shards, clusters_path))
            stopped_by = backfill_stop(cfg, missing, wave, tokens_spent(run.root))
            if stopped_by:
                logger.info("no further backfill: %s", stopped_by)
                break
            # Backfill: new slots (new ids) for the strata that validation and dedup left short.
            wave_cells = plan_backfill(cells, missing)
    engine_starts = engines.starts.summary()
    logger.info(
        "model workers: %d engine starts, %.1f s loading", engine_starts["starts"], engine_starts["start_seconds"]
    )
    lineage = lineage_for(run, cfg, taxonomy)
    with stage("write", "write"):
        add_seconds(timings, "write_cpu", write_records(run, lineage, shards, clusters_path, final_stage(cfg)))
        save_dedup_index(run, cfg, shards, clusters_path)
    build_catalog(run)
    counts = summarize_run(run.root, {cell.label: cell.count for cell in cells})
    publish_summary_artifacts(run.root.name, counts)
    manifest = run.read_manifest()
    manifest.update(
        {
            "run_id": run.root.name,
            "fingerprint": cfg.fingerprint(),
            "requested": cfg.population,
            **counts,
            "slots": first_slot,
            "backfilled": first_slot - cfg.population,
            "short_by_stratum": missing,
            "shards": len(shards),
            "backfill_stopped_by": stopped_by,
            "tokens_spent": tokens_spent(run.root),
            "sampling": persona_sampling_metrics(run, cfg, taxonomy, cells),
            "taxonomy": {"name": taxonomy.name, "version": taxonomy.version, "hash": taxonomy.content_hash},
            "backend": {"kind": cfg.backend.kind, "model": cfg.backend.model},
            "names": NAME_SOURCE,
            "prompt_template_hash": lineage["prompt_template_hash"],
            "versions": library_versions(),
            "last_run_seconds": round(time.monotonic() - started, 3),
            "last_run_stage_seconds": timings,
            "last_run_engines": engine_starts,
            "finished_at": datetime.now(UTC).isoformat(),
        }
    )
    run.write_manifest(manifest)
    write_dataset_card(run.root, cfg.license)
    write_report(run.root, leaf_counts(taxonomy))
    logger.info(
        "done: %d personas (%d requested), %d rejects of %d slots",
        counts["produced"],
        cfg.population,
        counts["rejected"],
        first_slot,
    )
    return str(run.root)
