"""`populace sample` and `populace taxonomy ...` through the installed console script."""

import json
import subprocess
import sys

import duckdb
import yaml

from tests.helpers.paths import REPO

POPULACE = [sys.executable, "-m", "cli.main"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*POPULACE, *args], capture_output=True, text=True, cwd=REPO)


def test_sample_writes_skeletons_plan_and_metrics_without_an_llm(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "sample",
                "population": 5,
                "seed": 3,
                "deep_attributes": 20,
                "quotas": {"preset": "us_adults", "variables": ["demographics.age_band", "demographics.sex"]},
            }
        )
    )
    out = tmp_path / "out"
    result = run("sample", "--config", str(config), "--out", str(out), "--n", "3000")
    assert result.returncode == 0, result.stderr
    plan = json.loads((out / "plan.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert plan["population"] == 3000 and sum(c["count"] for c in plan["cells"]) == 3000
    assert metrics["personas"] == 3000 and metrics["joint"]["count_mismatches"] == 0
    assert metrics["preset_fit"]["demographics.age_band x demographics.sex"]["tvd"] < 0.01
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT persona_id, stratum, attributes['demographics.age'] AS age, "
        f"cardinality(attributes) AS n FROM read_parquet('{out}/skeletons/*.parquet')"
    ).fetchall()
    assert len(rows) == 3000 == len({r[0] for r in rows})
    assert all(r[2] is not None and 18 <= int(r[2]) <= 90 for r in rows)
    assert "Sampling: 3,000 personas" in result.stdout
    again = run("sample", "--config", str(config), "--out", str(out))
    assert again.returncode == 2 and "already holds skeletons" in again.stderr


def test_taxonomy_commands(tmp_path):
    stats = run("taxonomy", "stats", "seed:core", "--json")
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert data["roots"] >= 12 and data["leaves"] >= 400 and data["share_with_priors"] >= 0.6
    assert run("taxonomy", "validate", "seed:core").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nversion: '1'\ncategories: []\n")
    refused = run("taxonomy", "validate", str(bad))
    assert refused.returncode == 2 and "bad.yaml" in refused.stderr and "is empty" in refused.stderr
    schema = json.loads(run("taxonomy", "schema").stdout)
    assert "Attribute" in schema["$defs"]
    diff = json.loads(run("taxonomy", "diff", "seed:core", "seed:core", "--json").stdout)
    assert diff["counts"]["unchanged"] == data["leaves"] and diff["counts"]["added"] == 0


def test_sample_in_worker_processes_writes_the_same_files_as_one_process(tmp_path):
    import pyarrow.parquet as pq

    from corpus.sample_folder import write_sample
    from schemas.config import RunConfig

    cfg = RunConfig.model_validate(
        {
            "name": "parallel",
            "population": 2_500,
            "seed": 8,
            "deep_attributes": 12,
            "quotas": {"preset": "us_adults", "variables": ["demographics.age_band", "demographics.region"]},
        }
    )
    one = write_sample(cfg, tmp_path / "one", chunk_rows=600, workers=1)
    two = write_sample(cfg, tmp_path / "two", chunk_rows=600, workers=2)
    assert one == two
    parts = sorted(p.name for p in (tmp_path / "one" / "skeletons").iterdir())
    assert parts == sorted(p.name for p in (tmp_path / "two" / "skeletons").iterdir()) and len(parts) == 5
    for name in parts:
        a = pq.read_table(tmp_path / "one" / "skeletons" / name)
        b = pq.read_table(tmp_path / "two" / "skeletons" / name)
        assert a.to_pylist() == b.to_pylist()
    assert (tmp_path / "one" / "plan.json").read_bytes() == (tmp_path / "two" / "plan.json").read_bytes()
