"""What every build task shares: task options and reading a stage's shards."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from prefect.cache_policies import NO_CACHE

from schemas.records import Skeleton

STAGE_TASK = {"cache_policy": NO_CACHE, "log_prints": False}


def shard_ranges(first_slot: int, count: int, shard_size: int) -> list[range]:
    end = first_slot + count
    return [range(start, min(start + shard_size, end)) for start in range(first_slot, end, shard_size)]


def read_skeletons(path: Path) -> list[Skeleton]:
    return [Skeleton(persona_id=r["persona_id"], slot=r["slot"], stratum=r["stratum"],
                     attributes=dict(r["attributes"]), open_attributes=r.get("open_attributes") or [])
            for r in pq.read_table(path).to_pylist()]


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()
