"""Sampling benchmark: N skeletons with 3-way strata, facts constraints and K deep attributes.

Runs `populace sample` (vectorised, chunked, constraints enforced, Parquet written, one worker
process per core) in a child process for wall time and peak RSS of the whole process tree,
then a plain per-row Python sampler (one RNG per slot, attribute by attribute, no constraints,
no writing) on a subset measured in the same run, and prints the per-skeleton time ratio. Usage:
  python bench/sampling/bench_sampling.py --n 1000000 --baseline-n 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from schemas.config import QuotaConfig  # noqa: E402
from taxonomy.loader import load_taxonomy, sampling_order  # noqa: E402
from taxonomy.quotas import assign_slots, plan_quotas  # noqa: E402
from taxonomy.sampling import condition_holds  # noqa: E402

CONFIG = {
    "name": "bench-sampling",
    "seed": 1,
    "deep_attributes": 50,
    "quotas": {
        "preset": "us_adults",
        "variables": ["demographics.age_band", "demographics.sex", "demographics.region"],
    },
}


def per_row_baseline(taxonomy, cells, seed: int, k: int) -> list[dict[str, str]]:
    """The plain way: a Python loop per slot and per attribute, K deep leaves drawn at random."""
    known = taxonomy.attributes()
    order = sampling_order(taxonomy)
    core = set(taxonomy.core_ids())
    deep = [a for a in known if a not in core]
    out = []
    for slot, cell in enumerate(cells):
        rng = np.random.default_rng([seed, slot])
        chosen = set(rng.choice(len(deep), size=min(k, len(deep)), replace=False).tolist())
        wanted = core | {deep[i] for i in chosen}
        values: dict[str, str] = dict(cell.values)
        for attr_id in order:
            attr = known[attr_id]
            if attr_id in values or attr_id not in wanted or attr.kind == "text":
                continue
            if not all(condition_holds(c, values) for c in attr.applicable_when):
                continue
            if attr.kind == "numeric":
                low, high = attr.minimum, attr.maximum
                if attr.range_by and values.get(attr.range_by.attribute) in attr.range_by.ranges:
                    low, high = attr.range_by.ranges[values[attr.range_by.attribute]]
                values[attr_id] = str(int(rng.integers(int(low), int(high) + 1)))
                continue
            weights = attr.values
            if attr.depends_on and values.get(attr.depends_on.attribute) in attr.depends_on.table:
                weights = attr.depends_on.table[values[attr.depends_on.attribute]]
            names = list(weights)
            p = np.asarray([weights[n] for n in names])
            values[attr_id] = names[int(rng.choice(len(names), p=p / p.sum()))]
        out.append(values)
    return out


def tree_rss_kb(root: int) -> int:
    """Resident memory of a process and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue  # the process ended while we looked
        pid = int(status.parent.name)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--baseline-n", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump({**CONFIG, "population": args.n}))
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "cli.main", "sample", "--config", str(config), "--out", str(out)]
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak_kb = 0
        while proc.poll() is None:  # the sum over the process tree: populace sample runs one worker per core
            peak_kb = max(peak_kb, tree_rss_kb(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr.read().decode())
        metrics = json.loads((out / "metrics.json").read_text())
    taxonomy = load_taxonomy("seed:core")
    cells = assign_slots(plan_quotas([], taxonomy, args.baseline_n, QuotaConfig(**CONFIG["quotas"])), 1)
    started = time.perf_counter()
    per_row_baseline(taxonomy, cells, 1, CONFIG["deep_attributes"])
    baseline = time.perf_counter() - started
    ours_per = wall / args.n
    base_per = baseline / args.baseline_n
    print(
        f"populace sample: {args.n:,} skeletons in {wall:.1f} s wall ({args.n / wall:,.0f}/s), "
        f"peak RSS {peak_kb / 1024:.0f} MiB summed over the process tree (interpreters, constraints, Parquet)"
    )
    print(
        f"per-row Python baseline: {args.baseline_n:,} skeletons in {baseline:.1f} s "
        f"({args.baseline_n / baseline:,.0f}/s) -> {args.n:,} would take {base_per * args.n:.0f} s"
    )
    print(f"speed ratio (baseline time per skeleton / ours): {base_per / ours_per:.1f}x")
    per_persona = metrics["attributes_per_persona"]["mean"]
    print(
        f"joint TVD {metrics['joint']['tvd']:.2e}, count mismatches {metrics['joint']['count_mismatches']}, "
        f"leaf coverage {metrics['leaf_coverage']:.3f}, attributes/persona {per_persona:.1f}"
    )
    for name, fit in metrics.get("preset_fit", {}).items():
        print(f"  preset fit {name}: TVD {fit['tvd']:.4f}")


if __name__ == "__main__":
    main()
