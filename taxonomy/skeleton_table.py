"""Columnar skeletons to the Arrow table written to `skeletons/` (no per-row Python objects).

The `attributes` map is dictionary-encoded: keys index the taxonomy's attribute ids and values
index one dictionary of every attribute's value strings, so a million skeletons never
materialise a hundred million small strings. Parquet stores plain strings underneath; DuckDB
reads map(varchar, varchar) and pyarrow gives dictionary arrays that convert to the same values.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from schemas.records import Skeleton
from schemas.tables import SKELETONS
from taxonomy.draws import persona_id_for
from taxonomy.model import Taxonomy
from taxonomy.names import names_for_batch
from taxonomy.skeleton_batch import SkeletonBatch, domain_of

# (key index, rows that have it, value index per row or None): one attribute's piece of a list/map column.
_Piece = tuple[int, npt.NDArray[np.intp], npt.NDArray[np.int32] | None]


def _row_major(columns: list[_Piece], n: int) -> tuple[np.ndarray, ...]:
    """Offsets, key indices and value indices of a list/map column from attribute-major pieces.

    columns[i] = (key index, rows that have it in increasing order, value index per row or None).
    A counting sort: each row's entries land in taxonomy order, with no argsort over all entries.
    """
    per_row = np.zeros(n, dtype=np.int64)
    for _, rows, _ in columns:
        per_row[rows] += 1
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(per_row, out=offsets[1:])
    cursor = offsets[:-1].astype(np.int64)
    keys = np.empty(int(offsets[-1]), dtype=np.int32)
    values = np.empty(int(offsets[-1]), dtype=np.int32)
    for key, rows, value_index in columns:
        at = cursor[rows]
        keys[at] = key
        if value_index is not None:
            values[at] = value_index
        cursor[rows] += 1
    return offsets, keys, values


def batch_to_table(batch: SkeletonBatch, taxonomy: Taxonomy, redraws: dict[str, list[str]], shard: int) -> pa.Table:
    known = taxonomy.attributes()
    names = list(known)
    n = len(batch)
    strings: list[str] = []  # every attribute's value strings, one shared dictionary
    facts: list[_Piece] = []
    open_text: list[_Piece] = []
    for index, attr_id in enumerate(names):
        if attr_id in batch.codes:
            codes = batch.codes[attr_id]
            if codes.dtype.kind == "f":  # numeric: the distinct values present in this batch
                rows = np.flatnonzero(~np.isnan(codes))
                distinct, local = np.unique(codes[rows].astype(np.int64), return_inverse=True)
                domain = [str(v) for v in distinct.tolist()]
            else:
                rows = np.flatnonzero(codes >= 0)
                local, domain = codes[rows], domain_of(known[attr_id])
            if len(rows):
                facts.append((index, rows, (len(strings) + local).astype(np.int32)))
                strings += domain
        elif attr_id in batch.open_text:
            rows = np.flatnonzero(batch.open_text[attr_id])
            if len(rows):
                open_text.append((index, rows, None))
    key_names = pa.array(names, pa.string())
    offsets, keys, values = _row_major(facts, n)
    attributes = pa.MapArray.from_arrays(
        pa.array(offsets),
        pa.DictionaryArray.from_arrays(pa.array(keys), key_names),
        pa.DictionaryArray.from_arrays(pa.array(values), pa.array(strings, pa.string())),
    )
    open_offsets, open_keys, _ = _row_major(open_text, n)
    open_attributes = pa.ListArray.from_arrays(
        pa.array(open_offsets), pa.DictionaryArray.from_arrays(pa.array(open_keys), key_names).cast(pa.string())
    )
    ids = [persona_id_for(batch.seed, slot) for slot in batch.slots.tolist()]
    return pa.table(
        {
            "persona_id": pa.array(ids, pa.string()),
            "slot": pa.array(batch.slots, pa.int64()),
            "shard": pa.array(np.full(n, shard), pa.int64()),
            "stratum": stratum_column(batch),
            "name": pa.array(names_for_batch(batch, taxonomy), pa.string()),
            "attributes": attributes,
            "open_attributes": open_attributes,
            "redraws": pa.array([redraws.get(pid, []) for pid in ids] if redraws else [[]] * n, pa.list_(pa.string())),
        },
        schema=SKELETONS,
    )


# Columns worth min/max statistics in skeleton shards (slot ranges prune reads; the map does not).
SKELETON_STATISTICS = ["persona_id", "slot", "shard", "stratum"]


def stratum_column(batch: SkeletonBatch) -> pa.Array:
    """Each slot's cell label, dictionary-encoded by cell (labels are computed once per cell)."""
    distinct = list({id(cell): cell for cell in batch.cells}.values())
    position = {id(cell): i for i, cell in enumerate(distinct)}
    indices = np.fromiter((position[id(c)] for c in batch.cells), dtype=np.int32, count=len(batch.cells))
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array([c.label for c in distinct], pa.string()))


def skeleton_rows_of(table: pa.Table, persona_ids: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The rows of a skeletons table whose persona_id is in `persona_ids` (a revise round's slots), in
    table order."""
    return table.filter(pc.is_in(table.column("persona_id"), value_set=persona_ids))


def skeletons_of_table(table: pa.Table) -> list[Skeleton]:
    """Skeleton records from a skeletons shard's table (written by populace, so not validated again)."""
    columns = table.select([c for c in table.column_names if c != "attributes"]).to_pydict()
    names = columns.get("name") or [""] * table.num_rows
    opened = columns.get("open_attributes") or [None] * table.num_rows
    return [
        Skeleton.model_construct(
            persona_id=pid,
            slot=slot,
            stratum=stratum,
            name=name or "",
            attributes=attributes,
            open_attributes=open_attributes or [],
        )
        for pid, slot, stratum, name, attributes, open_attributes in zip(
            columns["persona_id"],
            columns["slot"],
            columns["stratum"],
            names,
            attribute_maps(table.column("attributes")),
            opened,
            strict=True,
        )
    ]


def _strings(array: pa.Array) -> list[str]:
    """A (possibly dictionary-encoded) string array as Python strings, decoding each distinct value once."""
    if pa.types.is_dictionary(array.type):
        distinct = np.asarray(array.dictionary.to_pylist(), dtype=object)
        decoded: list[str] = distinct[array.indices.to_numpy(zero_copy_only=False)].tolist()
        return decoded
    plain: list[str] = array.to_pylist()
    return plain


def attribute_maps(column: pa.ChunkedArray) -> list[dict[str, str]]:
    """The `attributes` map column as dicts; ~10x faster than to_pylist on its dictionary-encoded keys and values."""
    maps: list[dict[str, str]] = []
    for chunk in column.chunks:
        if chunk.null_count:
            return [dict(m) if m is not None else {} for m in column.to_pylist()]
        offsets = chunk.offsets.to_numpy().tolist()
        # keys/items are the whole child arrays, also for a slice; offsets index into them.
        first, last = offsets[0], offsets[-1]
        keys = _strings(chunk.keys.slice(first, last - first))
        values = _strings(chunk.items.slice(first, last - first))
        maps += [
            dict(zip(keys[start - first : end - first], values[start - first : end - first], strict=True))
            for start, end in itertools.pairwise(offsets)
        ]
    return maps
