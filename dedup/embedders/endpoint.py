"""Embeddings from any OpenAI-compatible /v1/embeddings endpoint (vllm serve, llama.cpp server, ...)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence

import httpx
import numpy as np

from dedup.embedders.base import in_batches, normalize_rows
from schemas.errors import BackendError, UserInputError

RETRY_STATUS = {429, 500, 502, 503, 504}
DEFAULT_MODEL = "default"  # the model name sent when the config names none


def endpoint_name(model: str | None) -> str:
    return f"endpoint:{model or DEFAULT_MODEL}"


def pool_tokens(embedding: list[float] | list[list[float]]) -> np.ndarray:
    """One vector per input. llama.cpp's server answers per-token vectors for models without a
    pooling layer; those are mean-pooled here so every endpoint looks the same to the caller."""
    array = np.asarray(embedding, dtype=np.float32)
    return array.mean(axis=0) if array.ndim == 2 else array


class EndpointEmbedder:
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key_env: str | None = None,
        batch_size: int = 64,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
    ) -> None:
        headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise UserInputError(
                    "run config",
                    "embedder.api_key_env",
                    f"${api_key_env} is not set",
                    f"export {api_key_env}=<key> before running",
                )
            headers["Authorization"] = f"Bearer {key}"  # never logged, never written
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.model = model or DEFAULT_MODEL
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.name = endpoint_name(self.model)
        self.dimension = int(self._request(["dimension probe"]).shape[1])

    def _request(self, batch: list[str]) -> np.ndarray:
        """One POST with retries (backoff and jitter) on 429, 5xx, dropped connections and bad bodies."""
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.post("/embeddings", json={"model": self.model, "input": batch})
            except httpx.TransportError as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            else:
                if response.status_code in RETRY_STATUS:
                    problem = f"HTTP {response.status_code}"
                elif response.is_error:
                    raise BackendError(
                        f"embedding endpoint answered HTTP {response.status_code}: {response.text[:200]}"
                    )
                else:
                    try:
                        rows = sorted(response.json()["data"], key=lambda item: item["index"])
                        return np.vstack([pool_tokens(row["embedding"]) for row in rows])
                    except (KeyError, TypeError, ValueError) as exc:
                        problem = f"unreadable body ({exc.__class__.__name__})"
            if attempt < self.max_attempts:
                time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random()))
        raise BackendError(f"embedding endpoint failed {self.max_attempts} times; last: {problem}")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalize_rows(np.concatenate([self._request(batch) for batch in in_batches(texts, self.batch_size)]))

    def close(self) -> None:
        self._client.close()
