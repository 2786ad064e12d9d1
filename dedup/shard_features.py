"""Dedup features of one shard's accepted personas, computed once per shard (in parallel tasks) and kept.

Every backfill wave deduplicates the whole corpus again, and the finished run stores its features
for later runs: with features per shard, each persona's signatures and vector are computed once,
not once per wave plus once more for the index.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dedup.detect import DedupItems, compute_features, fact_set
from dedup.embedders import Embedder, create_embedder
from dedup.feature_shards import RANK_COLUMNS
from schemas.config import DedupConfig, EmbedderConfig

# Hashes and vectors: written uncompressed (write_table_atomically's raw_columns).
RANDOM_COLUMNS = ("text_signatures", "fact_signatures", "vectors")


@functools.cache
def _embedder(cfg_json: str) -> Embedder:
    return create_embedder(EmbedderConfig.model_validate_json(cfg_json))


def _fixed_rows(matrix: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def shard_features(settled: pa.Table, cfg: DedupConfig) -> pa.Table:
    """The shard's accepted personas with what the enabled layers need: text, facts, hash, signatures, vector."""
    accepted = settled.filter(pc.field("accepted")).select(["persona_id", *RANK_COLUMNS, "narrative", "attributes"])
    rows = accepted.to_pylist()
    items = DedupItems(
        ids=[r["persona_id"] for r in rows],
        texts=[r["narrative"] for r in rows],
        ranks=[0.0] * len(rows),
        facts=[fact_set(r["attributes"]) for r in rows],
    )
    embedder = _embedder(cfg.embedder.model_dump_json()) if cfg.semantic else None
    compute_features(items, cfg, embedder)
    columns = {name: accepted.column(name) for name in ("persona_id", *RANK_COLUMNS, "narrative")}
    columns["facts"] = pa.array([sorted(f) for f in items.facts or []], type=pa.list_(pa.string()))
    if items.text_hashes is not None:
        columns["text_hash"] = pa.array(items.text_hashes, type=pa.string())
    for name in ("text_signatures", "fact_signatures", "vectors"):
        value = getattr(items, name)
        if value is not None and len(rows):
            columns[name] = _fixed_rows(value)
    return pa.table(columns)
