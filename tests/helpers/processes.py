"""The machine's process table from /proc (Linux), for tests that kill what a build started."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str  # the process title's first 15 characters (ray::EngineWork, raylet, python3, ...)
    session: int


def process_table() -> list[ProcessInfo]:
    table = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it ended while we looked
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        table.append(ProcessInfo(int(stat.parent.name), name, int(rest.split()[3])))
    return table


def wait_for_http(url: str, process, timeout: float, what: str) -> None:
    """Poll `url` until it answers 200; fail the test if `process` exits or `timeout` passes first."""
    import time

    import httpx
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.5)
        if process.poll() is not None:
            pytest.fail(f"{what} exited with code {process.returncode} before answering {url}")
    pytest.fail(f"{what} did not answer {url} within {timeout:.0f} s")


@contextmanager
def serving(command: list[str], health_url: str, timeout: float, what: str, **popen_kwargs):
    """Run a server process until the block ends; enter once `health_url` answers 200."""
    import subprocess

    server = subprocess.Popen(command, **popen_kwargs)
    try:
        wait_for_http(health_url, server, timeout, what)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_llama_server(*extra: str):
    """A real llama.cpp OpenAI-compatible server on 127.0.0.1 with the packaged model.

    Yields its /v1 base URL; skips when llama-cpp-python[server] (dev extra) is absent."""
    if importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python[server] is not installed (dev extra)")
    from workers.models import resolve_model_path

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(resolve_model_path("smollm2-135m-instruct")),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "2",
        "--model_alias",
        "smollm2",
        *extra,
    ]
    base = f"http://127.0.0.1:{port}/v1"
    with serving(
        command, f"{base}/models", 120, "the llama.cpp server", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ):
        yield base
