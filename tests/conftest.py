"""Shared fixtures: Prefect's test harness and one local Ray for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from schemas.config import BackendConfig, RunConfig

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
        "strata": [{"attribute": "demographics.gender", "shares": {"woman": 0.5, "man": 0.5}}],
        "backend": BackendConfig(max_tokens=160, batch_size=2).model_dump(),
    }
    base.update(overrides)
    return RunConfig.model_validate(base)


def gpu_count() -> int:
    try:
        import faiss

        return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    except ImportError:
        return 0


def pytest_collection_modifyitems(config, items):
    if gpu_count() > 0:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU visible to FAISS (install the gpu extra on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
