"""The build_corpus flow: sample -> propose -> validate -> revise -> dedup -> write."""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pyarrow as pa
from prefect import flow, get_run_logger, task

from corpus.catalog import build_catalog
from corpus.dataset_card import write_dataset_card
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
from flows.stage_io import MODEL_TASK, STAGE_TASK, read_rows, read_skeletons, shard_ranges
from schemas.config import RunConfig
from schemas.records import Skeleton
from schemas.table_checks import PERSONAS_CHECK, REJECTS_CHECK, check_table
from schemas.tables import PERSONAS, PROPOSALS, REJECTS, VERDICTS
from taxonomy.loader import load_taxonomy
from taxonomy.model import Taxonomy
from taxonomy.names import NAME_SOURCE
from taxonomy.presets import load_preset
from taxonomy.quotas import QuotaCell, assign_slots, plan_backfill, plan_quotas, shortfall
from taxonomy.sample_tally import metrics_scope
from taxonomy.skeleton_table import SKELETON_STATISTICS, batch_to_table
from validators.constraints import facts_constraints, sample_constrained
from validators.engine import validate_batch
from validators.rule_pack import load_rule_pack
from validators.settle import failed_checks, settle_slots
from workers.engine_pool import Engines, backend_secrets
from workers.factory import check_model
from workers.prompts import template_hash
from workers.proposer import build_requests, ensure_ray


@task(**STAGE_TASK)
def sample_shard(run: RunFolder, taxonomy: Taxonomy, seed: int, shard: int, slots: range,
                 cells: list[QuotaCell], deep_attributes: int) -> Path:
    out = run.stage_shard("skeletons", shard)
    if out.is_file():
        return out
    batch, redraws = sample_constrained(taxonomy, cells, seed, slots, deep_attributes,
                                        facts_constraints(load_rule_pack()))
    return write_table_atomically(batch_to_table(batch, taxonomy, redraws, shard), out, SKELETON_STATISTICS)


def pending_for_round(run: RunFolder, shard: int, round_no: int) -> tuple[list[Skeleton], dict[str, list[str]]]:
    """Slots to propose in this round and the feedback each gets (none in round 0)."""
    skeletons = read_skeletons(run.stage_shard("skeletons", shard))
    if round_no == 0:
        return skeletons, {}
    previous = failed_checks(read_rows(run.round_shard("verdicts", round_no - 1, shard)))
    feedback = {pid: [row["message"] for row in rows] for pid, rows in previous.items() if rows}
    return [s for s in skeletons if s.persona_id in feedback], feedback


