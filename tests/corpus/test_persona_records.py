"""A shard's settled slots to personas and rejects: every slot ends in exactly one of them, with its reason;
and the kept personas beyond a stratum's quota are the last backfill slots."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.persona_records import OVER_QUOTA_DETAIL, persona_files, persona_tables
from corpus.run_folder import RunFolder
from flows.dedup_stage import kept_per_stratum, over_quota_slots
from schemas.tables import CLUSTERS, PERSONAS, REJECTS, SETTLED, rows_table

LINEAGE = {
    "run_id": "run-1",
    "taxonomy_name": "core",
    "taxonomy_version": "1",
    "taxonomy_hash": "a" * 64,
    "seed": 7,
    "backend": "openai",
    "model": "m",
    "prompt_template_hash": "abc123",
}
NOW = datetime(2026, 12, 4, tzinfo=UTC)


def settled_row(slot: int, stratum: str = "sex=female", accepted: bool = True, reason: str | None = None) -> dict:
    return {
        "persona_id": f"p-{slot}",
        "slot": slot,
        "stratum": stratum,
        "attributes": [("demographics.age", str(20 + slot)), ("work.occupation", "nurse")],
        "name": f"Ann Lee{slot}",
        "narrative": f"Ann is {20 + slot} and works as a nurse.",
        "accepted": accepted,
        "reason": reason,
        "detail": f"detail of {reason}" if reason else None,
        "rounds": 2,
        "warnings": 0,
        "verdict_summary": "passed" if accepted else f"failed={reason}",
        "raw_output": '{"narrative": "..."}',
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "judge_plausibility": 4 if accepted else None,
        "judge_consistency": None,
    }


def cluster_row(slot: int, cluster_of: int, duplicate_of: int | None = None) -> dict:
    return {
        "persona_id": f"p-{slot}",
        "cluster_id": f"p-{cluster_of}",
        "kept": duplicate_of is None,
        "duplicate_of": f"p-{duplicate_of}" if duplicate_of is not None else None,
        "layer": "semantic" if duplicate_of is not None else None,
        "similarity": 0.9512 if duplicate_of is not None else None,
    }


def test_every_settled_slot_becomes_a_persona_or_a_reject_with_its_reason():
    settled = rows_table(
        [
            settled_row(0),  # kept, heads a cluster
            settled_row(1),  # a duplicate of 0
            settled_row(2, accepted=False, reason="fidelity:age"),
            settled_row(3, accepted=False, reason="backend"),
            settled_row(4, accepted=False, reason="judge:plausibility"),
            settled_row(5),  # kept, no cluster row
            settled_row(6),  # kept, but beyond its stratum's quota
        ],
        SETTLED,
    )
    clusters = rows_table([cluster_row(0, 0), cluster_row(1, 0, duplicate_of=0), cluster_row(6, 6)], CLUSTERS)
    personas, rejects = persona_tables(settled, clusters, LINEAGE, NOW, "shard 0", pa.array(["p-6"]))

    assert personas.schema.equals(PERSONAS) and rejects.schema.equals(REJECTS)
    kept = personas.to_pylist()
    assert [p["persona_id"] for p in kept] == ["p-0", "p-5"]
    assert [p["duplicate_cluster_id"] for p in kept] == ["p-0", "p-5"]  # its own id without a cluster row
    first = kept[0]
    assert first["attributes"] == [
        {"key": "demographics.age", "value": "20"},
        {"key": "work.occupation", "value": "nurse"},
    ]
    assert {k: first[k] for k in LINEAGE} == LINEAGE and first["created_at"] == NOW
    assert (first["name"], first["rounds"], first["judge_plausibility"], first["judge_consistency"]) == (
        "Ann Lee0",
        2,
        4,
        None,
    )

    by_id: dict[str, dict[str, Any]] = {r["persona_id"]: r for r in rejects.to_pylist()}
    assert list(by_id) == ["p-1", "p-2", "p-3", "p-4", "p-6"]  # slot order
    assert {pid: (r["stage"], r["reason"]) for pid, r in by_id.items()} == {
        "p-1": ("dedup", "duplicate_of:p-0"),
        "p-2": ("validate", "fidelity:age"),
        "p-3": ("propose", "backend"),
        "p-4": ("judge", "judge:plausibility"),
        "p-6": ("quota", "over_quota"),
    }
    assert by_id["p-1"]["detail"] == "semantic similarity 0.951" and by_id["p-1"]["duplicate_of"] == "p-0"
    assert by_id["p-2"]["detail"] == "detail of fidelity:age" and by_id["p-6"]["detail"] == OVER_QUOTA_DETAIL
    assert all(r["round"] == 1 and r["run_id"] == "run-1" and r["raw_output"] for r in by_id.values())

    # What the write task sends back: the same two tables as Parquet files' bytes, read back whole.
    files = persona_files(settled, clusters, LINEAGE, NOW, "shard 0", pa.array(["p-6"]))
    read = [pq.read_table(pa.BufferReader(data)) for data in files]
    assert read[0].equals(personas) and read[1].equals(rejects)


def test_the_personas_beyond_a_quota_are_the_last_kept_slots_of_that_stratum(tmp_path):
    """Stratum a: quota 2, kept slots 0, 3 (first wave) and 11, 14 (backfill; 12 was a duplicate, 13
    refused): 11 and 14 are beyond. Stratum b: quota 2, kept 1 and 10: none beyond. Stratum c: short."""
    run = RunFolder(tmp_path)
    strata = {0: "a", 1: "b", 2: "c", 3: "a", 10: "b", 11: "a", 12: "a", 13: "a", 14: "a"}
    rows = [
        settled_row(slot, stratum, accepted=slot != 13, reason=None if slot != 13 else "x")
        for slot, stratum in strata.items()
    ]
    for shard, part in enumerate([rows[:4], rows[4:]]):
        path = run.stage_shard("settled", shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows_table(part, SETTLED), path)
    clusters_path = run.clusters(1)
    clusters_path.parent.mkdir(parents=True)
    clusters = [cluster_row(slot, slot) for slot in strata if slot not in (12, 13)] + [cluster_row(12, 11, 11)]
    pq.write_table(rows_table(clusters, CLUSTERS), clusters_path)

    assert kept_per_stratum(run, [0, 1], clusters_path) == {"a": 4, "b": 2, "c": 1}
    beyond = over_quota_slots(run, [0, 1], clusters_path, {"a": 2, "b": 2, "c": 3})
    assert beyond.to_pylist() == [{"persona_id": "p-11", "stratum": "a"}, {"persona_id": "p-14", "stratum": "a"}]
    assert over_quota_slots(run, [0, 1], clusters_path, {"a": 4, "b": 2, "c": 1}).num_rows == 0
