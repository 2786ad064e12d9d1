import os
import shutil
import stat
import subprocess
import sys

import duckdb
import pyarrow as pa
import pytest

from corpus.catalog import build_catalog, catalog_root, query_run
from corpus.run_folder import RunFolder
from foundation.atomic_files import write_table_atomically
from schemas.errors import PopulaceError, UserInputError
from schemas.table_checks import REJECTS_CHECK, check_table
from schemas.tables import PERSONAS, REJECTS


def test_atomic_write_leaves_only_the_final_file(tmp_path):
    path = tmp_path / "stage" / "part-00000.parquet"
    write_table_atomically(pa.table({"a": [1, 2]}), path)
    assert [p.name for p in path.parent.iterdir()] == ["part-00000.parquet"]


@pytest.mark.parametrize("folder", ["run", "o'brien's run"])  # quotes in the path reach DuckDB's settings
def test_catalog_views_answer_and_refuse_writes(tmp_path, folder):
    tmp_path = tmp_path / folder
    run = RunFolder(tmp_path)
    facts = [("demographics.age", "40"), ("work.occupation", "nurse")]
    row = {"persona_id": "p-1", "slot": 0, "stratum": "all", "name": "Ana Ruiz", "narrative": "x", "attributes": facts}
    personas = pa.Table.from_pylist([row], schema=PERSONAS)
    write_table_atomically(personas, run.stage_shard("personas", 0))
    write_table_atomically(REJECTS.empty_table(), run.stage_shard("rejects", 0))
    build_catalog(run)
    assert query_run(tmp_path, "select count(*) as n from personas").to_pylist() == [{"n": 1}]
    assert query_run(tmp_path, "select count(*) as n from rejects").to_pylist() == [{"n": 0}]
    rows = query_run(tmp_path, "select attribute, value from attributes order by attribute").to_pylist()
    assert rows == [{"attribute": k, "value": v} for k, v in facts]
    with pytest.raises(UserInputError):
        query_run(tmp_path, "create table t as select 1")
    con = duckdb.connect(str(run.catalog), read_only=True)
    assert {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()} == {
        "personas",
        "rejects",
        "attributes",
    }
    con.close()


def one_persona_run(root) -> RunFolder:
    run = RunFolder(root)
    row = {
        "persona_id": "p-1",
        "slot": 0,
        "stratum": "all",
        "name": "Ana Ruiz",
        "narrative": "x",
        "attributes": [("demographics.age", "40")],
    }
    write_table_atomically(pa.Table.from_pylist([row], schema=PERSONAS), run.stage_shard("personas", 0))
    write_table_atomically(REJECTS.empty_table(), run.stage_shard("rejects", 0))
    build_catalog(run)
    return run


def count_with_plain_duckdb(catalog, cwd) -> int:
    """What a user's own DuckDB sees, opened from some other working directory."""
    here = os.getcwd()
    os.chdir(cwd)
    try:
        con = duckdb.connect(str(catalog), read_only=True)
        try:
            return con.execute("select count(*) from personas").fetchone()[0]
        finally:
            con.close()
    finally:
        os.chdir(here)


def test_the_catalog_opens_from_anywhere_and_follows_the_run_folder_when_it_moves(tmp_path):
    run = one_persona_run(tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert count_with_plain_duckdb(run.catalog, elsewhere) == 1

    moved = tmp_path / "copie d'été ünïcode run"  # quote, spaces, non-ASCII
    shutil.move(run.root, moved)
    assert query_run(moved, "select count(*) as n from personas").to_pylist() == [{"n": 1}]  # rewrites the views
    assert count_with_plain_duckdb(moved / "corpus.duckdb", elsewhere) == 1

    again = tmp_path / "moved again"
    shutil.move(moved, again)
    (again / "manifest.json").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "cli.main", "catalog", str(again)], capture_output=True, text=True)
    assert proc.returncode == 0 and str(again.resolve()) in proc.stdout, proc.stderr[-1500:]
    assert catalog_root(again / "corpus.duckdb") == str(again.resolve())  # `populace catalog`, no query needed
    assert count_with_plain_duckdb(again / "corpus.duckdb", elsewhere) == 1
    moved = again

    copy = tmp_path / "read-only copy"
    shutil.copytree(moved, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:  # a copy populace cannot rewrite is still queried, from views built in memory
        assert query_run(copy, "select name from personas").to_pylist() == [{"name": "Ana Ruiz"}]
        rewritten = catalog_root(copy / "corpus.duckdb") == str(copy.resolve())
        assert rewritten == (os.geteuid() == 0)  # root writes through the read-only bits; anyone else may not
    finally:
        for path in [copy, *copy.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        "select * from read_parquet('{root}/../outside/part-0.parquet')",
        "select * from read_parquet('personas/../../outside/part-0.parquet')",
        "copy (select * from personas) to '{root}/stolen.csv'",
        "attach '{root}/../other.duckdb' as other",
        "set enable_external_access = true",
        "install httpfs",
        "select 1; select 2",
        "pragma database_list",
        "create table t as select 1",
        "drop view personas",
    ],
)
def test_query_cannot_write_attach_or_read_outside_the_run_folder(tmp_path, sql):
    root = tmp_path / "run"
    run = RunFolder(root)
    row = {
        "persona_id": "p-1",
        "slot": 0,
        "stratum": "all",
        "name": "Ana Ruiz",
        "narrative": "x",
        "attributes": [("demographics.age", "40")],
    }
    write_table_atomically(pa.Table.from_pylist([row], schema=PERSONAS), run.stage_shard("personas", 0))
    write_table_atomically(REJECTS.empty_table(), run.stage_shard("rejects", 0))
    write_table_atomically(pa.table({"secret": [1]}), tmp_path / "outside" / "part-0.parquet")
    build_catalog(run)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(UserInputError) as err:
        query_run(root, sql.format(root=root))
    assert err.value.field == "sql" and err.value.fix
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    assert query_run(root, "select count(*) as n from personas").to_pylist() == [{"n": 1}]


def test_query_on_a_folder_without_catalog_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match=r"corpus\.duckdb"):
        query_run(tmp_path, "select 1")


def test_rejects_contract_catches_bad_rows():
    bad = pa.table(
        {
            "persona_id": ["p-1", "p-1"],
            "slot": [0, 1],
            "stage": ["dedup", "nowhere"],
            "reason": ["x", ""],
            "detail": [None, None],
            "round": [0, 0],
            "run_id": ["r", "r"],
        }
    )
    with pytest.raises(PopulaceError, match="rejects"):
        check_table(bad, REJECTS_CHECK, "rejects shard 0")


def test_dataset_card_declares_the_rejects_config_only_when_there_are_rejects():
    from corpus.dataset_card import card_header, dataset_card

    def configs(rejected: int) -> list[str]:
        return [
            c["config_name"]
            for c in card_header({"run_id": "r", "produced": 3, "rejected": rejected}, "cc-by-4.0")["configs"]
        ]

    assert configs(2) == ["personas", "rejects"]
    assert configs(0) == ["personas"]  # `datasets` cannot load a config whose files hold no rows
    card = dataset_card({"run_id": "r", "produced": 3, "rejected": 0})
    assert "no slot was rejected, so the card declares no `rejects` config" in card
