"""End to end on the real stack: Prefect harness, local Ray, llama.cpp, Parquet, DuckDB."""

import json
import shutil
import subprocess
import sys
from collections import Counter

import orjson
import pyarrow.parquet as pq
import pytest

from corpus.catalog import query_run
from flows.build import build_corpus
from schemas.config import BackendConfig
from taxonomy.draws import persona_id_for
from taxonomy.quotas import backfill_asks
from tests.helpers.configs import tiny_config
from tests.helpers.paths import REPO
from tests.helpers.planting import UNREADABLE, plant_run, plant_slots, publish_run
from tests.helpers.processes import free_port

pytestmark = pytest.mark.llm

LINEAGE = [
    "run_id",
    "taxonomy_name",
    "taxonomy_version",
    "taxonomy_hash",
    "seed",
    "backend",
    "model",
    "prompt_template_hash",
    "verdict_summary",
    "rounds",
    "duplicate_cluster_id",
    "created_at",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness, local_ray):
    cfg = tiny_config()
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run_dir = build_corpus(cfg, str(out))
    return cfg, out, run_dir


@pytest.fixture(scope="module")
def planted(built, tmp_path_factory):
    """A copy of the built run with one persona and one reject planted in extra slots: the tests that
    read both tables find rows in each on every machine, whatever the model wrote in the build."""
    cfg, out, _ = built
    copy = tmp_path_factory.mktemp("planted") / out.name
    shutil.copytree(out, copy)
    return cfg, copy, plant_slots(copy, personas=1, rejects=1)


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """An earlier corpus planted from tables (no model): one persona for each slot of the tiny config's
    first wave, with that slot's facts and prose of its own."""
    root = tmp_path_factory.mktemp("earlier") / "earlier"
    plant_run(root, tiny_config(name="earlier"))
    publish_run(root)
    return root


def facts_by_id(run_dir, table: str) -> dict[str, dict]:
    rows = query_run(run_dir, f"select persona_id, attributes from {table}").to_pylist()
    return {r["persona_id"]: dict(r["attributes"]) for r in rows}


SKELETONS = "read_parquet('skeletons/part-*.parquet')"


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
    assert {
        "sample:wave-0",
        "propose:wave-0:round-0",
        "propose:wave-0:round-1",
        "validate:wave-0:round-1",
        "settle:wave-0",
        "dedup:wave-0",
        "write",
    } <= set(manifest["stages"])
    # One model worker, loaded once for both rounds and every backfill wave.
    assert manifest["last_run_engines"]["starts"] == cfg.backend.workers == 1
    assert manifest["last_run_engines"]["start_seconds"] > 0


def test_lineage_is_filled_and_facts_are_copied(planted):
    """The build's personas and a planted one (so there is at least one) carry their lineage and
    exactly their skeleton's facts."""
    cfg, out, ids = planted
    table = query_run(out, "select * from personas")
    assert set(ids["personas"]) <= set(table.column("persona_id").to_pylist())
    for column in LINEAGE:
        assert table.column(column).null_count == 0, column
    skeletons = facts_by_id(out, SKELETONS)
    for row in table.to_pylist():
        assert row["seed"] == cfg.seed and row["model"] == cfg.backend.model and row["run_id"] == out.name
        facts = dict(row["attributes"])
        assert facts == skeletons[row["persona_id"]]
        assert facts["demographics.gender"] in ("woman", "man") and "demographics.age" in facts
    counts = query_run(out, "select count(distinct persona_id) as p, count(*) as n from attributes").to_pylist()[0]
    assert counts["p"] == table.num_rows and counts["n"] >= 20 * table.num_rows


def test_rerun_resumes_without_regenerating(built):
    cfg, out, _ = built
    before = shard_files(out)
    ids_before = sorted(
        query_run(out, "select persona_id from personas union all select persona_id from rejects")
        .column("persona_id")
        .to_pylist()
    )
    build_corpus(cfg, str(out))
    assert shard_files(out) == before
    ids_after = sorted(
        query_run(out, "select persona_id from personas union all select persona_id from rejects")
        .column("persona_id")
        .to_pylist()
    )
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


