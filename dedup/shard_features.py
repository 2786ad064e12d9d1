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
from dedup.lazy_rows import ArrowRows
from schemas.config import DedupConfig, EmbedderConfig

# What keep-best orders by (fewest warnings, fewest rounds, lowest slot), beside the features.
RANK_COLUMNS = ("warnings", "rounds", "slot")
# Hashes and vectors: written uncompressed (write_table_atomically's raw_columns).
RANDOM_COLUMNS = ("text_signatures", "fact_signatures", "vectors")


@functools.cache
def _embedder(cfg_json: str) -> Embedder:
    return create_embedder(EmbedderConfig.model_validate_json(cfg_json))


def _fixed_rows(matrix: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def _matrix(column: pa.ChunkedArray, dtype: type, order: np.ndarray | None = None) -> np.ndarray | None:
    """The fixed-size-list column as an (n, width) array, its rows in `order` when given."""
    if column.null_count == len(column):
        return None
    width = column.type.list_size
    # Per chunk without copying (flatten honours slices), then one concatenation.
    parts: list[np.ndarray] = [
        np.asarray(c.flatten().to_numpy(zero_copy_only=False), dtype=dtype) for c in column.chunks
    ]
    matrix = (np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)).reshape(-1, width)
    return matrix if order is None else matrix[order]


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


def items_of_features(features: pa.Table, best_first: bool = True) -> DedupItems:
    """DedupItems from feature shards; best first (keep-best order) or in the table's order.

    The order is applied to the ids and the numeric arrays; texts and fact sets stay in the table,
    read through it row by row (taking a whole corpus's rows in a new order copied every column)."""
    order = None
    if best_first and features.num_rows:
        order = pc.sort_indices(features, [(c, "ascending") for c in RANK_COLUMNS]).to_numpy()
    names = features.column_names

    def strings(name: str) -> list[str]:
        values: list[str] = features.column(name).to_pylist()
        return values if order is None else [values[i] for i in order]

    return DedupItems(
        ids=strings("persona_id"),
        texts=ArrowRows(features.column("narrative"), str, order),
        ranks=[float(i) for i in range(features.num_rows)],
        facts=ArrowRows(features.column("facts"), set, order),
        text_signatures=_matrix(features.column("text_signatures"), np.uint32, order)
        if "text_signatures" in names
        else None,
        fact_signatures=_matrix(features.column("fact_signatures"), np.uint32, order)
        if "fact_signatures" in names
        else None,
        vectors=_matrix(features.column("vectors"), np.float32, order) if "vectors" in names else None,
        text_hashes=strings("text_hash") if "text_hash" in names else None,
    )
