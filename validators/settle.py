"""Settle each slot after the last revise round: accepted with its prose, or rejected with why."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas.records import Skeleton
from schemas.tables import SETTLED, rows_table
from taxonomy.skeleton_table import skeletons_of_table
from validators.engine import parse_proposal


def failed_checks(verdicts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """persona_id -> its failed error-severity verdict rows (empty list: passed)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in verdicts:
        out.setdefault(row["persona_id"], [])
        if not row["passed"] and row["severity"] == "error":
            out[row["persona_id"]].append(row)
    return out


def summarize_verdicts(rows: list[dict[str, Any]]) -> str:
    failed = sorted({r["check"] for r in rows if not r["passed"] and r["severity"] == "error"})
    warned = sorted({r["check"] for r in rows if not r["passed"] and r["severity"] == "warning"})
    parts = [f"failed={','.join(failed)}" if failed else "passed"]
    if warned:
        parts.append(f"warnings={','.join(warned)}")
    return "; ".join(parts)


def settle_slots(
    skeletons: list[Skeleton],
    proposals: dict[int, dict[str, dict[str, Any]]],
    verdicts: dict[int, list[dict[str, Any]]],
) -> pa.Table:
    """proposals/verdicts are keyed by round; each slot is judged on its last round."""
    # Grouped once: scanning a round's verdicts per slot made settling quadratic in the shard size.
    verdicts_of: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for round_no, round_rows in verdicts.items():
        by_id = verdicts_of.setdefault(round_no, {})
        for row in round_rows:
            by_id.setdefault(row["persona_id"], []).append(row)
    rows = []
    for skeleton in skeletons:
        pid = skeleton.persona_id
        rounds = sorted(r for r, by_id in proposals.items() if pid in by_id)
        last = rounds[-1]
        proposal_row = proposals[last][pid]
        mine = verdicts_of.get(last, {}).get(pid, [])
        errors = failed_checks(mine).get(pid, [])
        parsed, _ = parse_proposal(proposal_row["raw_output"] or "", skeleton)
        kept = None if errors else parsed  # accepted: no failed check, and prose that parses
        accepted = kept is not None
        rows.append(
            {
                "persona_id": pid,
                "slot": skeleton.slot,
                "stratum": skeleton.stratum,
                "attributes": list(skeleton.attributes.items()),
                "name": kept.name if kept is not None else None,
                "narrative": kept.narrative if kept is not None else None,
                "accepted": accepted,
                "reason": None if accepted else (errors[0]["check"] if errors else "schema"),
                "detail": None if accepted else " | ".join(e["message"] for e in errors),
                "rounds": len(rounds),
                "warnings": sum(1 for v in mine if not v["passed"] and v["severity"] == "warning"),
                "verdict_summary": summarize_verdicts(mine),
                "raw_output": proposal_row["raw_output"],
                "prompt_tokens": sum(proposals[r][pid]["prompt_tokens"] for r in rounds),
                "completion_tokens": sum(proposals[r][pid]["completion_tokens"] for r in rounds),
            }
        )
    return rows_table(rows, SETTLED)


def settle_shard_table(skeletons: pa.Table, proposals: dict[int, pa.Table], verdicts: dict[int, pa.Table]) -> pa.Table:
    """settle_slots over a shard's tables (per round): what a Ray task runs."""
    return settle_slots(
        skeletons_of_table(skeletons),
        {r: {row["persona_id"]: row for row in table.to_pylist()} for r, table in proposals.items()},
        {r: failed_rows(table).to_pylist() for r, table in verdicts.items()},
    )


def failed_rows(verdicts: pa.Table) -> pa.Table:
    """The verdict rows that failed: all settling reads (a slot's passed checks are most of its rows)."""
    return verdicts.filter(pc.invert(verdicts.column("passed")))
