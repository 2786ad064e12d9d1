"""Build the backend a config names (HTTP and vLLM backends join here)."""

from __future__ import annotations

import importlib
from typing import Any

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
    if cfg.kind == "plugin":
        return create_plugin_backend(cfg, threads)
    raise BackendError(f"unknown backend kind {cfg.kind!r}")


def takes_overlapping_batches(cfg: BackendConfig) -> bool:
    """Whether the backend's generate() may run for several batches at once in one worker: an HTTP
    client shares its connections and concurrency slots among them, so a new batch starts while the
    last one's slowest requests finish. An in-process engine (llama.cpp, vLLM, a plugin) takes one."""
    return cfg.kind == "openai"


def check_model(cfg: BackendConfig) -> None:
    """A model the backend cannot find is a UserInputError now, before a run folder or a worker exists."""
    if cfg.kind == "llama_cpp":
        from workers.models import resolve_model_path

        resolve_model_path(cfg.model)
    elif cfg.kind == "vllm":
        from workers.hf_models import model_source

        model_source(cfg.model)


def create_plugin_backend(cfg: BackendConfig, threads: int | None) -> LLMBackend:
    """Import `module:name` from the config and call it; a plugin that cannot load is a clear error."""
    module_name, _, attribute = (cfg.factory or "").partition(":")
    try:
        factory: Any = importlib.import_module(module_name)  # a module, then the attribute the config names
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as exc:
        raise BackendError(
            f"backend.factory {cfg.factory!r} cannot be loaded ({exc}); install the module on every "
            "Ray worker or fix the name"
        ) from exc
    backend = factory(cfg, threads)
    if not isinstance(backend, LLMBackend):
        raise BackendError(
            f"backend.factory {cfg.factory!r} returned {type(backend).__name__}, which lacks "
            "name, model and generate(requests)"
        )
    return backend
