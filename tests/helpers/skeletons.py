"""A nurse's skeleton and a model's answer for it: what validator and revision tests feed the checks."""

from __future__ import annotations

import orjson
import pyarrow as pa

from schemas.records import Skeleton
from schemas.tables import SKELETONS

NARRATIVE = (
    "Dana spends her mornings at the clinic and her evenings in the garden. She grows tomatoes for the whole street."
)


def skeleton(pid="p-1", name="Dana Reyes", **attrs) -> Skeleton:
    base = {
        "demographics.age": "45",
        "work.employment_status": "employed full-time",
        "work.occupation": "nurse",
        "education.highest_level": "bachelor's degree",
    }
    base.update(attrs)
    return Skeleton(persona_id=pid, slot=int(pid.split("-")[1]), stratum="all", attributes=base, name=name)


def answer(narrative=NARRATIVE) -> str:
    """What the LLM writes: the continuation of the opening sentence that code writes from the facts."""
    return orjson.dumps({"narrative": narrative}).decode()


def skeleton_table(slots: list[Skeleton]) -> pa.Table:
    """Skeletons as a shard's table (shard 0, no redraws)."""
    rows = [{**s.model_dump(), "shard": 0, "attributes": list(s.attributes.items()), "redraws": []} for s in slots]
    return pa.Table.from_pylist(rows, schema=SKELETONS)
