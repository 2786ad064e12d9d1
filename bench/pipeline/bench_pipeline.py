"""The pipeline's own rates: builds of growing size against the load generator, stage by stage.

With an instant endpoint (bench/loadgen/persona_server.py answering at once) everything measured is
populace's own work: sampling, prompt building, the HTTP client, validation, revising, settling,
dedup and writing. With --capacity the endpoint emulates a server of fixed throughput, and the
build is compared with that capacity measured in the same run by a plain client at the same
concurrency (the baseline), in completion tokens/s (a server's capacity is tokens/s; the plain client's
fixed prompt gets shorter answers than the build's), so the ratio says how much of the backend the
pipeline keeps busy.

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
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
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


# The build's log line as its first wave starts (flows/build.py): the driver's start-up is behind it.
FIRST_WAVE = " - wave 0: "


def process_role(proc: psutil.Process, root: psutil.Process) -> str:
    """What a process of the build's tree does: the driver, a Ray daemon, or a Ray worker by its title
    (Ray retitles workers `ray::<task or actor>`; an idle one reads `ray::IDLE`)."""
    if proc.pid == root.pid:
        return "driver"
    title = " ".join(proc.cmdline()[:1]) or proc.name()
    if title.startswith("ray::"):
        return title.split()[0]
    name = proc.name()
    if "python" in name:
        module = next((arg for arg in proc.cmdline()[1:] if arg.endswith(".py") or "." in arg), "python")
        return Path(module).name
    return name


class TreeSampler:
    """Peak RSS and PSS of the build's process tree, and the CPU seconds each role of it used.

    RSS counts a shared page (Ray's object store, mapped by every worker) once per process that maps
    it; PSS splits it among them, so the PSS sum is the memory the tree really holds."""

    # Seconds between PSS passes: reading smaps_rollup walks every page table (~90 ms of CPU per pass
    # over a build's tree on 2 cores), so PSS is read every 2 s and whenever RSS passes the highest RSS
    # at which PSS was read by 3%.
    PSS_EVERY, RSS_RISE = 2.0, 1.03

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.peak_rss = self.peak_pss = 0
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (role, CPU seconds so far)
        self.pss_at_peak: dict[str, float] = {}  # role -> its PSS when the tree's PSS peaked
        self.started = time.monotonic()
        self.last_pss = -self.PSS_EVERY
        self.rss_at_pss = 0  # the highest tree RSS at which PSS was read
        self.timeline: list[tuple[float, float, float]] = []  # (seconds, tree PSS, driver PSS) per PSS pass
        self.own_cpu = 0.0  # CPU seconds this process spent sampling (taken from the build's cores)
        self.driver_cpu_at_first_wave: float | None = None  # the driver's CPU seconds when wave 0 began

    def sample(self) -> None:
        rss = 0
        roles: dict[int, tuple[psutil.Process, str]] = {}
        for proc in [self.root, *self.root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a process that ended between the listing and the read
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                role = process_role(proc, self.root)
                known = self.cpu.get(proc.pid, (role, 0.0))[0]
                if known != role and role == "ray::IDLE":  # keep what the worker was seen doing
                    role = known
                self.cpu[proc.pid] = (role, times.user + times.system)
                roles[proc.pid] = (proc, role)
        now = time.monotonic() - self.started
        if rss > self.RSS_RISE * self.rss_at_pss or now - self.last_pss >= self.PSS_EVERY:
            self.sample_pss(roles.values(), now)
            self.rss_at_pss = max(self.rss_at_pss, rss)
        self.peak_rss = max(self.peak_rss, rss)

    def sample_pss(self, processes: Iterable[tuple[psutil.Process, str]], now: float) -> None:
        pss = 0
        by_role: dict[str, float] = {}
        for proc, role in processes:
            with contextlib.suppress(psutil.Error):
                info = proc.memory_full_info()
                proc_pss = getattr(info, "pss", info.rss)  # PSS is Linux-only
                pss += proc_pss
                by_role[role] = by_role.get(role, 0.0) + proc_pss
        self.last_pss = now
        self.timeline.append((now, pss, by_role.get("driver", 0.0)))
        if pss > self.peak_pss:
            self.peak_pss, self.pss_at_peak = pss, by_role

    def cpu_by_role(self) -> dict[str, float]:
        roles: dict[str, float] = {}
        for role, seconds in self.cpu.values():
            roles[role] = roles.get(role, 0.0) + seconds
        return dict(sorted(((r, round(s, 1)) for r, s in roles.items()), key=lambda item: -item[1]))


def run_build(config: Path, out: Path) -> tuple[float, TreeSampler, list[tuple[float, str]]]:
    """Wall seconds, the process tree's sampler (every 0.25 s) and the build's log lines with the
    seconds at which each arrived (to say which stage the memory peaked in)."""
    started = time.monotonic()
    sampler_cpu = time.process_time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "build", "--config", str(config), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler = TreeSampler(psutil.Process(proc.pid))
    lines: list[tuple[float, str]] = []

    def read_lines() -> None:
        for line in proc.stdout or []:
            lines.append((time.monotonic() - sampler.started, line.rstrip()))

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    scanned = 0  # log lines already looked at for the first wave's
    while proc.poll() is None:
        sampler.sample()
        if sampler.driver_cpu_at_first_wave is None:
            arrived = len(lines)
            if any(FIRST_WAVE in line for _, line in lines[scanned:arrived]):
                sampler.driver_cpu_at_first_wave = sampler.cpu.get(proc.pid, ("driver", 0.0))[1]
            scanned = arrived
        time.sleep(0.25)
    reader.join()
    sampler.own_cpu = time.process_time() - sampler_cpu
    if proc.returncode != 0:
        tail = "\n".join(line for _, line in lines[-40:])
        raise RuntimeError(f"build failed ({proc.returncode}):\n{tail}")
    return time.monotonic() - started, sampler, lines


def driver_cpu_from_first_wave(tree: TreeSampler) -> float | None:
    """The driver's CPU seconds from its first wave's log line to its exit: what coordinating the
    stages costs it, without the imports and start-up before (None if the line was not seen)."""
    if tree.driver_cpu_at_first_wave is None:
        return None
    return round(tree.cpu[tree.root.pid][1] - tree.driver_cpu_at_first_wave, 1)


def driver_peak(tree: TreeSampler, lines: list[tuple[float, str]]) -> dict:
    """When the driver's PSS peaked and the last log line before it (the stage it was in)."""
    if not tree.timeline:
        return {}
    at, _, pss = max(tree.timeline, key=lambda sample: sample[2])
    before = [line for seconds, line in lines if seconds <= at and line.strip()]
    return {"gb": round(pss / 2**30, 2), "at_s": round(at, 1), "after_line": before[-1][-160:] if before else ""}


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
        baseline = baseline_tokens = None
        if tokens_per_s:
            # Capacity is tokens/s: the plain client's answers (one fixed prompt) are not as long as the
            # build's, so the ratio compares completion tokens/s; requests/s are shown beside it.
            endpoint.stats(reset=True)
            started = time.monotonic()
            baseline = asyncio.run(direct_load(endpoint.url, min(size, 4000), args.workers * args.concurrency))
            baseline_tokens = endpoint.stats()["completion_tokens"] / (time.monotonic() - started)
        endpoint.stats(reset=True)
        cpu_before = endpoint.cpu_seconds()
        config = work / f"config-{size}-{int(tokens_per_s)}.yaml"
        out = work / f"run-{size}-{int(tokens_per_s)}"
        subprocess.run(["rm", "-rf", str(out)], check=True)  # a kept folder from before would resume
        config.write_text(yaml.safe_dump(build_config(size, args.shard_size, work, args.workers, args.concurrency)))
        wall, tree, lines = run_build(config, out)
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
        "peak_rss_gb": round(tree.peak_rss / 2**30, 2),
        "peak_pss_gb": round(tree.peak_pss / 2**30, 2),
        "cpu_s_by_role": tree.cpu_by_role(),
        "driver_cpu_from_first_wave_s": driver_cpu_from_first_wave(tree),
        "pss_gb_at_peak_by_role": {
            role: round(b / 2**30, 2) for role, b in sorted(tree.pss_at_peak.items(), key=lambda item: -item[1])
        },
        "driver_peak": driver_peak(tree, lines),
        # (seconds, tree PSS GB, driver PSS GB) every ~2 s, to see which stage holds what.
        "pss_timeline": [(round(t, 1), round(p / 2**30, 2), round(d / 2**30, 2)) for t, p, d in tree.timeline],
        "requests": served["requests"],
        "endpoint_cpu_s": round(server_cpu, 1),
        "sampler_cpu_s": round(tree.own_cpu, 1),
    }
    if tokens_per_s:
        row["baseline_requests_per_s"] = round(baseline, 1)
        row["build_requests_per_s"] = round(served["requests"] / flow_s, 1)
        row["baseline_tokens_per_s"] = round(baseline_tokens, 1)
        row["build_tokens_per_s"] = round(served["completion_tokens"] / flow_s, 1)
        row["ratio_to_capacity"] = round(served["completion_tokens"] / flow_s / baseline_tokens, 3)
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
        f"endpoint CPU {row['endpoint_cpu_s']:.1f} s, this sampler's CPU {row['sampler_cpu_s']:.1f} s"
    )
    print(f"  per stage (slots / seconds; *_cpu are task seconds that overlap the stages): {stages}")
    roles = ", ".join(f"{role} {seconds:.1f}" for role, seconds in row["cpu_s_by_role"].items() if seconds >= 0.5)
    print(f"  CPU seconds by process (start-up included): {roles}")
    driver = row["driver_cpu_from_first_wave_s"]
    if driver is not None:
        per_1000 = driver / row["produced"] * 1000 if row["produced"] else 0.0
        print(f"  driver CPU from the first wave on: {driver:.1f} s ({per_1000:.2f} s per 1,000 personas)")
    memory = ", ".join(f"{role} {gb:.2f}" for role, gb in row["pss_gb_at_peak_by_role"].items() if gb >= 0.05)
    print(f"  PSS (GB) by process at the peak: {memory}")
    peak = row["driver_peak"]
    if peak:
        print(f"  driver PSS peaked at {peak['gb']:.2f} GB, {peak['at_s']:.0f} s in, after: {peak['after_line']}")
    if "ratio_to_capacity" in row:
        print(
            f"  capacity {row['baseline_tokens_per_s']:,.0f} tokens/s, {row['baseline_requests_per_s']:,.1f} req/s "
            f"(direct client, baseline); build {row['build_tokens_per_s']:,.0f} tokens/s, "
            f"{row['build_requests_per_s']:,.1f} req/s -> {row['ratio_to_capacity']:.2f}x capacity (tokens/s), "
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
    parser.add_argument("--keep", type=Path, help="build in this folder and keep the run folders there")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    missing = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m) is None]
    if missing:  # the load generator then takes about twice the CPU per request, CPU the build shares
        print(f"note: the load generator runs without {' and '.join(missing)}: install the bench extra (make bench)")
    rows = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="populace-bench-"))
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
