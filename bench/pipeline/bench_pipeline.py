"""The pipeline's own rates: builds of growing size against the load generator, stage by stage.

With an instant endpoint (bench/loadgen/persona_server.py answering at once) everything measured is
populace's own work: sampling, prompt building, the HTTP client, validation, revising, settling,
dedup and writing. With --capacity the endpoint emulates a server of fixed throughput, and the
build is compared with that capacity measured in the same run by a plain client at the same
concurrency (the baseline), so the ratio says how much of the backend the pipeline keeps busy.

    python bench/pipeline/bench_pipeline.py --sizes 2000,20000 [--capacity 6000 --capacity-size 20000]

Prints, per size: the flow's seconds (Prefect and Ray start-up excluded, shown apart), personas/s
end to end and per stage, peak RSS and PSS of the build's whole process tree (driver, Ray, workers) and
the backend's busy share. The endpoint runs on the same machine and its CPU is shown too: on
2 cores it competes with the build.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psutil
import yaml

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "bench" / "loadgen" / "persona_server.py"
PORT = 8817


def build_config(size: int, shard_size: int, out_dir: Path, workers: int, concurrency: int) -> dict:
    """seed:core, the us_adults preset over age band x sex, 8 deep attributes, one revise round,
    every dedup layer: the configuration the issue's table was measured with."""
    return {
        "name": f"bench-{size}",
        "population": size,
        "seed": 11,
        "taxonomy": "seed:core",
        "quotas": {"preset": "us_adults", "variables": ["demographics.age_band", "demographics.sex"]},
        "deep_attributes": 8,
        "max_revise_rounds": 1,
        "max_backfill_waves": 2,
        "shard_size": shard_size,
        "backend": {
            "kind": "openai",
            "model": "persona-loadgen",
            "base_url": f"http://127.0.0.1:{PORT}/v1",
            "workers": workers,
            "concurrency": concurrency,
            "batch_size": concurrency,
            "cpus_per_worker": 0,
            "max_tokens": 256,
        },
        "dedup": {
            "exact": True,
            "minhash_threshold": 0.8,
            "semantic": True,
            "embedder": {"kind": "static"},
            "facts": True,
        },
        "output_dir": str(out_dir),
    }


class Endpoint:
    """The load generator as a subprocess on 127.0.0.1."""

    def __init__(self, tokens_per_s: float, slots: int, flawed: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(SERVER),
                "--port",
                str(PORT),
                "--tokens-per-s",
                str(tokens_per_s),
                "--slots",
                str(slots),
                "--flawed",
                str(flawed),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{PORT}/v1"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.stats(reset=True)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the load generator did not start")

    def stats(self, reset: bool = False) -> dict:
        import urllib.request

        request = urllib.request.Request(f"{self.url}/stats", method="POST" if reset else "GET")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def tree_memory(root: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) summed over the build's process tree. RSS counts a shared page (Ray's object store,
    mapped by every worker) once per process that maps it; PSS splits it among them, so the PSS sum
    is the memory the tree really holds."""
    rss = pss = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a process that ended between the listing and the read
            info = proc.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)  # PSS is Linux-only
    return rss, pss


def run_build(config: Path, out: Path) -> tuple[float, tuple[int, int], str]:
    """Wall seconds, peak (RSS, PSS) of the build's process tree (sampled every 0.25 s) and its output tail."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "build", "--config", str(config), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = psutil.Process(proc.pid)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        rss, pss = tree_memory(root)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.25)
    output = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"build failed ({proc.returncode}):\n{output[-3000:]}")
    return time.monotonic() - started, (peak_rss, peak_pss), output[-2000:]


async def direct_load(url: str, requests: int, concurrency: int) -> float:
    """The baseline: requests/s a plain client gets from the endpoint at the build's concurrency."""
    prompt = (
        "Facts about this person:\n- Main hobby: fishing\n- Pets: dog\nReturn JSON. "
        "call the person Sam or he, never I or you."
    )
    payload = orjson.dumps(
        {"model": "persona-loadgen", "messages": [{"role": "user", "content": prompt}], "seed": 1, "max_tokens": 256}
    )
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> None:
            async with (
                limit,
                session.post(
                    f"{url}/chat/completions", data=payload, headers={"Content-Type": "application/json"}
                ) as response,
            ):
                await response.read()

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(requests)))
        return requests / (time.monotonic() - started)


