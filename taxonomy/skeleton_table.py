"""Columnar skeletons to the Arrow table written to `skeletons/` (no per-row Python objects)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from schemas.tables import SKELETONS
from taxonomy.model import Taxonomy
from taxonomy.sampling import SkeletonBatch, persona_id_for, value_strings


def _row_major(rows: list[np.ndarray], keys: list[int], values: list[pa.Array], names: list[str],
               n: int) -> tuple[np.ndarray, pa.Array, pa.Array | None]:
    """Offsets, keys and values of a list/map column, from attribute-major pieces (rows[i] are
    the rows that have names[keys[i]]), reordered row-major with taxonomy order inside a row."""
    if not rows:
        return np.zeros(n + 1, dtype=np.int32), pa.array([], pa.string()), pa.array([], pa.string())
    all_rows = np.concatenate(rows)
    key_index = np.concatenate([np.full(len(r), k, dtype=np.int32) for r, k in zip(rows, keys, strict=True)])
    order = np.argsort(all_rows, kind="stable")  # stable: taxonomy order within each row
    offsets = np.searchsorted(all_rows[order], np.arange(n + 1)).astype(np.int32)
    key_array = pa.DictionaryArray.from_arrays(pa.array(key_index[order]), pa.array(names)).cast(pa.string())
    value_array = pa.concat_arrays(values).take(pa.array(order)) if values else None
    return offsets, key_array, value_array


def batch_to_table(batch: SkeletonBatch, taxonomy: Taxonomy, redraws: dict[str, list[str]], shard: int) -> pa.Table:
    known = taxonomy.attributes()
    names = list(known)
    n = len(batch)
    fact_rows, fact_keys, fact_values = [], [], []
    open_rows, open_keys = [], []
    for index, attr_id in enumerate(names):
        if attr_id in batch.codes:
            codes = batch.codes[attr_id]
            present = ~np.isnan(codes) if codes.dtype.kind == "f" else codes >= 0
            rows = np.flatnonzero(present)
            if len(rows):
                fact_rows.append(rows)
                fact_keys.append(index)
                fact_values.append(value_strings(known[attr_id], codes[rows]))
        elif attr_id in batch.open_text:
            rows = np.flatnonzero(batch.open_text[attr_id])
            if len(rows):
                open_rows.append(rows)
                open_keys.append(index)
    offsets, keys, items = _row_major(fact_rows, fact_keys, fact_values, names, n)
    attributes = pa.MapArray.from_arrays(pa.array(offsets), keys, items)
    open_offsets, open_names, _ = _row_major(open_rows, open_keys, [], names, n)
    open_attributes = pa.ListArray.from_arrays(pa.array(open_offsets), open_names)
    ids = [persona_id_for(batch.seed, slot) for slot in batch.slots.tolist()]
    labels = {id(c): c.label for c in batch.cells}
    return pa.table({
        "persona_id": pa.array(ids, pa.string()),
        "slot": pa.array(batch.slots, pa.int64()),
        "shard": pa.array(np.full(n, shard), pa.int64()),
        "stratum": pa.array([labels[id(c)] for c in batch.cells], pa.string()),
        "attributes": attributes,
        "open_attributes": open_attributes,
        "redraws": pa.array([redraws.get(pid, []) for pid in ids], pa.list_(pa.string())),
    }, schema=SKELETONS)
