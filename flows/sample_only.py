"""`populace sample`: skeletons and a plan summary without any LLM, in chunks of bounded memory."""

from __future__ import annotations

from pathlib import Path

import orjson

from corpus.run_folder import write_bytes_atomically, write_table_atomically
from corpus.sampling_metrics import cells_as_json, sampling_metrics, skeleton_glob
from schemas.config import RunConfig
from schemas.errors import UserInputError
from taxonomy.loader import load_taxonomy
from taxonomy.presets import load_preset
from taxonomy.quotas import assign_slots, plan_quotas
from taxonomy.skeleton_table import batch_to_table
from validators.constraints import facts_constraints, sample_constrained
from validators.rule_pack import load_rule_pack

CHUNK_ROWS = 100_000


def write_sample(cfg: RunConfig, out: Path, chunk_rows: int = CHUNK_ROWS) -> dict:
    """Write out/skeletons/part-*.parquet, out/plan.json and out/metrics.json; return the metrics."""
    taxonomy = load_taxonomy(cfg.taxonomy)
    cells = plan_quotas(cfg.strata, taxonomy, cfg.population, cfg.quotas)
    preset = load_preset(cfg.quotas.preset, taxonomy) if cfg.quotas.preset else None
    constraints = facts_constraints(load_rule_pack())
    target = out / "skeletons"
    if target.exists() and any(target.iterdir()):
        raise UserInputError(str(target), "--out", "already holds skeletons", "choose a new folder or delete it")
    slot_cells = assign_slots(cells, cfg.seed)
    redraw_counts: dict[str, int] = {}
    for part, start in enumerate(range(0, cfg.population, chunk_rows)):
        slots = range(start, min(start + chunk_rows, cfg.population))
        batch, redraws = sample_constrained(taxonomy, slot_cells[slots.start:slots.stop], cfg.seed, slots,
                                            cfg.deep_attributes, constraints)
        for rules in redraws.values():
            for rule_id in rules:
                redraw_counts[rule_id] = redraw_counts.get(rule_id, 0) + 1
        write_table_atomically(batch_to_table(batch, taxonomy, redraws, part), target / f"part-{part:05d}.parquet")
    plan = {"population": cfg.population, "seed": cfg.seed, "deep_attributes": cfg.deep_attributes,
            "fingerprint": cfg.fingerprint(),
            "taxonomy": {"name": taxonomy.name, "version": taxonomy.version, "hash": taxonomy.content_hash},
            "preset": cfg.quotas.preset, "cells": cells_as_json(cells), "constraint_redraws": redraw_counts}
    write_bytes_atomically(orjson.dumps(plan, option=orjson.OPT_INDENT_2), out / "plan.json")
    metrics = sampling_metrics(skeleton_glob(out), plan["cells"], taxonomy, preset)
    metrics["constraint_redraws"] = redraw_counts
    write_bytes_atomically(orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY),
                           out / "metrics.json")
    return metrics
