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

from dedup.detect import DedupItems, compute_features
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


def fact_lists(attributes: pa.ChunkedArray) -> pa.ListArray:
    """Each persona's facts as "key=value" strings, computed in Arrow from its attributes (a map, or
    a list of {key, value} entries)."""
    attributes = attributes.combine_chunks()
    entries = attributes.values  # offsets index into the whole child, sliced or not
    facts = pc.binary_join_element_wise(entries.field("key"), entries.field("value"), "=")
    return pa.ListArray.from_arrays(attributes.offsets, facts, mask=attributes.is_null())


def shard_features(settled: pa.Table, cfg: DedupConfig) -> pa.Table:
    """The shard's accepted personas with what the enabled layers need: text, facts, hash, signatures, vector."""
    # Columns first, then a boolean mask: filtering the whole table by an expression went through
    # Acero and cost more than the MinHash signatures.
    columns = settled.select(["persona_id", *RANK_COLUMNS, "narrative", "attributes"])
    accepted = columns.filter(settled.column("accepted"))
    facts = fact_lists(accepted.column("attributes"))
    items = DedupItems(
        ids=accepted.column("persona_id").to_pylist(),
        texts=accepted.column("narrative").to_pylist(),
        ranks=[0.0] * accepted.num_rows,
        facts=[set(f or ()) for f in facts.to_pylist()],
    )
    embedder = _embedder(cfg.embedder.model_dump_json()) if cfg.semantic else None
    compute_features(items, cfg, embedder)
    columns = {name: accepted.column(name) for name in ("persona_id", *RANK_COLUMNS, "narrative")}
    columns["facts"] = facts  # read back as sets: order and repeats do not matter
    if items.text_hashes is not None:
        columns["text_hash"] = pa.array(items.text_hashes, type=pa.string())
    for name in ("text_signatures", "fact_signatures", "vectors"):
        value = getattr(items, name)
        if value is not None and accepted.num_rows:
            columns[name] = _fixed_rows(value)
    return pa.table(columns)
