"""The stage shape: an output is committed whole, once, and a rerun skips it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from foundation.atomic_files import (
    atomic_path,
    commit_once,
    encoded_table,
    remove_stale_temporaries,
    uncommitted,
    write_bytes_atomically,
    write_table_atomically,
)


def test_commit_once_computes_a_missing_output_and_skips_a_committed_one(tmp_path):
    calls = []

    def compute() -> pa.Table:
        calls.append(1)
        return pa.table({"x": [len(calls)]})

    out = tmp_path / "stage" / "part-00000.parquet"
    assert commit_once(out, compute) == out
    assert commit_once(out, compute) == out
    assert len(calls) == 1 and pq.read_table(out).column("x").to_pylist() == [1]


def test_a_failed_compute_leaves_nothing_behind(tmp_path):
    def broken() -> pa.Table:
        raise RuntimeError("the stage failed")

    out = tmp_path / "part-00000.parquet"
    with pytest.raises(RuntimeError):
        commit_once(out, broken)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_write_that_dies_midway_leaves_the_old_file_and_no_visible_temporary(tmp_path):
    path = write_bytes_atomically(b"old", tmp_path / "manifest.json")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_uncommitted_lists_the_keys_still_to_compute_and_stale_temporaries_go(tmp_path):
    write_bytes_atomically(b"done", tmp_path / "a")
    assert uncommitted({1: tmp_path / "a", 2: tmp_path / "b", 3: tmp_path / "c"}) == [2, 3]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".part-00001.parquet.x1.tmp").write_bytes(b"killed writer")
    assert remove_stale_temporaries(tmp_path) == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_raw_columns_are_written_uncompressed_and_read_back_whole(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    table = pa.table(
        {
            "persona_id": [f"p-{i}" for i in range(50)],
            "facts": [["a", "b"]] * 50,
            "vectors": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 8),
        }
    )
    path = write_table_atomically(table, tmp_path / "part-0.parquet", raw_columns=["vectors"])
    assert pq.read_table(path).equals(table)
    chunk = pq.ParquetFile(path).metadata.row_group(0)
    codecs = {chunk.column(i).path_in_schema: chunk.column(i).compression for i in range(chunk.num_columns)}
    assert codecs == {"persona_id": "ZSTD", "facts.list.element": "ZSTD", "vectors.list.element": "UNCOMPRESSED"}


@pytest.mark.parametrize(
    ("statistics", "raw_columns"), [(True, ()), (["persona_id"], ()), (True, ("vectors",))], ids=str
)
def test_a_shard_encoded_in_a_task_is_the_file_the_driver_would_write(tmp_path, statistics, raw_columns):
    """A CPU task returns its shard as Parquet bytes and the driver commits them: the same file, options and all."""
    rng = np.random.default_rng(1)
    table = pa.table(
        {
            "persona_id": [f"p-{i}" for i in range(40)],
            "slot": list(range(40)),
            "vectors": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=160).astype(np.float32)), 4),
        }
    )
    written = write_table_atomically(table, tmp_path / "written.parquet", statistics, raw_columns)
    committed = write_bytes_atomically(
        encoded_table(lambda n: table.slice(0, n), statistics, raw_columns, 40), tmp_path / "committed.parquet"
    )
    assert committed.read_bytes() == written.read_bytes()
    assert pq.read_table(committed).equals(table)
    chunk = pq.ParquetFile(committed).metadata.row_group(0)
    with_statistics = {chunk.column(i).path_in_schema for i in range(3) if chunk.column(i).is_stats_set}
    assert ("slot" in with_statistics) == (statistics is True)
