"""Run configs for tests on the real model."""

from __future__ import annotations

from schemas.config import BackendConfig, RunConfig


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
