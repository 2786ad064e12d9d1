"""Settled slots to the corpus's two tables: personas (accepted, not duplicates) and rejects (why not)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from schemas.table_checks import PERSONAS_CHECK, REJECTS_CHECK, check_table
from schemas.tables import PERSONAS, REJECTS, rows_table


def reject_stage(reason: str) -> str:
    """The stage that lost a settled slot, from its reason."""
    if reason == "backend":
        return "propose"
    return "judge" if reason.startswith("judge:") else "validate"


def persona_tables(
    settled: pa.Table, clusters: pa.Table, lineage: dict[str, Any], created_at: datetime, label: str
) -> tuple[pa.Table, pa.Table]:
    """(personas, rejects) of one shard's settled slots; `clusters` holds at least this shard's rows."""
    cluster_of = {r["persona_id"]: r for r in clusters.to_pylist()}
    personas, rejects = [], []
    for row in settled.to_pylist():
        base = {
            "persona_id": row["persona_id"],
            "slot": row["slot"],
            "stratum": row["stratum"],
            "run_id": lineage["run_id"],
            "created_at": created_at,
        }
        cluster = cluster_of.get(row["persona_id"])
        if not row["accepted"]:
            rejects.append(
                {
                    **base,
                    "stage": reject_stage(row["reason"]),
                    "reason": row["reason"],
                    "detail": row["detail"],
                    "round": row["rounds"] - 1,
                    "raw_output": row["raw_output"],
                    "duplicate_of": None,
                }
            )
        elif cluster and cluster["duplicate_of"]:
            rejects.append(
                {
                    **base,
                    "stage": "dedup",
                    "reason": f"duplicate_of:{cluster['duplicate_of']}",
                    "detail": f"{cluster['layer']} similarity {cluster['similarity']:.3f}",
                    "round": row["rounds"] - 1,
                    "raw_output": row["raw_output"],
                    "duplicate_of": cluster["duplicate_of"],
                }
            )
        else:
            personas.append(
                {
                    **base,
                    **lineage,
                    "name": row["name"],
                    "narrative": row["narrative"],
                    "attributes": [{"key": k, "value": v} for k, v in row["attributes"]],
                    "verdict_summary": row["verdict_summary"],
                    "rounds": row["rounds"],
                    "judge_plausibility": row["judge_plausibility"],
                    "judge_consistency": row["judge_consistency"],
                    "duplicate_cluster_id": cluster["cluster_id"] if cluster else row["persona_id"],
                }
            )
    personas_table = rows_table(personas, PERSONAS)
    rejects_table = rows_table(rejects, REJECTS)
    check_table(personas_table, PERSONAS_CHECK, f"personas {label}")
    check_table(rejects_table, REJECTS_CHECK, f"rejects {label}")
    return personas_table, rejects_table