def test_dedup_against_an_earlier_run_removes_repeats_and_backfill_restores_quotas(earlier, tmp_path):
    """The earlier corpus holds the facts of every first-wave slot, so each first-wave persona that passes
    the checks repeats one of its personas (facts layer), whatever the model wrote. Each backfill wave then
    samples new slots for what the strata still lack plus the margin the last wave's losses call for,
    until the quotas are met or waves run out; what is kept beyond a quota is set aside."""
    cfg = tiny_config(name="tiny-again", against=[str(earlier)], max_backfill_waves=4)
    out = tmp_path / "again"
    build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    theirs = facts_by_id(earlier, "personas")
    first_wave = {persona_id_for(cfg.seed, slot) for slot in range(cfg.population)}
    ours = facts_by_id(out, SKELETONS)
    assert set(theirs) == first_wave and {pid: ours[pid] for pid in theirs} == theirs  # the premise
    passed = (
        query_run(
            out,
            f"select persona_id from read_parquet('settled/part-*.parquet') where accepted and slot < {cfg.population}",
        )
        .column("persona_id")
        .to_pylist()
    )
    dupes = query_run(
        out, f"select persona_id, duplicate_of from rejects where stage = 'dedup' and slot < {cfg.population}"
    ).to_pylist()
    assert {d["persona_id"] for d in dupes} == set(passed)
    assert {d["duplicate_of"] for d in dupes} <= {f"{earlier.name}:{pid}" for pid in first_wave}
    assert query_run(out, f"select count(*) as n from personas where slot < {cfg.population}").to_pylist() == [{"n": 0}]
    # 3 slots at 50/50: largest remainder gives the tie's extra slot to the first cell.
    requested = {label: stratum["requested"] for label, stratum in manifest["strata"].items()}
    assert requested == {"gender=man": 2, "gender=woman": 1}
    stratum_of_slot = {
        r["slot"]: r["stratum"] for r in query_run(out, f"select slot, stratum from {SKELETONS}").to_pylist()
    }
    stratum_of_id = {persona_id_for(cfg.seed, slot): stratum for slot, stratum in stratum_of_slot.items()}
    start, wanted, wave, kept_before = 0, dict(requested), 0, 0
    while True:
        sampled = Counter(stratum_of_slot[slot] for slot in range(start, start + sum(wanted.values())))
        assert sampled == Counter(wanted), f"wave {wave} sampled {dict(sampled)} for asks of {wanted}"
        start += sum(wanted.values())
        clusters = pq.read_table(out / "dedup" / f"wave-{wave}" / "clusters.parquet").to_pylist()
        kept = Counter(stratum_of_id[r["persona_id"]] for r in clusters if r["kept"])
        assert wave > 0 or not kept  # the first wave keeps nothing: wave 1 refills every stratum
        short = {label: n - kept[label] for label, n in requested.items() if n > kept[label]}
        if not short or wave == cfg.max_backfill_waves:
            break
        # The next wave asks for the shortfall and what this wave's loss rate says it will lose again.
        loss = 1 - (sum(kept.values()) - kept_before) / sum(wanted.values())
        kept_before = sum(kept.values())
        wanted, wave = backfill_asks(short, loss), wave + 1
        assert all(wanted[label] > n for label, n in short.items())  # wave 0 lost every slot: a margin
    assert start == manifest["slots"] == len(stratum_of_slot) and manifest["backfilled"] == start - cfg.population
    assert manifest["short_by_stratum"] == short
    assert manifest["backfill_stopped_by"] == ("max_backfill_waves" if short else "quotas_met")
    produced = query_run(out, "select stratum, count(*) as n from personas group by 1").to_pylist()
    assert {r["stratum"]: r["n"] for r in produced} == {
        label: n - short.get(label, 0) for label, n in requested.items() if n > short.get(label, 0)
    }
    # What the last wave kept beyond a quota is set aside as over_quota rejects: the last slots kept.
    beyond = {label: kept[label] - n for label, n in requested.items() if kept[label] > n}
    trimmed = query_run(out, "select slot, stratum from rejects where reason = 'over_quota'").to_pylist()
    assert Counter(r["stratum"] for r in trimmed) == Counter(beyond)
    persona_slots = query_run(out, "select slot, stratum from personas").to_pylist()
    for row in trimmed:
        assert all(p["slot"] < row["slot"] for p in persona_slots if p["stratum"] == row["stratum"])
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"]
    assert manifest["tokens_spent"] > 0 and (out / "dedup" / "index" / "meta.json").is_file()
    assert wave > 0 and manifest["last_run_engines"]["starts"] == 1  # every wave and round on one model load


