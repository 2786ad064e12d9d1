"""A finished run published: manifest counts, catalog, card, report and export agree with the shards,
and `populace report` republishes the same account. The run is planted (no model): its slots go through
the real validators, settle step, writer and publish."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from corpus.catalog import query_run
from corpus.export import export_personas
from corpus.run_folder import RunFolder
from tests.helpers.configs import tiny_config
from tests.helpers.paths import REPO
from tests.helpers.planting import plant_run, publish_run

ACCEPT = [True, True, False, True]


def populace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> RunFolder:
    root = tmp_path_factory.mktemp("published") / "run"
    plant_run(root, tiny_config(population=len(ACCEPT), shard_size=2), accept=ACCEPT)
    publish_run(root)
    return RunFolder(root)


def test_the_manifest_counts_what_the_shards_hold(published: RunFolder) -> None:
    manifest = published.read_manifest()
    assert (manifest["requested"], manifest["produced"], manifest["rejected"]) == (4, 3, 1)
    assert manifest["rejected_by_reason"] == {"schema": 1}
    assert manifest["acceptance_rate"] == 0.75
    assert sum(s["produced"] for s in manifest["strata"].values()) == 3
    assert manifest["taxonomy"]["name"] == "core" and manifest["sampling"]["personas"] == 3
    assert query_run(published.root, "SELECT count(*) AS n FROM personas").to_pylist() == [{"n": 3}]
    assert query_run(published.root, "SELECT reason FROM rejects").to_pylist() == [{"reason": "schema"}]


def test_card_and_report_describe_the_run(published: RunFolder) -> None:
    card = (published.root / "README.md").read_text()
    assert "3 personas produced of 4 requested" in card and "`rejects` config" in card
    page = (published.root / "report" / "index.html").read_text()
    assert f"populace run {published.root.name}" in page
    assert "Narrative lengths" in page and "Failed checks per rule and round" in page
    assert page.count('class="persona"') == 3  # every kept persona is sampled (5 at most)


def test_export_writes_every_persona_in_slot_order(published: RunFolder, tmp_path) -> None:
    assert export_personas(published, "jsonl", tmp_path / "p.jsonl") == 3
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["slot"] for r in rows] == sorted(r["slot"] for r in rows) and isinstance(rows[0]["attributes"], dict)
    assert export_personas(published, "csv", tmp_path / "p.csv") == 3
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 4


def test_populace_report_republishes_the_same_account(published: RunFolder) -> None:
    before = published.read_manifest()
    (published.root / "report" / "index.html").unlink()
    proc = populace("report", str(published.root))
    assert proc.returncode == 0, proc.stderr
    after = published.read_manifest()
    assert (published.root / "report" / "index.html").is_file()
    assert {k: after[k] for k in ("produced", "rejected", "strata", "sampling")} == {
        k: before[k] for k in ("produced", "rejected", "strata", "sampling")
    }


def test_report_refuses_a_folder_that_is_not_a_finished_run(tmp_path) -> None:
    proc = populace("report", str(tmp_path))
    assert proc.returncode == 2 and "not a run folder" in proc.stderr
    unfinished = tmp_path / "unfinished"
    plant_run(unfinished, tiny_config(population=2))
    proc = populace("report", str(unfinished))
    assert proc.returncode == 2 and "has not finished" in proc.stderr and "rerun" in proc.stderr
    assert not (unfinished / "report").exists()


def test_the_narrative_length_histogram_counts_in_the_query_what_numpy_would() -> None:
    import duckdb
    import numpy as np

    from corpus.report import _length_histogram

    lengths = [37, 37, 40, 52, 90, 91, 120, 233, 233, 410]  # the longest lands in the last bin, as in numpy
    con = duckdb.connect()
    con.sql(
        "CREATE TABLE p AS SELECT repeat('x', n::INTEGER) AS narrative FROM unnest($lengths) AS t(n)",
        params={"lengths": lengths},
    )
    edges, counts = _length_histogram(con, "p")
    expected_counts, expected_edges = np.histogram(lengths, bins=20)
    assert np.allclose(edges, expected_edges) and counts == expected_counts.tolist()
    con.sql("CREATE TABLE none_kept AS SELECT * FROM p LIMIT 0")
    assert _length_histogram(con, "none_kept") == ([0.0, 1.0], [0])
