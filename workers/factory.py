"""Build the backend a config names (HTTP and vLLM backends join here)."""

from __future__ import annotations

from schemas.config import BackendConfig
from schemas.errors import BackendError
from workers.backend import LLMBackend


def create_backend(cfg: BackendConfig, threads: int | None = None) -> LLMBackend:
    if cfg.kind == "llama_cpp":
        from workers.llama_cpp_backend import LlamaCppBackend

        return LlamaCppBackend(cfg, threads=threads)
    if cfg.kind == "openai":
        from workers.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg)
    if cfg.kind == "vllm":
        from workers.vllm_backend import VLLMBackend

        return VLLMBackend(cfg)
    raise BackendError(f"unknown backend kind {cfg.kind!r}")