def test_token_budget_stops_backfill_and_the_manifest_says_so(earlier, tmp_path):
    """Every first-wave persona repeats the earlier corpus's facts; a 1-token budget allows no backfill wave."""
    cfg = tiny_config(name="tiny-budget", against=[str(earlier)], max_backfill_waves=4, max_backfill_tokens=1)
    out = tmp_path / "budget"
    build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["backfill_stopped_by"] == "token_budget" and manifest["backfilled"] == 0
    assert manifest["tokens_spent"] >= 1 and manifest["produced"] == 0
    assert sum(manifest["short_by_stratum"].values()) == cfg.population
    assert manifest["rejected"] == manifest["slots"] == cfg.population  # nothing lost: all are rejects
    assert {s["requested"] for s in manifest["strata"].values()} == {1, 2}


def test_evaluate_beside_a_reference_corpus(planted, tmp_path):
    """`populace evaluate` on a finished run (with a planted persona, so it has one) and a small
    reference file: JSON, plot and table."""
    _, out, _ = planted
    reference = tmp_path / "ref.jsonl"
    rows = [
        {
            "id": i,
            "record": {
                "persona": {
                    "text": f"Person {i} is a careful baker who walks the dog at dawn "
                    f"and reads history books late into the night, every single day.",
                    "age": 30 + i,
                }
            },
        }
        for i in range(4)
    ]
    reference.write_text("".join(orjson.dumps(r).decode() + "\n" for r in rows))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "evaluate",
            str(out),
            "--reference",
            str(reference),
            "--text-field",
            "record.persona.text",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    ours, ref = result["corpora"][f"populace:{out.name}"], result["corpora"]["ref"]
    produced = query_run(out, "select count(*) as n from personas").to_pylist()[0]["n"]
    assert ours["records"] == produced >= 1 and ref["records"] == 4
    assert ref["attributes_per_record"] == 2 and ref["hard_error_rate"] is None  # no contract declared: n/a
    assert ref["template_flag_rate"] == 1.0  # the four share their wording
    assert 0 <= ours["distinct_2"] <= 1 and 0 <= ours["hard_error_rate"] <= 1 and ours["vendi_score"] >= 1
    assert "cosine_0.9" in "".join(ours) and result["ours"]["joint"]["tvd"] >= 0
    assert (out / "evaluation" / "evaluation.json").is_file()
    assert (out / "evaluation" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    table = subprocess.run(
        [sys.executable, "-m", "cli.main", "evaluate", str(out), "--reference", str(reference)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
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
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,3000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console


def test_dataset_card_loads_with_datasets_and_export_writes_every_persona(planted, tmp_path):
    """Both configs of the card load with `datasets`: the run holds a planted persona and a planted
    reject besides whatever the build made, so neither table is empty on any machine."""
    import csv

    import yaml

    _, out, ids = planted
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["configs"][0]["data_files"][0]["path"] == "personas/part-*.parquet" and header["license"]
    produced = query_run(out, "select count(*) as n from personas").to_pylist()[0]["n"]
    rejected = query_run(out, "select count(*) as n from rejects").to_pylist()[0]["n"]
    assert f"{produced} personas produced" in card and f"{rejected} rejected slots" in card
    from datasets import load_dataset

    personas = load_dataset(str(out), "personas", split="train", cache_dir=str(tmp_path / "hf"))
    assert personas.num_rows == produced and {"persona_id", "narrative", "attributes"} <= set(personas.column_names)
    assert set(ids["personas"]) <= set(personas["persona_id"])
    rejects = load_dataset(str(out), "rejects", split="train", cache_dir=str(tmp_path / "hf"))
    assert rejects.num_rows == rejected and "reason" in rejects.column_names
    planted_rejects = [r for r in rejects if r["persona_id"] in ids["rejects"]]
    assert [(r["stage"], r["reason"], r["raw_output"]) for r in planted_rejects] == [("validate", "schema", UNREADABLE)]
    files = [str(p) for p in sorted((out / "personas").glob("part-*.parquet"))]
    plain = load_dataset("parquet", data_files={"train": files}, split="train", cache_dir=str(tmp_path / "hf"))
    assert sorted(plain["persona_id"]) == sorted(personas["persona_id"])
    for fmt in ("jsonl", "csv"):
        target = tmp_path / f"personas.{fmt}"
        proc = subprocess.run(
            [sys.executable, "-m", "cli.main", "export", str(out), "--format", fmt, "--out", str(target)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr[-1500:]
        if fmt == "jsonl":
            rows = [json.loads(line) for line in target.read_text().splitlines()]
            assert isinstance(rows[0]["attributes"], dict)
        else:
            rows = list(csv.DictReader(target.open()))
            assert json.loads(rows[0]["attributes"])
        assert len(rows) == produced and sorted(r["persona_id"] for r in rows) == sorted(personas["persona_id"])
    bad = subprocess.run(
        [sys.executable, "-m", "cli.main", "export", str(out), "--format", "xml", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and not (tmp_path / "x").exists()


def test_cli_query_formats(built):
    _, out, _ = built
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "query", str(out), "select count(*) as n from personas", "--format", "csv"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "n"
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "query", str(out), "drop view personas"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2


def test_preview_prints_and_writes_nothing(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(tiny_config(output_dir=str(tmp_path / "runs")).to_yaml())
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "preview", "--config", str(config), "--n", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert persona_id_for(11, 0) in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_build_on_the_openai_backend_against_a_local_server(
    prefect_harness, local_ray, llama_chat_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("POPULACE_E2E_KEY", "sk-e2e-secret")
    backend = {
        "kind": "openai",
        "base_url": llama_chat_server,
        "model": "smollm2",
        "max_tokens": 160,
        "api_key_env": "POPULACE_E2E_KEY",
        "batch_size": 2,
    }
    cfg = tiny_config(name="tiny-http", population=2, backend=backend, max_revise_rounds=0, max_backfill_waves=0)
    out = tmp_path / "http"
    build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["backend"]["kind"] == "openai" and manifest["produced"] + manifest["rejected"] == 2
    personas = query_run(out, "select backend, model from personas").to_pylist()
    assert all(p == {"backend": "openai", "model": "smollm2"} for p in personas)
    answered = query_run(
        out,
        "select persona_id from read_parquet('proposals/round-0/part-*.parquet') "
        "where error is null and completion_tokens > 0",
    )
    assert answered.num_rows == 2  # the server answered every slot, whatever it wrote
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"sk-e2e-secret" not in written


def test_build_survives_a_faulty_endpoint(prefect_harness, local_ray, llama_chat_server, tmp_path):
    """Garbage, truncated JSON, 500s, dropped connections and a refusal: the run completes and
    every slot is a persona or a reject with its reason."""
    from tests.helpers.fault_proxy import FaultProxy

    faults = ["garbage", "500", "truncated", "refusal", "reset", "429", "garbage", "500", "refusal"]
    with FaultProxy(llama_chat_server, faults) as proxy:
        backend = {
            "kind": "openai",
            "base_url": proxy.base_url,
            "model": "smollm2",
            "max_tokens": 160,
            "batch_size": 2,
            "max_retries": 2,
            "concurrency": 1,
            "structured_output": "json_object",
        }
        cfg = tiny_config(name="tiny-faults", population=3, backend=backend, max_revise_rounds=1, max_backfill_waves=0)
        out = tmp_path / "faults"
        build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"] == 3
    assert manifest["backend_retries"] >= 1
    rejects = query_run(out, "select stage, reason, raw_output from rejects").to_pylist()
    assert all(r["reason"] for r in rejects)
    proposals = query_run(out, "select count(*) as n from read_parquet('proposals/round-0/part-*.parquet')")
    assert proposals.to_pylist() == [{"n": 3}]


def test_a_quarter_of_backend_calls_failing_loses_no_slot(prefect_harness, local_ray, llama_chat_server, tmp_path):
    """429, 500, timeouts, dropped connections and garbage bodies on ~25% of calls: every call is
    retried until it gets an answer, so no slot is lost to the endpoint; the run counts its retries,
    loses or doubles no slot, and backfills every stratum the checks left short (whether the waves
    meet the quotas depends only on what the model writes, so that is not asserted)."""
    from tests.helpers.fault_proxy import FaultProxy

    # A "hang" outlasts the client's timeout: the timeout is real, and so is the retry after it.
    # The first three calls fail for certain (how many calls a build makes depends on what the model
    # writes), then a quarter of the rest at random.
    with FaultProxy(llama_chat_server, faults=["500", "garbage", "hang"], rate=0.25, seed=26, slow_s=25) as proxy:
        backend = {
            "kind": "openai",
            "base_url": proxy.base_url,
            "model": "smollm2",
            "max_tokens": 160,
            "batch_size": 2,
            "max_retries": 8,
            "concurrency": 1,
            "timeout_s": 20,
            "structured_output": "json_object",
            "temperature": 0,
        }
        cfg = tiny_config(name="tiny-flaky", population=3, backend=backend, max_backfill_waves=4)
        out = tmp_path / "flaky"
        build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    print(f"faults injected {dict(proxy.injected)}, backend retries {manifest['backend_retries']}")
    assert sum(proxy.injected.values()) >= 3 and manifest["backend_retries"] >= sum(proxy.injected.values()) - 1
    failed = query_run(
        out, "select count(*) as n from read_parquet('proposals/round-*/part-*.parquet') where error is not null"
    ).to_pylist()
    assert failed == [{"n": 0}] and "backend" not in manifest["rejected_by_reason"]
    short = manifest["short_by_stratum"]
    assert manifest["produced"] == cfg.population - sum(short.values())
    assert manifest["backfill_stopped_by"] == ("max_backfill_waves" if short else "quotas_met")
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"]
    ids = query_run(out, "select persona_id from personas union all select persona_id from rejects")
    assert len(set(ids.column("persona_id").to_pylist())) == manifest["slots"]


def _propose_workers_in_this_session() -> list[int]:
    """PIDs of this session's Ray actors that hold a model (their process title starts ray::EngineWorker)."""
    import os

    from tests.helpers.processes import process_table

    return [p.pid for p in process_table() if p.name.startswith("ray::EngineWork") and p.session == os.getsid(0)]


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
    cfg = tiny_config(
        name="tiny-worker-death",
        population=4,
        shard_size=2,
        max_revise_rounds=0,
        backend=BackendConfig(max_tokens=160, batch_size=1, temperature=0).model_dump(),
    )
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
    assert manifest["last_run_engines"]["starts"] == 2  # the first load and the restart after the kill


def test_a_build_whose_model_workers_hold_every_cpu_validates_in_the_driver(prefect_harness, local_ray, tmp_path):
    """Two model workers of one CPU on the 2-CPU test Ray leave no CPU for tasks: sampling, validation,
    settling and dedup features run in the driver instead of waiting forever. A rerun of the finished
    build loads no model at all."""
    from workers.cpu_tasks import tasks_can_run

    assert not tasks_can_run(2.0)
    cfg = tiny_config(
        name="tiny-all-cpus",
        population=2,
        max_backfill_waves=0,
        backend=BackendConfig(max_tokens=160, batch_size=1, workers=2, cpus_per_worker=1).model_dump(),
    )
    out = tmp_path / "all-cpus"
    build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    ids = query_run(out, "select persona_id from personas union all select persona_id from rejects")
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"] == ids.num_rows == 2
    assert {"sample_cpu", "prompts_cpu", "validate_cpu", "settle_cpu", "features_cpu"} <= set(
        manifest["last_run_stage_seconds"]
    )
    assert manifest["last_run_engines"]["starts"] == 2
    build_corpus(cfg, str(out))
    assert orjson.loads((out / "manifest.json").read_bytes())["last_run_engines"]["starts"] == 0


def test_cli_build_prints_where_the_corpus_is_and_how_to_query_it(tmp_path):
    config = tmp_path / "one.yaml"
    config.write_text(
        tiny_config(name="one", population=1, max_revise_rounds=0, max_backfill_waves=0, strata=[]).to_yaml()
    )
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "build", "--config", str(config), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"corpus: {out}" in proc.stdout and f"populace query {out}" in proc.stdout
    count = query_run(out, "select (select count(*) from personas) + (select count(*) from rejects) as n")
    assert count.to_pylist() == [{"n": 1}]


def judge_run(tmp_path, name: str, judge: dict):
    """Three slots planted up to the settle stage (two personas to judge, one lost to the schema check),
    then the build resumes: the judge, its gate, dedup and write run for real."""
    cfg = tiny_config(name=name, population=3, max_revise_rounds=0, max_backfill_waves=0, judge=judge)
    out = tmp_path / name
    plant_run(out, cfg, accept=[True, True, False])
    build_corpus(cfg, str(out))
    settled = query_run(out, "select persona_id, accepted from read_parquet('settled/part-*.parquet')").to_pylist()
    judged = query_run(out, "select * from read_parquet('judgements/part-*.parquet')").to_pylist()
    rejects = {r["persona_id"]: r for r in query_run(out, "select persona_id, stage, reason from rejects").to_pylist()}
    lost = [r["persona_id"] for r in settled if not r["accepted"]]
    assert {pid: (rejects[pid]["stage"], rejects[pid]["reason"]) for pid in lost} == {lost[0]: ("validate", "schema")}
    # Every persona that passed the checks is judged, once; the slot that failed them is not.
    assert sorted(j["persona_id"] for j in judged) == sorted(r["persona_id"] for r in settled if r["accepted"])
    assert len(judged) == 2
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["produced"] + manifest["rejected"] == manifest["slots"] == 3
    return out, {j["persona_id"]: j for j in judged}, rejects


def test_judge_scores_become_columns_and_thresholds_gate(prefect_harness, local_ray, tmp_path):
    """The real 135M judge scores two planted personas; whatever it scores, the scores become columns and
    the 5/5 thresholds alone decide which stay and why the others go."""
    out, judged, rejects = judge_run(
        tmp_path, "tiny-judge", {"enabled": True, "min_plausibility": 5, "min_consistency": 5}
    )
    gated = {
        r["persona_id"]: r for r in query_run(out, "select * from read_parquet('gated/part-*.parquet')").to_pylist()
    }
    passed = set()
    for pid, j in judged.items():
        scores = (j["plausibility"], j["consistency"])
        assert (gated[pid]["judge_plausibility"], gated[pid]["judge_consistency"]) == scores
        reason = (
            "judge:unscored"
            if scores[0] is None
            else "judge:plausibility"
            if scores[0] < 5
            else "judge:consistency"
            if scores[1] < 5
            else None
        )
        assert (gated[pid]["accepted"], gated[pid]["reason"]) == (reason is None, reason), scores
        if reason is None:
            passed.add(pid)
        else:
            assert (rejects[pid]["stage"], rejects[pid]["reason"]) == ("judge", reason)
    personas = query_run(out, "select persona_id, judge_plausibility, judge_consistency from personas").to_pylist()
    assert {p["persona_id"] for p in personas} | {pid for pid, r in rejects.items() if r["stage"] == "dedup"} == passed
    assert all((p["judge_plausibility"], p["judge_consistency"]) == (5, 5) for p in personas)


def test_an_unreachable_judge_scores_nothing_and_the_gate_rejects_what_it_did_not_score(
    prefect_harness, local_ray, tmp_path
):
    """A judge endpoint that refuses every connection: no persona gets a score, so every judged one is
    a judge:unscored reject."""
    judge = {
        "enabled": True,
        "backend": {
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "model": "judge",
            "max_retries": 0,
            "timeout_s": 10,
        },
    }
    out, judged, rejects = judge_run(tmp_path, "tiny-judge-down", judge)
    assert all(j["plausibility"] is None and j["consistency"] is None and j["error"] for j in judged.values())
    assert {pid: (rejects[pid]["stage"], rejects[pid]["reason"]) for pid in judged} == {
        pid: ("judge", "judge:unscored") for pid in judged
    }
    assert query_run(out, "select count(*) as n from personas").to_pylist() == [{"n": 0}]
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["rejected_by_reason"] == {"judge:unscored": 2, "schema": 1} and manifest["produced"] == 0
