"""Settled slots to the corpus's two tables: personas (accepted, not duplicates) and rejects (why not)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from foundation.atomic_files import parquet_bytes
from schemas.tables import PERSONAS, REJECTS, rows_table

# What an over-quota reject says: the persona was fine, its stratum was already full.
OVER_QUOTA_DETAIL = (
    "its stratum already had its quota: a backfill wave asks for a few more slots than the strata lack, "
    "to cover those validation and dedup refuse, and the last ones kept beyond the quota are set aside"
)


def reject_stage(reason: str) -> str:
    """The stage that lost a settled slot, from its reason."""
    if reason == "backend":
        return "propose"
    return "judge" if reason.startswith("judge:") else "validate"


def persona_tables(
    settled: pa.Table,
    clusters: pa.Table,
    lineage: dict[str, Any],
    created_at: datetime,
    label: str,
    over_quota: pa.Array | None = None,
) -> tuple[pa.Table, pa.Table]:
    """(personas, rejects) of one shard's settled slots; `clusters` holds at least this shard's rows,
    `over_quota` the ids kept beyond their stratum's quota (rejected as over_quota).

    Personas are made column by column (a shard's facts are ~100,000 entries: as Python dicts they
    cost most of the write); rejects, a few per shard, row by row."""
    ids = settled.column("persona_id")
    cluster = clusters.take(pc.index_in(ids, value_set=clusters.column("persona_id")))
    set_aside = pc.fill_null(pc.not_equal(cluster.column("duplicate_of"), ""), False)  # a duplicate
    if over_quota is not None and len(over_quota):
        set_aside = pc.or_(set_aside, pc.is_in(ids, value_set=over_quota))
    kept = pc.and_(settled.column("accepted"), pc.invert(set_aside))
    personas = persona_columns(settled.filter(kept), cluster.filter(kept), lineage, created_at)
    rejects = rows_table(
        reject_rows(settled.filter(pc.invert(kept)), cluster.filter(pc.invert(kept)), lineage, created_at), REJECTS
    )
    # Imported here: pandera takes ~1 s to import, which a build's driver would pay at start-up
    # while only the write tasks check tables.
    from schemas.table_checks import PERSONAS_CHECK, REJECTS_CHECK, check_table

    check_table(personas, PERSONAS_CHECK, f"personas {label}")
    check_table(rejects, REJECTS_CHECK, f"rejects {label}")
    return personas, rejects


def persona_files(*args: Any) -> tuple[bytes, bytes]:
    """persona_tables(*args) as the (personas, rejects) Parquet files' bytes: the write task encodes
    them where it ran, and the driver only commits them."""
    personas, rejects = persona_tables(*args)
    return parquet_bytes(personas), parquet_bytes(rejects)


def persona_columns(kept: pa.Table, cluster: pa.Table, lineage: dict[str, Any], created_at: datetime) -> pa.Table:
    """The personas table of a shard's kept slots (`cluster`: each slot's clusters row, or nulls)."""
    constants = {**lineage, "created_at": created_at}
    columns: dict[str, Any] = {}
    for field in PERSONAS:
        if field.name == "attributes":  # a map and a list of {key, value} entries share their layout
            columns["attributes"] = kept.column("attributes").cast(field.type)
        elif field.name == "duplicate_cluster_id":  # its own cluster when it has no duplicate
            columns[field.name] = pc.coalesce(cluster.column("cluster_id"), kept.column("persona_id"))
        elif field.name in constants:
            columns[field.name] = pa.repeat(pa.scalar(constants[field.name], field.type), kept.num_rows)
        else:
            columns[field.name] = kept.column(field.name)
    return pa.table(columns, schema=PERSONAS)


def reject_rows(
    lost: pa.Table, cluster: pa.Table, lineage: dict[str, Any], created_at: datetime
) -> list[dict[str, Any]]:
    """Rows of the rejects table: slots validation (or the judge, or the backend) refused, duplicates
    dedup removed, and personas kept beyond their stratum's quota."""
    rows = []
    for row, found in zip(lost.to_pylist(), cluster.to_pylist(), strict=True):
        base = {
            "persona_id": row["persona_id"],
            "slot": row["slot"],
            "stratum": row["stratum"],
            "run_id": lineage["run_id"],
            "created_at": created_at,
            "round": row["rounds"] - 1,
            "raw_output": row["raw_output"],
        }
        if not row["accepted"]:
            rows.append(
                {**base, "stage": reject_stage(row["reason"]), "reason": row["reason"], "detail": row["detail"]}
            )
        elif found is None or not found["duplicate_of"]:  # kept by dedup, but beyond its stratum's quota
            rows.append({**base, "stage": "quota", "reason": "over_quota", "detail": OVER_QUOTA_DETAIL})
        else:
            rows.append(
                {
                    **base,
                    "stage": "dedup",
                    "reason": f"duplicate_of:{found['duplicate_of']}",
                    "detail": f"{found['layer']} similarity {found['similarity']:.3f}",
                    "duplicate_of": found["duplicate_of"],
                }
            )
    return rows
