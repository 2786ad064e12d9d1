"""The one protocol every LLM backend implements (embedded llama.cpp, HTTP, vLLM)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


class GenerationRequest(BaseModel):
    """One chat completion whose output must match json_schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str
    messages: list[dict[str, str]]
    json_schema: dict[str, Any] | None = None  # None: unconstrained (benchmarks only)
    max_tokens: int
    temperature: float
    seed: int
    repeat_penalty: float = 1.0


class GenerationResult(BaseModel):
    """Raw text is always kept, so a reject can show what the model actually wrote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str
    text: str
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0


@runtime_checkable
class LLMBackend(Protocol):
    name: str
    model: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Answer every request; a failed request becomes a result with `error`, never a raise."""
        ...
