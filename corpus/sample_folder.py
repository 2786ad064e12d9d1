"""`populace sample`: skeletons and a plan summary without any LLM, in chunks of bounded memory."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from corpus.run_folder import shard_name
from corpus.sampling_metrics import cells_as_json, metrics_from_counts, stratum_variables
from foundation.atomic_files import write_bytes_atomically, write_table_atomically
from schemas.config import RunConfig
from schemas.errors import UserInputError
from schemas.sample_counts import MetricsScope, SampleCounts
from taxonomy.loader import load_taxonomy
from taxonomy.model import Taxonomy
from taxonomy.presets import load_preset
from taxonomy.quotas import QuotaCell, plan_slots
from taxonomy.sample_tally import metrics_scope, tally_batch
from taxonomy.skeleton_table import SKELETON_STATISTICS, batch_to_table
from validators.constraints import sample_constrained

CHUNK_ROWS = 50_000


@dataclass
class SamplePlan:
    """Everything a chunk needs; built the same way in the parent and in each worker process."""

    cfg: RunConfig
    taxonomy: Taxonomy
    slot_cells: list[QuotaCell]
    planned: list[dict[str, Any]]
    scope: MetricsScope

    @classmethod
    def from_config(cls, cfg: RunConfig) -> SamplePlan:
        taxonomy = load_taxonomy(cfg.taxonomy)
        plan = plan_slots(cfg, taxonomy)
        preset = load_preset(cfg.quotas.preset, taxonomy) if cfg.quotas.preset else None
        return cls(cfg, taxonomy, plan.slot_cells, cells_as_json(plan.cells), metrics_scope(taxonomy, preset))

    def write_chunk(self, part: int, slots: range, target: Path) -> tuple[SampleCounts, Counter[str]]:
        """Sample, constrain, tally and write one part file; return its counts and redraws per rule."""
        batch, redraws = sample_constrained(
            self.taxonomy,
            self.slot_cells[slots.start : slots.stop],
            self.cfg.seed,
            slots,
            self.cfg.deep_attributes,
        )
        counts = tally_batch(batch, self.taxonomy, stratum_variables(self.planned), self.scope)
        write_table_atomically(
            batch_to_table(batch, self.taxonomy, redraws, part),
            target / shard_name(part),
            SKELETON_STATISTICS,
        )
        return counts, Counter(rule for rules in redraws.values() for rule in rules)


_WORKER_PLAN: SamplePlan | None = None


def _start_worker(cfg_json: str) -> None:
    global _WORKER_PLAN
    _WORKER_PLAN = SamplePlan.from_config(RunConfig.model_validate_json(cfg_json))


def _write_chunk_in_worker(part: int, start: int, stop: int, target: Path) -> tuple[SampleCounts, Counter[str]]:
    assert _WORKER_PLAN is not None
    return _WORKER_PLAN.write_chunk(part, range(start, stop), target)


def write_sample(cfg: RunConfig, out: Path, chunk_rows: int = CHUNK_ROWS, workers: int | None = None) -> dict[str, Any]:
    """Write out/skeletons/part-*.parquet, out/plan.json and out/metrics.json; return the metrics.

    Chunks are independent (every draw is a hash of seed and slot), so they run in `workers`
    processes (default: one per core) and give the same files as one process would.
    """
    plan = SamplePlan.from_config(cfg)
    target = out / "skeletons"
    if target.exists() and any(target.iterdir()):
        raise UserInputError(str(target), "--out", "already holds skeletons", "choose a new folder or delete it")
    chunks = [
        (part, start, min(start + chunk_rows, cfg.population))
        for part, start in enumerate(range(0, cfg.population, chunk_rows))
    ]
    workers = min(workers or os.cpu_count() or 1, len(chunks))
    counts = SampleCounts()  # metrics are tallied from codes chunk by chunk: no second pass over Parquet
    redraw_counts: Counter[str] = Counter()
    if workers <= 1:
        results = [plan.write_chunk(part, range(start, stop), target) for part, start, stop in chunks]
    else:
        # spawn: safe beside threads a caller may run (Prefect, Ray); each worker plans once.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(cfg.model_dump_json(),)
        ) as pool:
            results = list(pool.map(_write_chunk_in_worker, *zip(*chunks, strict=True), [target] * len(chunks)))
    for chunk_counts, chunk_redraws in results:
        counts.add(chunk_counts)
        redraw_counts.update(chunk_redraws)
    redraws = dict(sorted(redraw_counts.items()))
    taxonomy = plan.taxonomy
    summary = {
        "population": cfg.population,
        "seed": cfg.seed,
        "deep_attributes": cfg.deep_attributes,
        "fingerprint": cfg.fingerprint(),
        "taxonomy": {"name": taxonomy.name, "version": taxonomy.version, "hash": taxonomy.content_hash},
        "preset": cfg.quotas.preset,
        "cells": plan.planned,
        "constraint_redraws": redraws,
    }
    write_bytes_atomically(orjson.dumps(summary, option=orjson.OPT_INDENT_2), out / "plan.json")
    metrics = metrics_from_counts(counts, plan.planned, plan.scope)
    metrics["constraint_redraws"] = redraws
    write_bytes_atomically(
        orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY), out / "metrics.json"
    )
    return metrics
