"""End to end on the real stack: Prefect harness, local Ray, llama.cpp, Parquet, DuckDB."""

import json
import subprocess
import sys

import orjson
import pyarrow.parquet as pq
import pytest

from corpus.catalog import query_run
from flows.build import build_corpus
from schemas.config import BackendConfig
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
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    # Backfill waves add slots after the first N: every slot used is a persona or a reject.
    assert len(ids) == len(set(ids)) == manifest["slots"] >= cfg.population
    assert set(ids) == {persona_id_for(cfg.seed, slot) for slot in range(manifest["slots"])}
    assert all(r["stage"] in ("propose", "validate", "dedup") and r["reason"] for r in rejects)
    assert manifest["requested"] == cfg.population
    assert manifest["produced"] == cfg.population - sum(manifest["short_by_stratum"].values())
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"]
    assert manifest["fingerprint"] == cfg.fingerprint()
    assert {s: v["requested"] for s, v in manifest["strata"].items()} == {"gender=man": 2, "gender=woman": 1}
    assert sum(v["produced"] for v in manifest["strata"].values()) == manifest["produced"]
    schema_rows = [r for r in manifest["rule_violations"] if r["check"] == "schema" and r["round"] == 0]
    assert schema_rows and schema_rows[0]["checked"] == manifest["slots"]  # every slot is proposed in round 0
    assert 0 <= manifest["acceptance_rate"] <= 1
    assert {"sample:wave-0", "propose:wave-0:round-0", "propose:wave-0:round-1", "validate:wave-0:round-1",
            "settle:wave-0", "dedup:wave-0", "write"} <= set(manifest["stages"])


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
    shards = orjson.loads((out / "manifest.json").read_bytes())["shards"]
    for stage in ("skeletons", "settled", "personas", "rejects"):
        assert sorted(p.name for p in (out / stage).iterdir()) == [f"part-{i:05d}.parquet" for i in range(shards)]
    assert (out / "config.yaml").is_file() and (out / "corpus.duckdb").is_file()
    assert not [p for p in out.rglob(".*.tmp")]
    verdicts = pq.read_table(out / "verdicts" / "round-0" / "part-00000.parquet")
    assert set(verdicts.column("check").to_pylist()) >= {"schema"}


def test_dedup_against_an_earlier_run_removes_repeats_and_backfill_restores_quotas(built, tmp_path):
    """Same config and seed as the first run decode the same prose: every persona the first run
    kept is a duplicate here, and backfill waves must refill the strata with new slots."""
    _, first_out, _ = built
    first_ids = set(query_run(first_out, "select persona_id from personas").column("persona_id").to_pylist())
    cfg = tiny_config(name="tiny-again", against=[str(first_out)], max_backfill_waves=4)
    out = tmp_path / "again"
    build_corpus(cfg, str(out))
    dupes = query_run(out, "select persona_id, duplicate_of, detail from rejects where stage = 'dedup'").to_pylist()
    assert {d["duplicate_of"] for d in dupes} == {f"{first_out.name}:{pid}" for pid in first_ids}
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["backfilled"] > 0 and manifest["short_by_stratum"] == {}
    assert manifest["backfill_stopped_by"] == "quotas_met" and manifest["tokens_spent"] > 0
    counts = query_run(out, "select stratum, count(*) as n from personas group by 1").to_pylist()
    # 3 slots at 50/50: largest remainder gives the tie's extra slot to the first cell.
    assert {r["stratum"]: r["n"] for r in counts} == {"gender=man": 2, "gender=woman": 1}
    slots = query_run(out, "select min(slot) as lo from personas").to_pylist()[0]["lo"]
    assert slots >= cfg.population  # every kept persona came from a backfill slot
    assert (out / "dedup" / "index" / "meta.json").is_file()


