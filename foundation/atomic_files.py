"""Atomic file writes: a file exists whole or not at all, and a stage commits each output once."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

K = TypeVar("K")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside `path`; on success fsync it and rename it into place.

    Readers glob `part-*.parquet`, so they never see the temporary file, and a crash leaves
    either the old state or the whole new file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(root: Path) -> int:
    """Delete the hidden temporary files of writes a killed process never finished; return how many."""
    stale = [p for p in root.rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink()
    return len(stale)


def write_bytes_atomically(data: bytes, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_table_atomically(
    table: pa.Table, path: Path, statistics: bool | list[str] = True, raw_columns: Collection[str] = ()
) -> Path:
    """A Parquet shard exists whole or not at all.

    `statistics`: the columns that get min/max statistics (all by default); skeleton shards skip
    them on the attribute map, where they cost more than the rest of the write and prune nothing.
    `raw_columns`: top-level columns of random numbers (hashes, vectors) written without compression,
    dictionary or statistics, none of which shrinks them: a dedup features shard writes 7x faster.
    """
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **parquet_options(table.schema, statistics, raw_columns))
    return path


def parquet_bytes(table: pa.Table, statistics: bool | list[str] = True, raw_columns: Collection[str] = ()) -> bytes:
    """The Parquet file write_table_atomically would write, in memory: a task encodes its shard where
    it ran (in parallel, and compressed: far less to send back than the table) and the driver only
    commits it with write_bytes_atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options(table.schema, statistics, raw_columns))
    encoded: bytes = sink.getvalue().to_pybytes()
    return encoded


def encoded_table(
    core: Callable[..., pa.Table], statistics: bool | list[str], raw_columns: Collection[str], *args: Any
) -> bytes:
    """core(*args) as Parquet bytes (bind the first three with functools.partial to make a task's core)."""
    return parquet_bytes(core(*args), statistics, raw_columns)


def parquet_options(schema: pa.Schema, statistics: bool | list[str], raw_columns: Collection[str]) -> dict[str, Any]:
    options: dict[str, Any] = {"compression": "zstd", "write_statistics": statistics}
    if raw_columns:
        leaves = leaf_columns(schema)
        packed = [leaf for name in schema.names if name not in raw_columns for leaf in leaves[name]]
        options["compression"] = {
            leaf: "none" if name in raw_columns else "zstd" for name in schema.names for leaf in leaves[name]
        }
        options["use_dictionary"] = packed
        if statistics is True:
            options["write_statistics"] = packed
    return options


@functools.lru_cache(maxsize=32)
def leaf_columns(schema: pa.Schema) -> dict[str, list[str]]:
    """Top-level column -> its Parquet leaf column paths ('vectors' -> ['vectors.list.element']),
    which is how per-column write options name nested columns."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    parquet_schema = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    leaves: dict[str, list[str]] = {name: [] for name in schema.names}
    for index in range(len(parquet_schema)):
        path = parquet_schema.column(index).path
        leaves[path.split(".", 1)[0]].append(path)
    return leaves


def commit_once(path: Path, compute: Callable[[], pa.Table], statistics: bool | list[str] = True) -> Path:
    """The stage shape: skip when `path` is committed, else compute its table and commit it atomically.

    A rerun after a crash resumes from the outputs on disk: a committed shard is never recomputed.
    """
    if path.is_file():
        return path
    return write_table_atomically(compute(), path, statistics)


def uncommitted(outputs: Mapping[K, Path]) -> list[K]:
    """The keys (shards, say) whose output is not committed yet: what a batched stage still has to compute."""
    return [key for key, path in outputs.items() if not path.is_file()]
