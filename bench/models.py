"""Compare candidate embedded models on the same skeletons and prompts.

Measures valid-JSON rate (schema check), fidelity rate (no age/occupation contradiction among
parsed outputs), full pass rate, seconds per persona and generation speed; prints each figure
with its ratio to the first model (the baseline), all measured in this one run.

    python bench/models.py --n 10 --models smollm2-135m-instruct gemma3-270m
"""

from __future__ import annotations

import argparse
import os
import time

from schemas.config import BackendConfig
from taxonomy.loader import load_taxonomy
from taxonomy.quotas import assign_slots, plan_quotas
from taxonomy.sampling import sample_skeletons
from validators.engine import validate_batch
from validators.rule_pack import load_rule_pack
from workers.factory import create_backend
from workers.proposer import build_requests


def measure(model: str, n: int, seed: int) -> dict:
    taxonomy = load_taxonomy("seed:core")
    skeletons = sample_skeletons(taxonomy, assign_slots(plan_quotas([], taxonomy, n), seed), seed, range(n))
    cfg = BackendConfig(model=model, threads_per_worker=os.cpu_count())
    backend = create_backend(cfg)
    requests = build_requests(skeletons, taxonomy, cfg, seed, 0)
    started = time.perf_counter()
    results = backend.generate(requests)
    seconds = time.perf_counter() - started
    outcomes, verdicts = validate_batch(
        [(s, r.text) for s, r in zip(skeletons, results, strict=True)], taxonomy, load_rule_pack(), 0
    )
    parsed = {v["persona_id"] for v in verdicts.to_pylist() if v["check"] == "schema" and v["passed"]}
    faithful = {
        o.persona_id
        for o in outcomes
        if o.persona_id in parsed and not any(c.startswith("fidelity:") for c in o.failed)
    }
    return {
        "model": model,
        "valid_json": len(parsed) / n,
        "fidelity": len(faithful) / max(1, len(parsed)),
        "passed": sum(o.passed for o in outcomes) / n,
        "sec_per_persona": seconds / n,
        "gen_tok_per_s": sum(r.completion_tokens for r in results) / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma3-270m"])
    args = parser.parse_args()
    rows = [measure(model, args.n, args.seed) for model in args.models]
    base = rows[0]
    keys = ["valid_json", "fidelity", "passed", "sec_per_persona", "gen_tok_per_s"]
    print(f"{'model':<24}" + "".join(f"{k:>22}" for k in keys))
    for row in rows:
        cells = "".join(f"{row[k]:>12.2f} ({row[k] / base[k] if base[k] else float('nan'):>5.2f}x)" for k in keys)
        print(f"{row['model']:<24}{cells}")
    print(f"n={args.n} seed={args.seed}; ratios are against {base['model']} measured in this run")


if __name__ == "__main__":
    main()