@task(**MODEL_TASK)
def propose_round(run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy, round_no: int, shards: list[int],
                  engines: Engines) -> list[Path]:
    """One pass over every unfinished shard on the build's model workers; each shard is committed once complete."""
    todo, requests, expected = [], [], {}
    for shard in shards:
        if run.round_shard("proposals", round_no, shard).is_file():
            continue
        skeletons, feedback = pending_for_round(run, shard, round_no)
        todo.append(shard)
        expected[shard] = {s.persona_id for s in skeletons}
        requests += build_requests(skeletons, taxonomy, cfg.backend, cfg.seed, round_no, feedback)
    shard_of = {pid: shard for shard, pids in expected.items() for pid in pids}
    answered: dict[int, list[dict]] = {shard: [] for shard in todo}

    def commit(shard: int) -> None:
        rows = sorted(answered[shard], key=lambda r: r["persona_id"])
        write_table_atomically(pa.Table.from_pylist(rows, schema=PROPOSALS),
                               run.round_shard("proposals", round_no, shard))

    for shard in todo:  # shards with nothing to revise are complete already
        if not expected[shard]:
            commit(shard)
    with stage_progress(f"propose round {round_no}", len(requests)) as advance:
        for result in engines.generate(cfg.backend, requests, stage=f"propose round {round_no}"):
            shard = shard_of[result.request_id]
            answered[shard].append({
                "persona_id": result.request_id, "round": round_no, "raw_output": result.text,
                "error": result.error, "finish_reason": result.finish_reason,
                "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                "retries": result.retries})
            advance()
            if len(answered[shard]) == len(expected[shard]):
                commit(shard)
    return [run.round_shard("proposals", round_no, shard) for shard in shards]


@task(**STAGE_TASK)
def validate_shard(run: RunFolder, taxonomy: Taxonomy, round_no: int, shard: int) -> Path:
    out = run.round_shard("verdicts", round_no, shard)
    if out.is_file():
        return out
    proposals = {r["persona_id"]: r for r in read_rows(run.round_shard("proposals", round_no, shard))}
    skeletons = [s for s in read_skeletons(run.stage_shard("skeletons", shard)) if s.persona_id in proposals]
    items = [(s, proposals[s.persona_id]["raw_output"] or "") for s in skeletons]
    errors = {pid: r["error"] for pid, r in proposals.items() if r["error"]}
    _, verdicts = validate_batch(items, taxonomy, load_rule_pack(), round_no, errors)
    return write_table_atomically(pa.Table.from_pylist(verdicts, schema=VERDICTS), out)


@task(**STAGE_TASK)
def settle_shard(run: RunFolder, cfg: RunConfig, shard: int) -> Path:
    out = run.stage_shard("settled", shard)
    if out.is_file():
        return out
    proposals, verdicts = {}, {}
    for round_no in range(cfg.max_revise_rounds + 1):
        proposals[round_no] = {r["persona_id"]: r for r in read_rows(run.round_shard("proposals", round_no, shard))}
        verdicts[round_no] = read_rows(run.round_shard("verdicts", round_no, shard))
    table = settle_slots(read_skeletons(run.stage_shard("skeletons", shard)), proposals, verdicts)
    return write_table_atomically(table, out)


def lineage_for(run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy) -> dict:
    return {"run_id": run.root.name, "taxonomy_name": taxonomy.name, "taxonomy_version": taxonomy.version,
            "taxonomy_hash": taxonomy.content_hash, "seed": cfg.seed, "backend": cfg.backend.kind,
            "model": cfg.backend.model, "prompt_template_hash": template_hash()}


def reject_stage(reason: str) -> str:
    """The stage that lost a settled slot, from its reason."""
    if reason == "backend":
        return "propose"
    return "judge" if reason.startswith("judge:") else "validate"


@task(**STAGE_TASK)
def write_shard(run: RunFolder, lineage: dict, shard: int, clusters_path: Path,
                settled_stage: str = "settled") -> tuple[Path, Path]:
    personas_out, rejects_out = run.stage_shard("personas", shard), run.stage_shard("rejects", shard)
    if personas_out.is_file() and rejects_out.is_file():
        return personas_out, rejects_out
    clusters = {r["persona_id"]: r for r in read_rows(clusters_path)}
    now = datetime.now(UTC)
    personas, rejects = [], []
    for row in read_rows(run.stage_shard(settled_stage, shard)):
        base = {"persona_id": row["persona_id"], "slot": row["slot"], "stratum": row["stratum"],
                "run_id": lineage["run_id"], "created_at": now}
        cluster = clusters.get(row["persona_id"])
        if not row["accepted"]:
            stage = reject_stage(row["reason"])
            rejects.append({**base, "stage": stage, "reason": row["reason"], "detail": row["detail"],
                            "round": row["rounds"] - 1, "raw_output": row["raw_output"], "duplicate_of": None})
        elif cluster and cluster["duplicate_of"]:
            rejects.append({**base, "stage": "dedup", "reason": f"duplicate_of:{cluster['duplicate_of']}",
                            "detail": f"{cluster['layer']} similarity {cluster['similarity']:.3f}",
                            "round": row["rounds"] - 1, "raw_output": row["raw_output"],
                            "duplicate_of": cluster["duplicate_of"]})
        else:
            personas.append({**base, **lineage, "name": row["name"], "narrative": row["narrative"],
                             "attributes": [{"key": k, "value": v} for k, v in row["attributes"]],
                             "verdict_summary": row["verdict_summary"],
                             "rounds": row["rounds"], "judge_plausibility": row["judge_plausibility"],
                             "judge_consistency": row["judge_consistency"],
                             "duplicate_cluster_id": cluster["cluster_id"] if cluster else row["persona_id"]})
    personas_table = pa.Table.from_pylist(personas, schema=PERSONAS)
    rejects_table = pa.Table.from_pylist(rejects, schema=REJECTS)
    check_table(personas_table, PERSONAS_CHECK, f"personas shard {shard}")
    check_table(rejects_table, REJECTS_CHECK, f"rejects shard {shard}")
    # Rejects first: a shard counts as written only when its personas file exists.
    write_table_atomically(rejects_table, rejects_out)
    write_table_atomically(personas_table, personas_out)
    return personas_out, rejects_out


def library_versions() -> dict[str, str]:
    names = ["populace", "prefect", "ray", "duckdb", "pyarrow", "pandera", "datasketch", "llama_cpp_python",
             "pydantic"]
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
    return sampling_metrics(str(run.root / "personas" / "*.parquet"), cells_as_json(cells),
                            metrics_scope(taxonomy, preset))


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
    with Engines() as engines:  # model workers load once and serve every round, wave and judge pass
        for wave in range(cfg.max_backfill_waves + 1):
            ranges = shard_ranges(first_slot, len(wave_cells), cfg.shard_size)
            wave_shards = list(range(len(shards), len(shards) + len(ranges)))
            shards += wave_shards
            logger.info("wave %d: %d slots in %d shards", wave, len(wave_cells), len(wave_shards))
            with stage("sample", f"sample:wave-{wave}"), stage_progress(f"sample wave {wave} (shards)",
                                                                        len(wave_shards)) as advance:
                for shard, slots in zip(wave_shards, ranges, strict=True):
                    cells_here = wave_cells[slots.start - first_slot:slots.stop - first_slot]
                    sample_shard(run, taxonomy, cfg.seed, shard, slots, cells_here, cfg.deep_attributes)
                    advance()
            for round_no in range(cfg.max_revise_rounds + 1):
                with stage("propose", f"propose:wave-{wave}:round-{round_no}"):
                    propose_round(run, cfg, taxonomy, round_no, wave_shards, engines)
                with stage("validate", f"validate:wave-{wave}:round-{round_no}"), stage_progress(
                        f"validate round {round_no} (shards)", len(wave_shards)) as advance:
                    for shard in wave_shards:
                        validate_shard(run, taxonomy, round_no, shard)
                        advance()
            with stage("settle", f"settle:wave-{wave}"):
                for shard in wave_shards:
                    settle_shard(run, cfg, shard)
            if cfg.judge.enabled:
                with stage("judge", f"judge:wave-{wave}"):
                    judge_wave(run, cfg, taxonomy, wave_shards, engines)
                    for shard in wave_shards:
                        gate_shard(run, cfg, shard)
            with stage("dedup", f"dedup:wave-{wave}"):
                clusters_path = dedup_corpus(run, cfg, shards, wave)
            first_slot += len(wave_cells)
            missing = shortfall(cells, kept_per_stratum(run, shards, clusters_path))
            stopped_by = backfill_stop(cfg, missing, wave, tokens_spent(run.root))
            if stopped_by:
                logger.info("no further backfill: %s", stopped_by)
                break
            # Backfill: new slots (new ids) for the strata that validation and dedup left short.
            wave_cells = plan_backfill(cells, missing)
    engine_starts = engines.starts.summary()
    logger.info("model workers: %d engine starts, %.1f s loading", engine_starts["starts"],
                engine_starts["start_seconds"])
    lineage = lineage_for(run, cfg, taxonomy)
    with stage("write", "write"), stage_progress("write (shards)", len(shards)) as advance:
        for shard in shards:
            write_shard(run, lineage, shard, clusters_path, final_stage(cfg))
            advance()
        save_dedup_index(run, cfg, shards, clusters_path)
    build_catalog(run)
    counts = summarize_run(run.root, {cell.label: cell.count for cell in cells})
    publish_summary_artifacts(run.root.name, counts)
    manifest = run.read_manifest()
    manifest.update({
        "run_id": run.root.name, "fingerprint": cfg.fingerprint(), "requested": cfg.population,
        **counts, "slots": first_slot, "backfilled": first_slot - cfg.population,
        "short_by_stratum": missing, "shards": len(shards), "backfill_stopped_by": stopped_by,
        "tokens_spent": tokens_spent(run.root),
        "sampling": persona_sampling_metrics(run, cfg, taxonomy, cells),
        "taxonomy": {"name": taxonomy.name, "version": taxonomy.version, "hash": taxonomy.content_hash},
        "backend": {"kind": cfg.backend.kind, "model": cfg.backend.model}, "names": NAME_SOURCE,
        "prompt_template_hash": lineage["prompt_template_hash"], "versions": library_versions(),
        "last_run_seconds": round(time.monotonic() - started, 3), "last_run_stage_seconds": timings,
        "last_run_engines": engine_starts,
        "finished_at": datetime.now(UTC).isoformat(),
    })
    run.write_manifest(manifest)
    write_dataset_card(run.root, cfg.license)
    write_report(run.root, leaf_counts(taxonomy))
    logger.info("done: %d personas (%d requested), %d rejects of %d slots", counts["produced"], cfg.population,
                counts["rejected"], first_slot)
    return str(run.root)

