import subprocess
import sys

import orjson
import pyarrow.parquet as pq

from tests.helpers.paths import REPO

BASE = (
    "Maria Lopez teaches third grade in a small town outside Tucson and spends her weekends "
    "restoring an old pickup truck with her brother while planning a trip to Oaxaca next spring."
)
OTHER = "Tom Becker drives a delivery van across Ohio, listens to baseball on the radio and coaches little league."


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cli.main", "dedup", *args], capture_output=True, text=True, cwd=REPO)


def test_dedup_command_on_nested_jsonl(tmp_path):
    rows = [
        {"key": "a", "record": {"persona": BASE}},
        {"key": "b", "record": {"persona": OTHER}},
        {"key": "c", "record": {"persona": BASE.replace("spring", "summer")}},
        {"key": "d", "record": {"persona": BASE.upper()}},
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    proc = run_cli(str(source), "--text-field", "record.persona", "--id-field", "key", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    clusters = {r["id"]: r for r in pq.read_table(tmp_path / "o" / "clusters.parquet").to_pylist()}
    assert list(pq.read_schema(tmp_path / "o" / "clusters.parquet").names) == [
        "id",
        "cluster_id",
        "kept",
        "duplicate_of",
        "layer",
        "similarity",
    ]
    assert clusters["a"]["kept"] and clusters["b"]["kept"]
    assert clusters["c"]["duplicate_of"] == "a" and clusters["d"]["duplicate_of"] == "a"
    assert clusters["d"]["layer"] == "exact"
    summary = orjson.loads((tmp_path / "o" / "summary.json").read_bytes())
    assert summary["records"] == 4 and summary["removed"] == 2
    assert set(summary["personahub_rates"]) == {"minhash_1gram_128perm_jaccard_0.9", "cosine_0.9"}


def test_dedup_command_names_a_missing_field(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps({"text": "x"}) + b"\n")
    proc = run_cli(str(source), "--text-field", "body", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "body" in proc.stderr and "in.jsonl:1" in proc.stderr
    assert not (tmp_path / "o").exists()
