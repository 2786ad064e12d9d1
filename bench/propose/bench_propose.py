"""Proposing: pipeline vs raw backend throughput, and constrained vs unconstrained decoding.

Same prompts (one seed's skeletons) and the same embedded backend, all in one run:
(a) raw: the backend's generate() in this process; Ray: the propose stage (a model worker
    on Ray); build: the whole Prefect flow with no revise rounds and no backfill, so it makes the
    same number of generations. Throughput ratios are pipeline / raw.
(b) constrained (the Proposal JSON schema) vs unconstrained decoding, seconds per request and
    per generated token; prompt processing (measured in the same run as one-token answers to
    the same prompts) is subtracted for the per-token decode figure, since constrained answers
    are shorter and would otherwise carry more prompt time per token.

    python bench/propose/bench_propose.py [--n 12]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from schemas.config import BackendConfig, RunConfig
from taxonomy.loader import load_taxonomy
from taxonomy.quotas import assign_slots, plan_quotas
from taxonomy.sampling import sample_skeletons
from workers.factory import create_backend
from workers.proposer import build_requests, propose_with_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    cfg = BackendConfig(temperature=0.0)
    taxonomy = load_taxonomy("seed:core")
    skeletons = sample_skeletons(
        taxonomy, assign_slots(plan_quotas([], taxonomy, args.n), args.seed), args.seed, range(args.n)
    )
    requests = build_requests(skeletons, taxonomy, cfg, args.seed, 0)
    backend = create_backend(cfg, threads=os.cpu_count())

    started = time.perf_counter()
    constrained = backend.generate(requests)
    raw_s = time.perf_counter() - started
    unconstrained_requests = [r.model_copy(update={"json_schema": None}) for r in requests]
    started = time.perf_counter()
    unconstrained = backend.generate(unconstrained_requests)
    free_s = time.perf_counter() - started

    started = time.perf_counter()
    backend.generate([r.model_copy(update={"json_schema": None, "max_tokens": 1}) for r in requests])
    prefill_s = time.perf_counter() - started

    started = time.perf_counter()
    list(propose_with_ray(requests, cfg))
    ray_s = time.perf_counter() - started

    from prefect.testing.utilities import prefect_test_harness

    from flows.build import build_corpus

    run_cfg = RunConfig(
        name="bench",
        population=args.n,
        seed=args.seed,
        backend=cfg,
        max_revise_rounds=0,
        max_backfill_waves=0,
        shard_size=max(1, args.n // 2),
    )
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        started = time.perf_counter()
        build_corpus(run_cfg, f"{tmp}/run")
        build_s = time.perf_counter() - started

    print(f"(a) {args.n} requests, SmolLM2-135M on llama.cpp, {os.cpu_count()} cores")
    print(f"{'path':<28}{'seconds':>9}{'req/s':>9}{'ratio to raw':>14}")
    for label, seconds in (
        ("raw backend.generate", raw_s),
        ("propose stage (Ray worker)", ray_s),
        ("whole build (Prefect flow)", build_s),
    ):
        print(f"{label:<28}{seconds:>9.1f}{args.n / seconds:>9.3f}{raw_s / seconds:>14.2f}")
    c_tokens = sum(r.completion_tokens for r in constrained)
    u_tokens = sum(r.completion_tokens for r in unconstrained)
    print("(b) decoding")
    print(f"prompt processing alone: {prefill_s:.1f} s for {args.n} prompts")
    print(f"{'mode':<16}{'seconds':>9}{'tokens':>8}{'ms/token':>10}{'decode ms/token':>17}{'s/request':>11}")
    for label, seconds, tokens in (("constrained", raw_s, c_tokens), ("unconstrained", free_s, u_tokens)):
        print(
            f"{label:<16}{seconds:>9.1f}{tokens:>8}{1000 * seconds / max(1, tokens):>10.1f}"
            f"{1000 * (seconds - prefill_s) / max(1, tokens):>17.1f}{seconds / args.n:>11.2f}"
        )
    per_token = (raw_s / max(1, c_tokens)) / (free_s / max(1, u_tokens))
    decode = ((raw_s - prefill_s) / max(1, c_tokens)) / ((free_s - prefill_s) / max(1, u_tokens))
    print(
        f"constrained / unconstrained: {raw_s / free_s:.2f}x per request, {per_token:.2f}x per token, "
        f"{decode:.2f}x per decoded token (prompt time subtracted)"
    )


if __name__ == "__main__":
    main()
