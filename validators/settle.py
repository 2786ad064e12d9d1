"""Settle each slot after the last revise round: accepted with its prose, or rejected with why."""

from __future__ import annotations

import pyarrow as pa

from schemas.records import Skeleton
from schemas.tables import SETTLED
from validators.engine import parse_proposal


def failed_checks(verdicts: list[dict]) -> dict[str, list[dict]]:
    """persona_id -> its failed error-severity verdict rows (empty list: passed)."""
    out: dict[str, list[dict]] = {}
    for row in verdicts:
        out.setdefault(row["persona_id"], [])
        if not row["passed"] and row["severity"] == "error":
            out[row["persona_id"]].append(row)
    return out


def summarize_verdicts(rows: list[dict]) -> str:
    failed = sorted({r["check"] for r in rows if not r["passed"] and r["severity"] == "error"})
    warned = sorted({r["check"] for r in rows if not r["passed"] and r["severity"] == "warning"})
    parts = [f"failed={','.join(failed)}" if failed else "passed"]
    if warned:
        parts.append(f"warnings={','.join(warned)}")
    return "; ".join(parts)


def settle_slots(skeletons: list[Skeleton], proposals: dict[int, dict[str, dict]],
                 verdicts: dict[int, list[dict]]) -> pa.Table:
    """proposals/verdicts are keyed by round; each slot is judged on its last round."""
    rows = []
    for skeleton in skeletons:
        pid = skeleton.persona_id
        rounds = sorted(r for r, by_id in proposals.items() if pid in by_id)
        last = rounds[-1]
        proposal_row = proposals[last][pid]
        mine = [v for v in verdicts[last] if v["persona_id"] == pid]
        errors = failed_checks(mine).get(pid, [])
        parsed, _ = parse_proposal(proposal_row["raw_output"] or "", skeleton)
        accepted = not errors and parsed is not None
        rows.append({
            "persona_id": pid, "slot": skeleton.slot, "stratum": skeleton.stratum,
            "attributes": list(skeleton.attributes.items()),
            "name": parsed.name if accepted else None,
            "narrative": parsed.narrative if accepted else None,
            "accepted": accepted,
            "reason": None if accepted else (errors[0]["check"] if errors else "schema"),
            "detail": None if accepted else " | ".join(e["message"] for e in errors),
            "rounds": len(rounds),
            "warnings": sum(1 for v in mine if not v["passed"] and v["severity"] == "warning"),
            "verdict_summary": summarize_verdicts(mine),
            "raw_output": proposal_row["raw_output"],
            "prompt_tokens": sum(proposals[r][pid]["prompt_tokens"] for r in rounds),
            "completion_tokens": sum(proposals[r][pid]["completion_tokens"] for r in rounds),
        })
    return pa.Table.from_pylist(rows, schema=SETTLED)
