"""Ray as a cluster, on one machine: a head and worker nodes started with `ray start` on 127.0.0.1.

Model workers are placed on the worker nodes by a custom resource in the config; killing that
node's raylet mid-propose loses nothing (the worker restarts on a replacement node and the build
completes); when no node can host a worker for longer than `backend.placement_timeout_s` the build
says so and stops, and the same command resumes once a node is back.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.helpers.processes import free_port, process_table

pytestmark = pytest.mark.llm
RAY = str(Path(sys.executable).parent / "ray")
POPULACE = str(Path(sys.executable).parent / "populace")
MODEL_NODE = "model_node"


class LocalCluster:
    """`ray start --block` processes, each in its own session so one node can be killed alone."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Clusters started with `ray start` use token authentication: every node and driver needs the token.
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "PREFECT_HOME": str(root / "prefect"),
        }
        self.nodes: dict[str, subprocess.Popen] = {}

    def start_node(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("wb")
        node = subprocess.Popen(
            [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.nodes[name] = node
        return node

    def start_head(self) -> None:
        # Short temp dir: Ray's socket paths must stay under the OS limit. Fast failure detection, so
        # a killed node is declared dead in seconds rather than tens of seconds.
        self.start_node(
            "head",
            "--head",
            "--port",
            str(self.port),
            "--num-cpus",
            "1",
            "--temp-dir",
            tempfile.mkdtemp(prefix="ray", dir="/tmp"),
            "--system-config",
            json.dumps({"health_check_period_ms": 1000, "health_check_failure_threshold": 3}),
        )
        self.wait_for_new_node(set())

    def start_model_node(self, name: str) -> None:
        known = {n["node_id"] for n in self.live_nodes()}
        self.start_node(name, "--address", self.address, "--num-cpus", "2", "--resources", json.dumps({MODEL_NODE: 1}))
        self.wait_for_new_node(known)

    def live_nodes(self) -> list[dict]:
        """`ray list nodes` (the state API, served by the dashboard of ray[default])."""
        listed = subprocess.run(
            [RAY, "list", "nodes", "--address", self.address, "--format", "json", "--detail"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if listed.returncode != 0 or not listed.stdout.lstrip().startswith("["):  # "No resource in the cluster"
            return []
        return [n for n in json.loads(listed.stdout) if n["state"] == "ALIVE"]

    def wait_for_new_node(self, known: set[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if {n["node_id"] for n in self.live_nodes()} - known:
                return
            time.sleep(1)
        pytest.fail(f"a Ray node did not come up: {(self.root / 'head.log').read_text()[-2000:]}")

    def kill_raylet(self, name: str) -> None:
        session = self.nodes[name].pid  # start_new_session: the node's processes share its session id
        raylets = [p.pid for p in process_table() if p.session == session and p.name == "raylet"]
        assert raylets, f"no raylet in {name}'s session"
        for pid in raylets:
            os.kill(pid, signal.SIGKILL)

    def engine_worker_on(self, name: str) -> bool:
        session = self.nodes[name].pid
        return any(p.session == session and p.name.startswith("ray::EngineWor") for p in process_table())

    def stop(self) -> None:
        """Every process of every node (each node's session), at once: the cluster is thrown away."""
        sessions = {node.pid for node in self.nodes.values()}
        for process in process_table():
            if process.session in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
        for node in self.nodes.values():
            node.wait(timeout=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = LocalCluster(tmp_path_factory.mktemp("ray-cluster"))
    try:
        local.start_head()
        local.start_model_node("worker-a")
        yield local
    finally:
        local.stop()


def cluster_config(tmp_path: Path, population: int, placement_timeout_s: float) -> Path:
    config = {
        "name": "cluster-test",
        "population": population,
        "seed": 21,
        "deep_attributes": 4,
        "shard_size": 2,
        "max_revise_rounds": 1,
        "max_backfill_waves": 1,
        "strata": [{"attribute": "demographics.gender", "shares": {"woman": 0.5, "man": 0.5}}],
        "backend": {
            "kind": "llama_cpp",
            "model": "smollm2-135m-instruct",
            "max_tokens": 160,
            "batch_size": 1,
            "resources": {MODEL_NODE: 1},
            "placement_timeout_s": placement_timeout_s,
        },
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_build(cluster: LocalCluster, config: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [POPULACE, "build", "--config", str(config), "--ray-address", cluster.address, "--out", str(out)],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_when_proposing(cluster: LocalCluster, node: str, build: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not cluster.engine_worker_on(node):
        assert build.poll() is None and time.monotonic() < deadline, "the model worker never ran on " + node
        time.sleep(0.5)
    time.sleep(3)  # its engine loaded (about 1 s), a batch in flight
    assert build.poll() is None
    cluster.kill_raylet(node)


def slots_accounted(out: Path) -> tuple[list[int], dict]:
    manifest = json.loads((out / "manifest.json").read_text())
    con = duckdb.connect(str(out / "corpus.duckdb"), read_only=True)
    slots = sorted(r[0] for r in con.execute("select slot from personas union all select slot from rejects").fetchall())
    con.close()
    return slots, manifest


def test_workers_run_on_the_worker_node_and_survive_losing_it(cluster, tmp_path):
    head_ids = {n["node_id"] for n in cluster.live_nodes() if n["is_head_node"]}
    config, out = cluster_config(tmp_path, population=4, placement_timeout_s=120), tmp_path / "run"
    build = start_build(cluster, config, out)
    kill_when_proposing(cluster, "worker-a", build)
    cluster.start_model_node("worker-b")  # the replacement the lost worker restarts on
    _, stderr = build.communicate(timeout=900)
    assert build.returncode == 0, stderr[-3000:]

    slots, manifest = slots_accounted(out)
    assert slots == list(range(len(slots))) and len(slots) >= 4  # every slot once: a persona or a reject
    assert manifest["produced"] <= 4 and manifest["produced"] >= 1
    placements = manifest["last_run_engines"]["placements"]
    assert manifest["last_run_engines"]["starts"] == 2 == len(placements)  # on worker-a, then on worker-b
    model_nodes = {n["node_id"] for n in cluster.live_nodes() if MODEL_NODE in n["resources_total"]}
    assert len({p["node"] for p in placements}) == 2 and not {p["node"] for p in placements} & head_ids
    assert placements[-1]["node"] in model_nodes
    # Threads from the node's own CPUs (2), not the cluster's (head 1 + worker nodes 2 each).
    assert all(p["threads"] == 2 for p in placements)


def test_a_worker_no_node_can_host_stops_the_build_with_a_message_and_the_rerun_resumes(cluster, tmp_path):
    model_nodes = [name for name, node in cluster.nodes.items() if name != "head" and node.poll() is None]
    config, out = cluster_config(tmp_path, population=2, placement_timeout_s=15), tmp_path / "run"
    build = start_build(cluster, config, out)
    kill_when_proposing(cluster, model_nodes[-1], build)  # the only node with the resource
    started = time.monotonic()
    _, stderr = build.communicate(timeout=300)
    assert build.returncode == 1, stderr[-3000:]
    message = [line for line in stderr.splitlines() if "no Ray node could host" in line]
    assert message and f"{MODEL_NODE} 1" in stderr and "placement_timeout_s" in stderr, stderr[-3000:]
    assert time.monotonic() - started < 120  # stopped after the timeout, not left waiting

    cluster.start_model_node("worker-c")
    rerun = start_build(cluster, config, out)
    _, stderr = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, stderr[-3000:]
    slots, manifest = slots_accounted(out)
    assert slots == list(range(len(slots))) and len(slots) >= 2 and manifest["produced"] >= 1