def measure(size: int, args: argparse.Namespace, work: Path, tokens_per_s: float) -> dict:
    endpoint = Endpoint(tokens_per_s, args.slots, args.flawed)
    try:
        baseline = None
        if tokens_per_s:
            baseline = asyncio.run(direct_load(endpoint.url, min(size, 4000), args.workers * args.concurrency))
        endpoint.stats(reset=True)
        cpu_before = endpoint.cpu_seconds()
        config = work / f"config-{size}-{int(tokens_per_s)}.yaml"
        out = work / f"run-{size}-{int(tokens_per_s)}"
        config.write_text(yaml.safe_dump(build_config(size, args.shard_size, work, args.workers, args.concurrency)))
        wall, (peak_rss, peak_pss), _ = run_build(config, out)
        served = endpoint.stats()
        server_cpu = endpoint.cpu_seconds() - cpu_before
    finally:
        endpoint.stop()
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    flow_s = manifest["last_run_seconds"]
    row = {
        "size": size,
        "slots": manifest["slots"],
        "produced": manifest["produced"],
        "rejected": manifest["rejected"],
        "wall_s": round(wall, 1),
        "flow_s": flow_s,
        "startup_s": round(wall - flow_s, 1),
        "personas_per_s": round(manifest["produced"] / flow_s, 1),
        "stages": manifest["last_run_stage_seconds"],
        "peak_rss_gb": round(peak_rss / 2**30, 2),
        "peak_pss_gb": round(peak_pss / 2**30, 2),
        "requests": served["requests"],
        "endpoint_cpu_s": round(server_cpu, 1),
    }
    if tokens_per_s:
        row["baseline_requests_per_s"] = round(baseline, 1)
        row["build_requests_per_s"] = round(served["requests"] / flow_s, 1)
        row["ratio_to_capacity"] = round(served["requests"] / flow_s / baseline, 3)
        row["busy_share"] = round(served["busy_slot_seconds"] / (args.slots * flow_s), 3)
    if not args.keep:
        subprocess.run(["rm", "-rf", str(out)], check=False)
    return row


def show(row: dict) -> None:
    slots = row["slots"]
    stages = ", ".join(f"{name} {slots / s:,.0f}/s" for name, s in row["stages"].items() if s > 0)
    print(
        f"\n{row['size']:,} personas ({slots:,} slots, {row['rejected']} rejects, {row['requests']:,} requests): "
        f"flow {row['flow_s']:.1f} s + start-up {row['startup_s']:.1f} s -> {row['personas_per_s']:,.0f} personas/s; "
        f"peak RSS {row['peak_rss_gb']:.2f} GB (PSS {row['peak_pss_gb']:.2f} GB); "
        f"endpoint CPU {row['endpoint_cpu_s']:.1f} s"
    )
    print(f"  per stage (slots / seconds; *_cpu are task seconds that overlap the stages): {stages}")
    if "ratio_to_capacity" in row:
        print(
            f"  capacity {row['baseline_requests_per_s']:,.1f} req/s (direct client, baseline); build "
            f"{row['build_requests_per_s']:,.1f} req/s -> {row['ratio_to_capacity']:.2f}x capacity, "
            f"backend busy {row['busy_share']:.0%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="comma-separated personas per build (instant endpoint)")
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per model worker")
    parser.add_argument("--flawed", type=float, default=0.1, help="share of first answers the revise round fixes")
    parser.add_argument("--capacity", type=float, default=0.0, help="tokens/s of an emulated fixed-capacity server")
    parser.add_argument("--slots", type=int, default=64, help="sequences that server decodes at once")
    parser.add_argument("--capacity-size", type=int, default=20000)
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    rows = []
    with tempfile.TemporaryDirectory(prefix="populace-bench-") as tmp:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            rows.append(measure(size, args, Path(tmp), 0.0))
            show(rows[-1])
        if args.capacity:
            rows.append(measure(args.capacity_size, args, Path(tmp), args.capacity))
            show(rows[-1])
    instant = [r for r in rows if "ratio_to_capacity" not in r]
    for small, large in itertools.pairwise(instant):
        print(
            f"per-persona cost {large['size']:,} vs {small['size']:,}: "
            f"{(large['flow_s'] / large['slots']) / (small['flow_s'] / small['slots']):.2f}x (1.00 = linear)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
