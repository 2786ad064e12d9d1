"""Shared fixtures: Prefect's test harness and one local Ray for the whole session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from schemas.config import BackendConfig, RunConfig
from tests.processes import serving

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def tiny_config(**overrides) -> RunConfig:
    """A config small enough for tests on the real model: short outputs, a few slots."""
    base = {
        "name": "tiny",
        "population": 3,
        "seed": 11,
        "shard_size": 2,
        "max_revise_rounds": 1,
        "deep_attributes": 4,
        "strata": [{"attribute": "demographics.gender", "shares": {"woman": 0.5, "man": 0.5}}],
        "backend": BackendConfig(max_tokens=160, batch_size=2).model_dump(),
    }
    base.update(overrides)
    return RunConfig.model_validate(base)


def gpu_count() -> int:
    """CUDA GPUs visible here: torch's count where torch is installed, else the GPUs nvidia-smi lists.

    (FAISS cannot tell: the default faiss-cpu answers 0 on a GPU machine too.)"""
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        pass
    if shutil.which("nvidia-smi") is None:
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines()) if listing.returncode == 0 else 0


def pytest_collection_modifyitems(config, items):
    if gpu_count() > 0:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible here (run on a GPU machine with the gpu extra)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_llama_server(*extra: str):
    """A real llama.cpp OpenAI-compatible server on 127.0.0.1 with the packaged model.

    Yields its /v1 base URL; skips when llama-cpp-python[server] (dev extra) is absent."""
    import importlib.util

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


@pytest.fixture(scope="session")
def llama_chat_server():
    yield from start_llama_server("--n_ctx", "2048")
