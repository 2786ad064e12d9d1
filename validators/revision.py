"""The requests of one shard's round, as a CPU task makes them: round 0 asks for every slot, a
revise round for the slots whose last answer failed, each with what to fix.

Rendering a prompt costs more than anything else the driver would do for a request, so it runs
beside the other stage cores and the driver only forwards the rows to the model workers.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from schemas.config import BackendConfig
from taxonomy.model import Taxonomy
from taxonomy.skeleton_table import skeleton_rows_of, skeletons_of_table
from validators.settle import failed_checks, failed_rows
from workers.backend import GenerationRequest
from workers.proposer import build_requests


def revise_feedback(verdicts: pa.Table) -> dict[str, list[str]]:
    """persona_id -> the messages of its failed error checks, for each slot that has any."""
    failed = failed_rows(verdicts).select(["persona_id", "passed", "severity", "message"])
    previous = failed_checks(failed.to_pylist())
    return {pid: [row["message"] for row in rows] for pid, rows in previous.items() if rows}


def round_request_rows(
    skeletons: pa.Table,
    previous: pa.Table | None,
    taxonomy: Taxonomy,
    backend: BackendConfig,
    run_seed: int,
    round_no: int,
) -> list[dict[str, Any]]:
    """The round's requests as the model workers take them (GenerationRequest dumps), slot order kept.

    `previous`: the previous round's verdicts (None in round 0); none failed: nothing to revise."""
    if previous is None:
        return dump(build_requests(skeletons_of_table(skeletons), taxonomy, backend, run_seed, round_no))
    feedback = revise_feedback(previous)
    # Only the slots revised become records (a tenth of a shard or so).
    revised = skeletons_of_table(skeleton_rows_of(skeletons, pa.array(list(feedback), pa.string())))
    return dump(build_requests(revised, taxonomy, backend, run_seed, round_no, feedback))


def dump(requests: list[GenerationRequest]) -> list[dict[str, Any]]:
    return [request.model_dump() for request in requests]
