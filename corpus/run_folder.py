"""Paths of a run folder, atomic writes, and the manifest."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq


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


def write_table_atomically(table: pa.Table, path: Path, statistics: bool | list[str] = True) -> Path:
    """A Parquet shard exists whole or not at all.

    `statistics`: the columns that get min/max statistics (all by default); skeleton shards skip
    them on the attribute map, where they cost more than the rest of the write and prune nothing.
    """
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=statistics)
    return path


def shard_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def catalog(self) -> Path:
        return self.root / "corpus.duckdb"

    def stage_shard(self, stage: str, shard: int) -> Path:
        return self.root / stage / shard_name(shard)

    def round_shard(self, stage: str, round_no: int, shard: int) -> Path:
        return self.root / stage / f"round-{round_no}" / shard_name(shard)

    def read_manifest(self) -> dict:
        return orjson.loads(self.manifest.read_bytes()) if self.manifest.is_file() else {}

    def write_manifest(self, manifest: dict) -> None:
        write_bytes_atomically(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS), self.manifest)
