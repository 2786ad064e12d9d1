"""End to end on the real stack: Prefect harness, local Ray, llama.cpp, Parquet, DuckDB."""

import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from corpus.catalog import query_run
from flows.build import build_corpus
from taxonomy.sampling import persona_id_for
from tests.conftest import REPO, tiny_config

pytestmark = pytest.mark.llm

LINEAGE = ["run_id", "taxonomy_name", "taxonomy_version", "taxonomy_hash", "seed", "backend", "model",
           "prompt_template_hash", "verdict_summary", "rounds", "duplicate_cluster_id", "created_at"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, local_ray):
    cfg = tiny_config()
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run_dir = build_corpus(cfg, str(out))
    return cfg, out, run_dir


def shard_files(root):
    return {p.relative_to(root): p.stat().st_mtime_ns for p in root.rglob("part-*.parquet")}


def test_every_slot_is_a_persona_or_a_reject(built):
    cfg, out, run_dir = built
    assert run_dir == str(out)
    personas = query_run(out, "select persona_id from personas").column("persona_id").to_pylist()
    rejects = query_run(out, "select persona_id, stage, reason from rejects").to_pylist()
    ids = personas + [r["persona_id"] for r in rejects]
    assert len(ids) == len(set(ids)) == cfg.population
    assert set(ids) == {persona_id_for(cfg.seed, slot) for slot in range(cfg.population)}
    assert all(r["stage"] in ("propose", "validate", "dedup") and r["reason"] for r in rejects)
    manifest = __import__("orjson").loads((out / "manifest.json").read_bytes())
    assert manifest["requested"] == cfg.population
    assert manifest["produced"] + manifest["rejected"] == cfg.population
    assert manifest["fingerprint"] == cfg.fingerprint()
    assert set(manifest["stages"]) == {"sample", "propose:round-0", "validate:round-0", "propose:round-1",
                                       "validate:round-1", "settle", "dedup", "write"}


def test_lineage_is_filled_and_facts_are_copied(built):
    cfg, out, _ = built
    table = query_run(out, "select * from personas")
    for column in LINEAGE:
        assert table.column(column).null_count == 0, column
    for row in table.to_pylist():
        assert row["seed"] == cfg.seed and row["model"] == cfg.backend.model
        facts = dict(row["attributes"])
        assert facts["demographics.gender"] in ("woman", "man") and "demographics.age" in facts
    counts = query_run(out, "select count(distinct persona_id) as p, count(*) as n from attributes").to_pylist()[0]
    assert counts["p"] == table.num_rows and counts["n"] >= 20 * table.num_rows


def test_rerun_resumes_without_regenerating(built):
    cfg, out, _ = built
    before = shard_files(out)
    ids_before = sorted(query_run(out, "select persona_id from personas union all select persona_id from rejects")
                        .column("persona_id").to_pylist())
    build_corpus(cfg, str(out))
    assert shard_files(out) == before
    ids_after = sorted(query_run(out, "select persona_id from personas union all select persona_id from rejects")
                       .column("persona_id").to_pylist())
    assert ids_after == ids_before


def test_run_folder_layout_and_no_temp_files(built):
    _, out, _ = built
    for stage in ("skeletons", "settled", "personas", "rejects"):
        assert sorted(p.name for p in (out / stage).iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert (out / "config.yaml").is_file() and (out / "corpus.duckdb").is_file()
    assert not [p for p in out.rglob(".*.tmp")]
    verdicts = pq.read_table(out / "verdicts" / "round-0" / "part-00000.parquet")
    assert set(verdicts.column("check").to_pylist()) >= {"schema"}


def test_cli_query_formats(built):
    _, out, _ = built
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "query", str(out),
                           "select count(*) as n from personas", "--format", "csv"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "n"
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "query", str(out), "drop view personas"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2


def test_preview_prints_and_writes_nothing(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(tiny_config(output_dir=str(tmp_path / "runs")).to_yaml())
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "preview", "--config", str(config), "--n", "1"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert persona_id_for(11, 0) in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
