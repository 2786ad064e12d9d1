"""Prefect as operators run it: a real `prefect server`, the repo's work-pool template, `prefect deploy`
of prefect.yaml from a folder `populace init` wrote, a process worker, and a deployment run with
parameter overrides that completes and leaves personas in the run folder it was told to use."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.processes import free_port, serving

pytestmark = pytest.mark.llm
PREFECT = str(Path(sys.executable).parent / "prefect")
POPULACE = str(Path(sys.executable).parent / "populace")


def run(command: list[str], cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on 127.0.0.1 with its own home and database; yields the environment to reach it."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
    }
    env.pop("PREFECT_API_KEY", None)
    with (
        (home / "server.log").open("wb") as log,
        serving(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            f"{api}/health",
            180,
            "prefect server",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ):
        yield env


def test_a_deployment_run_with_overrides_completes_on_a_process_worker(prefect_server, tmp_path):
    env = prefect_server
    project = tmp_path / "operator folder"  # not the checkout: what `populace init` gives a user
    run([POPULACE, "init", str(project)], tmp_path, env)
    run(
        [
            PREFECT,
            "work-pool",
            "create",
            "populace-cpu",
            "--type",
            "process",
            "--overwrite",
            "--base-job-template",
            "infra/prefect/process-work-pool.json",
        ],
        project,
        env,
    )
    run([PREFECT, "--no-prompt", "deploy", "--all"], project, env, timeout=600)

    expected = {d["name"]: d for d in yaml.safe_load((project / "prefect.yaml").read_text())["deployments"]}
    listed = deployments(env["PREFECT_API_URL"])
    assert set(expected) <= set(listed)
    for name, spec in expected.items():
        assert listed[name]["work_pool"] == "populace-cpu" and listed[name]["parameters"] == spec["parameters"]
        assert sorted(listed[name]["crons"]) == sorted(s["cron"] for s in spec.get("schedules", []))

    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "populace-cpu", "--type", "process"],
        cwd=tmp_path,
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out = tmp_path / "runs" / "from the worker"
    try:
        started = run(
            [
                PREFECT,
                "deployment",
                "run",
                "build_from_config/nightly-demo-build",
                "-p",
                "population=2",
                "-p",
                f"out={out}",
                "-p",
                "seed=3",
            ],
            project,
            env,
        )
        flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", started.stdout).group(1)
        state = wait_for_final_state(flow_run_id, env["PREFECT_API_URL"], timeout=600)
        assert state == "COMPLETED", (state, (tmp_path / "worker.log").read_text()[-4000:])
    finally:
        stop_worker(worker)
        worker_log.close()

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["requested"] == 2 and 1 <= manifest["produced"] <= 2  # (backfill may replace a reject)
    assert list((out / "personas").glob("part-*.parquet"))
    effective = yaml.safe_load((out / "config.yaml").read_text())
    assert effective["population"] == 2 and effective["seed"] == 3  # the run's overrides, not the file's


def stop_worker(worker: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL its session: a worker whose API went away retries it for minutes on the
    way out, and how fast a worker exits is not what this test is about."""
    worker.terminate()
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


# The server's REST API, read over HTTP: a Python process importing Prefect per poll would take a
# core from the build it waits for.
def deployments(api: str) -> dict[str, dict]:
    found = httpx.post(f"{api}/deployments/filter", json={}, timeout=30).raise_for_status().json()
    return {
        d["name"]: {
            "work_pool": d["work_pool_name"],
            "parameters": d["parameters"],
            "crons": [s["schedule"]["cron"] for s in d["schedules"]],
        }
        for d in found
    }


def wait_for_final_state(flow_run_id: str, api: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        run_state = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=30).raise_for_status().json()["state"]
        state = run_state["type"] if run_state else "unknown"
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(2)
    return state
