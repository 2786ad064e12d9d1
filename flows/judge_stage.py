"""The build's optional judge stage: score a wave's accepted personas, then gate on thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task

from corpus.run_folder import RunFolder
from corpus.shard_readers import read_rows
from flows.task_options import MODEL_TASK, STAGE_TASK
from foundation.atomic_files import commit_once, uncommitted, write_table_atomically
from schemas.config import RunConfig
from schemas.tables import JUDGEMENTS, SETTLED, rows_table
from taxonomy.model import Taxonomy
from validators.judge import apply_thresholds, judge_requests, parse_judgement
from workers.engine_pool import Engines


def final_stage(cfg: RunConfig) -> str:
    """Where settled slots are read from downstream: after the judge gate when it runs."""
    return "gated" if cfg.judge.enabled else "settled"


@task(**MODEL_TASK)
def judge_wave(run: RunFolder, cfg: RunConfig, taxonomy: Taxonomy, shards: list[int], engines: Engines) -> None:
    backend = cfg.judge.backend or cfg.backend
    todo = uncommitted({s: run.stage_shard("judgements", s) for s in shards})
    rows = {s: [r for r in read_rows(run.stage_shard("settled", s)) if r["accepted"]] for s in todo}
    shard_of = {r["persona_id"]: s for s, shard_rows in rows.items() for r in shard_rows}
    requests = judge_requests([r for shard_rows in rows.values() for r in shard_rows], taxonomy, backend, cfg.seed)
    scored: dict[int, list[dict[str, Any]]] = {s: [] for s in todo}
    for result in engines.generate(backend, requests, stage="judge"):
        scored[shard_of[result.request_id]].append(parse_judgement(result))
    for shard in todo:
        write_table_atomically(rows_table(scored[shard], JUDGEMENTS), run.stage_shard("judgements", shard))


@task(**STAGE_TASK)
def gate_shard(run: RunFolder, cfg: RunConfig, shard: int) -> Path:
    def gate() -> pa.Table:
        judgements = {r["persona_id"]: r for r in read_rows(run.stage_shard("judgements", shard))}
        gated = apply_thresholds(read_rows(run.stage_shard("settled", shard)), judgements, cfg.judge)
        return rows_table(gated, SETTLED)

    return commit_once(run.stage_shard("gated", shard), gate)
