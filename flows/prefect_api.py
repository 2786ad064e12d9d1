"""Prefect's temporary API server, started at a command's first line instead of at its first flow.

With no API configured, Prefect starts a temporary server (uvicorn on its server app) when a flow
first needs it, and waits for it: ~10 s on 2 cores, after the command has already spent as long
importing Prefect, Ray and the stages, and the command imports the server's own modules too (4.5 s
of FastAPI and SQLAlchemy it never uses). Started here, before those imports, the same server comes
up on the other core while the command imports and checks its inputs, and the command talks to it
as to any configured API. Where the user configured an API (PREFECT_API_URL in the environment or a
Prefect profile), or forbids temporary servers, the early one is stopped unused and Prefect decides
as always; if it fails to come up, Prefect starts its own.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# What Prefect's own SubprocessASGIServer runs (prefect.server.api.server), with its settings.
SERVER_APP = "prefect.server.api.server:create_app"
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STOP_GRACE_S = 5.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EarlyPrefectApi:
    """A temporary Prefect API server this process started and stops at exit."""

    def __init__(self, app_dir: Path) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(app_dir),
                "--factory",
                SERVER_APP,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env={**os.environ, **SERVER_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Registered before Prefect is imported, so it runs after Prefect's own exit handlers
        # (which send the last logs and events to this server).
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait_until_ready(self, timeout_s: float) -> bool:
        """True once the server answers its health check; False if it exits or times out first."""
        deadline = time.monotonic() + timeout_s
        while self.process is not None and self.process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_prefect_api_early() -> EarlyPrefectApi | None:
    """Start the temporary server now, unless the environment names an API (then nothing starts).

    Call first in a command that runs flows, before it imports Prefect or the stages."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    spec = importlib.util.find_spec("prefect")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return EarlyPrefectApi(Path(next(iter(spec.submodule_search_locations))).parent)


@contextlib.contextmanager
def using_prefect_api(early: EarlyPrefectApi | None) -> Iterator[None]:
    """Run the block's flows against the early server where Prefect would start a temporary one."""
    if early is None:
        yield
        return
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        PREFECT_UI_URL,
        temporary_settings,
    )

    wanted = not PREFECT_API_URL.value() and PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value()
    if not wanted or not early.wait_until_ready(float(os.environ.get(STARTUP_TIMEOUT_ENV, "120"))):
        early.stop()
        yield
        return
    # No UI link in the logs: like Prefect's own temporary server, this one serves no UI and ends with the command.
    with temporary_settings(updates={PREFECT_API_URL: early.url, PREFECT_UI_URL: ""}):
        yield
