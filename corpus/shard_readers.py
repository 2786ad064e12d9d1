"""Reading a run's shards back: rows as dicts, skeletons as records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from schemas.records import Skeleton
from taxonomy.skeleton_table import skeletons_of_table


def read_skeletons(path: Path) -> list[Skeleton]:
    return skeletons_of_table(pq.read_table(path))


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows
