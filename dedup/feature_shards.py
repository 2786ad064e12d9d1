"""A corpus's dedup features where they lie: one Parquet file per shard, read a column at a time.

Only the ids and the keep-best ranks are held in memory (tens of bytes per persona). Texts, fact
sets, hashes, signatures and vectors stay in their files: each dedup layer passes over the column
it needs shard by shard (`blocks`), and reads texts and fact sets back only for the candidate pairs
it verifies (`rows_at`). A million personas' features are ~4 GB in memory; this way the dedup stage
holds its per-row keys, the semantic index and one shard at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.detect import DedupItems
from dedup.lazy_rows import LazyRows

# What keep-best orders by (fewest warnings, fewest rounds, lowest slot), beside the features.
RANK_COLUMNS = ("warnings", "rounds", "slot")
# Matrix columns and the dtype each is read as.
MATRIX_COLUMNS = {"text_signatures": np.uint32, "fact_signatures": np.uint32, "vectors": np.float32}


def matrix_of(column: pa.ChunkedArray | pa.Array, dtype: type) -> np.ndarray:
    """A fixed-size-list column as an (n, width) array."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    width = column.type.list_size
    # Per chunk without copying (flatten honours slices), then one concatenation.
    parts: list[np.ndarray] = [np.asarray(c.flatten().to_numpy(zero_copy_only=False), dtype=dtype) for c in chunks]
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)).reshape(-1, width)


class FeatureShards:
    """The feature shards of a corpus, in the order given (a build's shards in slot order)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        keys = [pq.ParquetFile(p).read(columns=["persona_id", *RANK_COLUMNS]) for p in paths]
        self.offsets = np.cumsum([0, *(t.num_rows for t in keys)])
        self.keys = pa.concat_tables(keys) if keys else pa.table({"persona_id": pa.array([], pa.string())})
        # A shard with no accepted persona has no feature columns: only shards with rows say which exist.
        self.columns = {
            name for p, t in zip(paths, keys, strict=True) if t.num_rows for name in pq.read_schema(p).names
        }

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def ids(self) -> pa.ChunkedArray:
        return self.keys.column("persona_id")

    def ordered(self, mask: pa.ChunkedArray | None = None, by: tuple[str, ...] = RANK_COLUMNS) -> np.ndarray:
        """Positions of the rows in `mask` (all rows by default), sorted by `by` (keep-best order)."""
        positions = np.arange(len(self)) if mask is None else np.flatnonzero(mask.to_numpy(zero_copy_only=False))
        if not len(positions):
            return positions
        chosen = self.keys.take(pa.array(positions))
        ordered: np.ndarray = positions[pc.sort_indices(chosen, [(c, "ascending") for c in by]).to_numpy()]
        return ordered

    def items(self, order: np.ndarray) -> DedupItems:
        """The rows at `order` as DedupItems (ranks follow the order), every feature column lazy."""

        place = placement(order, len(self))

        def lazy(name: str, convert: Callable[[Any], Any] | None = None) -> ShardColumn | None:
            return ShardColumn(self, name, order, place, convert) if name in self.columns else None

        return DedupItems(
            ids=self.ids().take(pa.array(order, type=pa.int64())).to_pylist(),
            texts=ShardColumn(self, "narrative", order, place, str),
            ranks=[float(i) for i in range(len(order))],
            facts=lazy("facts", set),
            text_signatures=lazy("text_signatures"),
            fact_signatures=lazy("fact_signatures"),
            vectors=lazy("vectors"),
            text_hashes=lazy("text_hash", str),
        )

    def read(self, shard: int, name: str) -> pa.ChunkedArray:
        # ParquetFile.read, not read_table: a dataset per call costs milliseconds, and dedup reads
        # a column of every shard several times (2-6x faster per read here).
        return pq.ParquetFile(self.paths[shard]).read(columns=[name]).column(name)

    def width(self, name: str) -> int:
        """Values per row of a matrix column."""
        shard = next(s for s in range(len(self.paths)) if self.offsets[s + 1] > self.offsets[s])
        width: int = pq.read_schema(self.paths[shard]).field(name).type.list_size
        return width


def placement(order: np.ndarray, rows: int) -> np.ndarray:
    """For each of `rows` shard rows, its position in `order` (-1 where it is not in it)."""
    place = np.full(rows, -1, dtype=np.int64)
    place[order] = np.arange(len(order))
    return place


class ShardColumn(LazyRows[Any]):
    """One feature column of the shards, its rows presented in `order` (positions in the shards'
    concatenation). A matrix column gives numpy rows and blocks; any other gives `convert`ed values."""

    def __init__(
        self,
        shards: FeatureShards,
        name: str,
        order: np.ndarray,
        place: np.ndarray,
        convert: Callable[[Any], Any] | None = None,
    ) -> None:
        self.shards, self.name, self.convert = shards, name, convert
        self.order = np.asarray(order, dtype=np.int64)
        self.place = place  # placement(order): shared by the columns of one selection
        self.dtype = MATRIX_COLUMNS.get(name)

    def __len__(self) -> int:
        return len(self.order)

    def _values(self, column: pa.ChunkedArray | pa.Array) -> Any:
        if self.dtype is not None:
            return matrix_of(column, self.dtype)
        convert = self.convert or (lambda value: value)
        return [convert(value) for value in column.to_pylist()]

    def blocks(self, start: int = 0) -> Iterator[tuple[np.ndarray, Any]]:
        """One block per shard that holds rows of this column at positions from `start` on, in shard order."""
        for shard in range(len(self.shards.paths)):
            first, stop = self.shards.offsets[shard], self.shards.offsets[shard + 1]
            positions = self.place[first:stop]
            here = np.flatnonzero(positions >= start)  # -1: not in this column's order
            if not len(here):
                continue
            column = self.shards.read(shard, self.name)
            if len(here) < stop - first:
                column = column.take(pa.array(here))
            yield positions[here], self._values(column)

    def rows_at(self, positions: np.ndarray) -> Any:
        """The rows at `positions`, each shard holding some of them read once."""
        rows = self.order[np.asarray(positions, dtype=np.int64)]
        shard_of = np.searchsorted(self.shards.offsets, rows, side="right") - 1
        by_shard = np.argsort(shard_of, kind="stable")
        bounds = np.flatnonzero(np.diff(shard_of[by_shard])) + 1
        out: Any = [None] * len(rows)
        if self.dtype is not None:
            out = np.empty((len(rows), self.shards.width(self.name)), self.dtype)
        for slots in np.split(by_shard, bounds) if len(rows) else []:
            shard = int(shard_of[slots[0]])
            local = rows[slots] - self.shards.offsets[shard]
            values = self._values(self.shards.read(shard, self.name).take(pa.array(local)))
            if self.dtype is not None:
                out[slots] = values
            else:
                for slot, value in zip(slots, values, strict=True):
                    out[slot] = value
        return out

    def _row(self, index: int) -> Any:
        return self.rows_at(np.array([index]))[0]
