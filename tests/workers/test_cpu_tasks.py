"""CPU tasks: the same results as Ray tasks on a local Ray as in this process, with never more in flight than asked."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from workers.cpu_tasks import StoredTable, run_all, run_here


def double_column(table: pa.Table, label: str) -> tuple[pa.Table, str, int]:
    """A stage core as the build hands them out: an Arrow table in, a table out (and where it ran)."""
    return pa.table({"x": [2 * v for v in table.column("x").to_pylist()]}), label, os.getpid()


def jobs(count: int):
    return ((i, (pa.table({"x": [i, i + 1]}), f"job {i}")) for i in range(count))


def test_tasks_give_what_the_driver_computes_and_run_in_ray_workers(local_ray):
    here = {key: result for key, result, _ in run_all(double_column, jobs(20), parallel=False)}
    remote = {key: result for key, result, _ in run_all(double_column, jobs(20), in_flight=3)}
    assert set(remote) == set(range(20))
    for key in range(20):
        assert remote[key][0].equals(here[key][0]) and remote[key][1] == here[key][1] == f"job {key}"
    assert {pid for _, _, pid in here.values()} == {os.getpid()}
    assert os.getpid() not in {pid for _, _, pid in remote.values()}


def test_jobs_are_drawn_lazily(local_ray):
    drawn = []

    def counted(count: int):
        for key, args in jobs(count):
            drawn.append(key)
            yield key, args

    results = run_all(double_column, counted(10), in_flight=2)
    next(results)
    assert len(drawn) <= 3  # two in flight, then one more once the first is back
    assert len(list(results)) == 9


def test_run_here_times_the_core():
    (table, label, pid), seconds = run_here(double_column, pa.table({"x": [1]}), "one")
    assert table.column("x").to_pylist() == [2] and label == "one" and pid == os.getpid() and seconds >= 0


def doubled_rounds(skeletons: pa.Table, rounds: dict[int, pa.Table], round_no: int) -> tuple[list[int], list[int]]:
    return double_column(skeletons, "")[0].column("x").to_pylist(), rounds[round_no].column("x").to_pylist()


def test_a_task_given_shard_files_reads_them_before_its_core_runs(local_ray, tmp_path):
    """The driver sends a committed file's bytes (alone or in a dict of rounds); the core gets tables."""
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(pa.table({"x": [i, 10 * i]}), paths[-1])
    args = (StoredTable.of(paths[0]), {1: StoredTable.of(paths[1]), 2: StoredTable.of(paths[2])}, 2)
    assert run_here(doubled_rounds, *args)[0] == ([0, 0], [2, 20])
    ((_, remote, _),) = run_all(doubled_rounds, [("job", args)])
    assert remote == ([0, 0], [2, 20])