def test_token_budget_stops_backfill_and_the_manifest_says_so(built, tmp_path):
    """Every persona of wave 0 duplicates the first run; a 1-token budget allows no backfill wave."""
    _, first_out, _ = built
    cfg = tiny_config(name="tiny-budget", against=[str(first_out)], max_backfill_waves=4, max_backfill_tokens=1)
    out = tmp_path / "budget"
    build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["backfill_stopped_by"] == "token_budget" and manifest["backfilled"] == 0
    assert manifest["tokens_spent"] >= 1 and manifest["produced"] == 0
    assert sum(manifest["short_by_stratum"].values()) == cfg.population
    assert manifest["rejected"] == manifest["slots"] == cfg.population  # nothing lost: all are rejects
    assert {s["requested"] for s in manifest["strata"].values()} == {1, 2}


def test_evaluate_beside_a_reference_corpus(built, tmp_path):
    """`populace evaluate` on a finished run and a small reference file: JSON, plot and table."""
    _, out, _ = built
    reference = tmp_path / "ref.jsonl"
    rows = [{"id": i, "record": {"persona": {"text": f"Person {i} is a careful baker who walks the dog at dawn "
                                             f"and reads history books late into the night, every single day.",
                                             "age": 30 + i}}} for i in range(4)]
    reference.write_text("".join(orjson.dumps(r).decode() + "\n" for r in rows))
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "evaluate", str(out), "--reference", str(reference),
                           "--text-field", "record.persona.text", "--json"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    ours, ref = result["corpora"][f"populace:{out.name}"], result["corpora"]["ref"]
    produced = query_run(out, "select count(*) as n from personas").to_pylist()[0]["n"]
    assert ours["records"] == produced and ref["records"] == 4
    assert ref["attributes_per_record"] == 2 and ref["hard_error_rate"] == 0.0
    assert ref["template_flag_rate"] == 1.0  # the four share their wording
    assert 0 <= ours["distinct_2"] <= 1 and 0 <= ours["hard_error_rate"] <= 1 and ours["vendi_score"] >= 1
    assert "cosine_0.9" in "".join(ours) and result["ours"]["joint"]["tvd"] >= 0
    assert (out / "evaluation" / "evaluation.json").is_file()
    assert (out / "evaluation" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    table = subprocess.run([sys.executable, "-m", "flows.cli", "evaluate", str(out), "--reference", str(reference)],
                           capture_output=True, text=True, cwd=REPO)
    assert table.returncode == 2 and "--text-field" in table.stderr


def test_report_is_self_contained_and_renders_in_headless_chromium(built, tmp_path):
    import re
    import shutil

    _, out, _ = built
    page = out / "report" / "index.html"
    text = page.read_text()
    assert "Target vs achieved" in text and "Sample personas" in text and "Narrative lengths" in text
    assert not re.search(r"(src|href)=\"(?!data:)", text)  # nothing loaded from outside the page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    shot = tmp_path / "report.png"
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                           "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console


def test_dataset_card_loads_with_datasets_and_export_writes_every_persona(built, tmp_path):
    import csv

    import yaml

    _, out, _ = built
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["configs"][0]["data_files"][0]["path"] == "personas/part-*.parquet" and header["license"]
    produced = query_run(out, "select count(*) as n from personas").to_pylist()[0]["n"]
    assert f"{produced} personas produced" in card
    from datasets import load_dataset

    personas = load_dataset(str(out), "personas", split="train", cache_dir=str(tmp_path / "hf"))
    assert personas.num_rows == produced and {"persona_id", "narrative", "attributes"} <= set(personas.column_names)
    rejects = load_dataset(str(out), "rejects", split="train", cache_dir=str(tmp_path / "hf"))
    assert "reason" in rejects.column_names
    files = [str(p) for p in sorted((out / "personas").glob("part-*.parquet"))]
    plain = load_dataset("parquet", data_files={"train": files}, split="train", cache_dir=str(tmp_path / "hf"))
    assert sorted(plain["persona_id"]) == sorted(personas["persona_id"])
    for fmt in ("jsonl", "csv"):
        target = tmp_path / f"personas.{fmt}"
        proc = subprocess.run([sys.executable, "-m", "flows.cli", "export", str(out), "--format", fmt,
                               "--out", str(target)], capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-1500:]
        if fmt == "jsonl":
            rows = [json.loads(line) for line in target.read_text().splitlines()]
            assert isinstance(rows[0]["attributes"], dict)
        else:
            rows = list(csv.DictReader(target.open()))
            assert json.loads(rows[0]["attributes"])
        assert len(rows) == produced and rows[0]["persona_id"].startswith("p-")
    bad = subprocess.run([sys.executable, "-m", "flows.cli", "export", str(out), "--format", "xml",
                          "--out", str(tmp_path / "x")], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and not (tmp_path / "x").exists()


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


def test_build_on_the_openai_backend_against_a_local_server(prefect_harness, local_ray, llama_chat_server,
                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("POPULACE_E2E_KEY", "sk-e2e-secret")
    backend = {"kind": "openai", "base_url": llama_chat_server, "model": "smollm2", "max_tokens": 160,
               "api_key_env": "POPULACE_E2E_KEY", "batch_size": 2}
    cfg = tiny_config(name="tiny-http", population=2, backend=backend, max_revise_rounds=0, max_backfill_waves=0)
    out = tmp_path / "http"
    build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["backend"]["kind"] == "openai" and manifest["produced"] + manifest["rejected"] == 2
    personas = query_run(out, "select backend, model from personas").to_pylist()
    assert all(p == {"backend": "openai", "model": "smollm2"} for p in personas)
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"sk-e2e-secret" not in written


def test_build_survives_a_faulty_endpoint(prefect_harness, local_ray, llama_chat_server, tmp_path):
    """Garbage, truncated JSON, 500s, dropped connections and a refusal: the run completes and
    every slot is a persona or a reject with its reason."""
    from tests.fault_proxy import FaultProxy

    faults = ["garbage", "500", "truncated", "refusal", "reset", "429", "garbage", "500", "refusal"]
    with FaultProxy(llama_chat_server, faults) as proxy:
        backend = {"kind": "openai", "base_url": proxy.base_url, "model": "smollm2", "max_tokens": 160,
                   "batch_size": 2, "max_retries": 2, "concurrency": 1, "structured_output": "json_object"}
        cfg = tiny_config(name="tiny-faults", population=3, backend=backend, max_revise_rounds=1,
                          max_backfill_waves=0)
        out = tmp_path / "faults"
        build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"] == 3
    assert manifest["backend_retries"] >= 1
    rejects = query_run(out, "select stage, reason, raw_output from rejects").to_pylist()
    assert all(r["reason"] for r in rejects)
    proposals = query_run(out, "select count(*) as n from read_parquet('proposals/round-0/part-*.parquet')")
    assert proposals.to_pylist() == [{"n": 3}]


def test_quotas_are_met_when_a_quarter_of_backend_calls_fail(prefect_harness, local_ray, llama_chat_server,
                                                             tmp_path):
    """429, 500, timeouts, dropped connections and garbage bodies on ~25% of calls: the run still
    fills every quota, counts its retries, and loses or doubles no slot."""
    from tests.fault_proxy import FaultProxy

    # A "hang" outlasts the client's timeout: the timeout is real, and so is the retry after it.
    with FaultProxy(llama_chat_server, rate=0.25, seed=26, slow_s=25) as proxy:  # seed 26: 500, garbage, hang early
        backend = {"kind": "openai", "base_url": proxy.base_url, "model": "smollm2", "max_tokens": 160,
                   "batch_size": 2, "max_retries": 8, "concurrency": 1, "timeout_s": 20,
                   "structured_output": "json_object", "temperature": 0}
        cfg = tiny_config(name="tiny-flaky", population=3, backend=backend, max_backfill_waves=4)
        out = tmp_path / "flaky"
        build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    print(f"faults injected {dict(proxy.injected)}, backend retries {manifest['backend_retries']}")
    assert sum(proxy.injected.values()) >= 2 and manifest["backend_retries"] >= sum(proxy.injected.values()) - 1
    assert manifest["produced"] == cfg.population and manifest["short_by_stratum"] == {}
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"]
    ids = query_run(out, "select persona_id from personas union all select persona_id from rejects")
    assert len(set(ids.column("persona_id").to_pylist())) == manifest["slots"]


def _propose_workers_in_this_session() -> list[int]:
    """PIDs of this session's Ray actors that hold a model (their process title starts ray::MapWorker)."""
    import os

    from tests.processes import process_table

    return [p.pid for p in process_table() if p.name.startswith("ray::MapWorker") and p.session == os.getsid(0)]


def test_a_ray_worker_killed_mid_batch_loses_nothing(prefect_harness, local_ray, tmp_path):
    """SIGKILL to the actor holding the model while it answers a batch: the batch runs again and
    every slot still ends as a persona or a reject, once."""
    import os
    import signal
    import threading
    import time

    killed: list[int] = []
    earlier = set(_propose_workers_in_this_session())  # actors other tests may have left behind

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if set(_propose_workers_in_this_session()) - earlier:
                time.sleep(4)  # the model is loaded and the first batch is being answered
                for pid in set(_propose_workers_in_this_session()) - earlier:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    cfg = tiny_config(name="tiny-worker-death", population=4, shard_size=2, max_revise_rounds=0,
                      backend=BackendConfig(max_tokens=160, batch_size=1, temperature=0).model_dump())
    out = tmp_path / "worker-death"
    build_corpus(cfg, str(out))
    killer.join(timeout=5)
    assert killed, "no propose worker was seen to kill"
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    ids = query_run(out, "select persona_id from personas union all select persona_id from rejects")
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"] == len(set(ids.column("persona_id")))
    proposals = query_run(out, "select persona_id from read_parquet('proposals/round-0/part-*.parquet')")
    # Round 0 of every wave: each slot proposed once, the killed batch's slots included.
    assert proposals.num_rows == len(set(proposals.column("persona_id").to_pylist())) == manifest["slots"]


def test_cli_build_prints_where_the_corpus_is_and_how_to_query_it(tmp_path):
    config = tmp_path / "one.yaml"
    config.write_text(tiny_config(name="one", population=1, max_revise_rounds=0, max_backfill_waves=0,
                                  strata=[]).to_yaml())
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "build", "--config", str(config), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"corpus: {out}" in proc.stdout and f"populace query {out}" in proc.stdout
    count = query_run(out, "select (select count(*) from personas) + (select count(*) from rejects) as n")
    assert count.to_pylist() == [{"n": 1}]


def test_judge_scores_become_columns_and_thresholds_gate(prefect_harness, local_ray, tmp_path):
    """Thresholds of 5/5 on a 135M judge: whatever it scores below goes to rejects as judge:*."""
    cfg = tiny_config(name="tiny-judge", population=2, max_revise_rounds=0, max_backfill_waves=0,
                      judge={"enabled": True, "min_plausibility": 5, "min_consistency": 5})
    out = tmp_path / "judge"
    build_corpus(cfg, str(out))
    judged = query_run(out, "select * from read_parquet('judgements/part-*.parquet')").to_pylist()
    settled = query_run(out, "select count(*) as n from read_parquet('settled/part-*.parquet') where accepted")
    assert len(judged) == settled.to_pylist()[0]["n"]
    personas = query_run(out, "select judge_plausibility, judge_consistency from personas").to_pylist()
    assert all(p["judge_plausibility"] == 5 and p["judge_consistency"] == 5 for p in personas)
    judge_rejects = query_run(out, "select reason from rejects where stage = 'judge'").to_pylist()
    assert all(r["reason"].startswith("judge:") for r in judge_rejects)
    assert len(personas) + len(judge_rejects) == len(judged)
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"] == 2
