"""Prefect's temporary API started at a command's first line: flows run against it, it ends with the command,
and where the user's settings name an API or forbid temporary servers it is stopped unused.

Each case runs in a child process with its own PREFECT_HOME: Prefect reads its settings once per
process, and the server migrates a database of its own there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson

from flows.prefect_api import start_prefect_api_early
from foundation.process_tree import read_stat
from tests.helpers.paths import REPO

FLOW_AGAINST_EARLY_API = """
import json
from flows.prefect_api import start_prefect_api_early, using_prefect_api

api = start_prefect_api_early()
server_pid = api.process.pid
from prefect import flow
from prefect.client.orchestration import get_client

@flow(name="early-api-check")
def answer():
    return 42

with using_prefect_api(api):
    result = answer()
    with get_client(sync_client=True) as client:
        names = [run.name for run in client.read_flow_runs()]
        flows = [f.name for f in client.read_flows()]
        url = str(client.api_url)
print(json.dumps({"result": result, "url": url, "early_url": api.url, "flows": flows, "runs": len(names),
                  "server_pid": server_pid}))
"""

STOPPED_UNUSED = """
import json, os
from flows.prefect_api import start_prefect_api_early, using_prefect_api

api = start_prefect_api_early()
process = api.process
os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"  # read when Prefect is imported, below
with using_prefect_api(api):
    from prefect.settings import PREFECT_API_URL
    print(json.dumps({"stopped": api.process is None, "exit": process.poll(), "api_url": PREFECT_API_URL.value()}))
"""


def run_script(script: str, home: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Starting temporary server" not in done.stderr  # Prefect did not start a server of its own
    result: dict = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_flow_runs_against_the_api_started_early_which_ends_with_the_command(tmp_path):
    seen = run_script(FLOW_AGAINST_EARLY_API, tmp_path / "prefect")
    assert seen["result"] == 42
    assert seen["url"].rstrip("/") == seen["early_url"]
    assert seen["flows"] == ["early-api-check"] and seen["runs"] == 1  # recorded by the early server
    deadline = time.monotonic() + 10
    while read_stat(seen["server_pid"]) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert read_stat(seen["server_pid"]) is None


def test_the_early_api_is_stopped_unused_where_settings_forbid_a_temporary_server(tmp_path):
    seen = run_script(STOPPED_UNUSED, tmp_path / "prefect")
    assert seen["stopped"] and seen["exit"] is not None
    assert not seen["api_url"]  # Prefect's settings were left as they were


def test_nothing_starts_early_where_the_environment_names_an_api(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert start_prefect_api_early() is None
