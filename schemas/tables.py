"""Arrow schemas of every Parquet table in a run folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

ATTRIBUTES = pa.map_(pa.string(), pa.string())
# The published personas keep facts as a list of {key, value}: the same layout as a map, but one that
# Hugging Face `datasets` (and so the Hub) can read. The DuckDB views turn it back into a MAP.
FACT_ENTRIES = pa.list_(pa.struct([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())]))
# DuckDB: the persona Parquet files with `attributes` as a MAP again.
PERSONAS_AS_MAP = "SELECT * REPLACE (map_from_entries(attributes) AS attributes) FROM read_parquet({files})"
# Skeletons are written by the million: ids and values dictionary-encoded, the same strings on read.
DICT_STRING = pa.dictionary(pa.int32(), pa.string())
SKELETON_ATTRIBUTES = pa.map_(DICT_STRING, DICT_STRING)

SKELETONS = pa.schema(
    [
        ("persona_id", pa.string()),
        ("slot", pa.int64()),
        ("shard", pa.int64()),
        ("stratum", DICT_STRING),
        ("name", pa.string()),
        ("attributes", SKELETON_ATTRIBUTES),
        ("open_attributes", pa.list_(pa.string())),  # text attributes the LLM fills in
        ("redraws", pa.list_(pa.string())),  # constraint ids that forced a redraw of this slot
    ]
)

PROPOSALS = pa.schema(
    [
        ("persona_id", pa.string()),
        ("round", pa.int64()),
        ("raw_output", pa.string()),
        ("error", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("retries", pa.int64()),
    ]
)

VERDICTS = pa.schema(
    [
        ("persona_id", pa.string()),
        ("round", pa.int64()),
        ("check", pa.string()),
        ("severity", pa.string()),
        ("passed", pa.bool_()),
        ("message", pa.string()),
    ]
)

# One row per slot once propose-validate-revise has settled it.
SETTLED = pa.schema(
    [
        ("persona_id", pa.string()),
        ("slot", pa.int64()),
        ("stratum", pa.string()),
        ("attributes", ATTRIBUTES),
        ("name", pa.string()),
        ("narrative", pa.string()),
        ("accepted", pa.bool_()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("rounds", pa.int64()),
        ("warnings", pa.int64()),
        ("verdict_summary", pa.string()),
        ("raw_output", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        # Filled by the optional judge stage (NULL when it does not run).
        ("judge_plausibility", pa.int64()),
        ("judge_consistency", pa.int64()),
    ]
)

JUDGEMENTS = pa.schema(
    [
        ("persona_id", pa.string()),
        ("plausibility", pa.int64()),
        ("consistency", pa.int64()),
        ("reason", pa.string()),
        ("raw_output", pa.string()),
        ("error", pa.string()),
    ]
)

CLUSTERS = pa.schema(
    [
        ("persona_id", pa.string()),
        ("cluster_id", pa.string()),
        ("kept", pa.bool_()),
        ("duplicate_of", pa.string()),
        ("layer", pa.string()),
        ("similarity", pa.float64()),
    ]
)

LINEAGE = [
    ("run_id", pa.string()),
    ("taxonomy_name", pa.string()),
    ("taxonomy_version", pa.string()),
    ("taxonomy_hash", pa.string()),
    ("seed", pa.int64()),
    ("backend", pa.string()),
    ("model", pa.string()),
    ("prompt_template_hash", pa.string()),
    ("verdict_summary", pa.string()),
    ("rounds", pa.int64()),
    ("duplicate_cluster_id", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
]

PERSONAS = pa.schema(
    [
        ("persona_id", pa.string()),
        ("slot", pa.int64()),
        ("stratum", pa.string()),
        ("name", pa.string()),
        ("narrative", pa.string()),
        ("attributes", FACT_ENTRIES),
        *LINEAGE,
        ("judge_plausibility", pa.int64()),
        ("judge_consistency", pa.int64()),
    ]
)

REJECTS = pa.schema(
    [
        ("persona_id", pa.string()),
        ("slot", pa.int64()),
        ("stratum", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("round", pa.int64()),
        ("raw_output", pa.string()),
        ("duplicate_of", pa.string()),
        ("run_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def rows_table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """A table of dict rows (a missing key is null): built column by column, which is several times
    faster than Table.from_pylist (80,000 verdict rows: 0.04 s against 0.27 s)."""
    return pa.table({name: [row.get(name) for row in rows] for name in schema.names}, schema=schema)
