"""Embedded llama.cpp backend: a GGUF model in this process, JSON-schema-constrained output."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from schemas.config import BackendConfig
from schemas.errors import BackendError
from workers.backend import GenerationRequest, GenerationResult
from workers.models import GEMMA_NAME, resolve_model_path

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage, CreateChatCompletionResponse


class LlamaCppBackend:
    """Loads the model once; answers requests one after another (llama.cpp uses the threads)."""

    name = "llama_cpp"

    def __init__(self, cfg: BackendConfig, threads: int | None = None) -> None:
        from llama_cpp import Llama  # heavy import, kept out of module import time

        self.model = cfg.model
        self.path = resolve_model_path(cfg.model)
        # The packaged Gemma is a base model without a chat template in its GGUF.
        chat_format = "gemma" if cfg.model == GEMMA_NAME else None
        try:
            self._llm = Llama(
                model_path=str(self.path),
                n_ctx=cfg.context_size,
                n_threads=threads or cfg.threads_per_worker or max(1, (os.cpu_count() or 1)),
                chat_format=chat_format,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {self.path}: {exc}") from exc

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return [self._generate_one(request) for request in requests]

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        # Reusing the KV cache of the previous prompt changes float rounding, and with it the
        # sampled tokens: a clean state makes (prompt, seed) decode the same way every time.
        self._llm.reset()  # type: ignore[no-untyped-call]  # llama_cpp leaves reset() unannotated
        try:
            out = self._llm.create_chat_completion(
                # OpenAI-style {role, content} messages: the shapes llama_cpp's message TypedDicts describe
                messages=cast("list[ChatCompletionRequestMessage]", request.messages),
                response_format=(
                    {"type": "json_object", "schema": request.json_schema} if request.json_schema is not None else None
                ),
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=request.seed,
                repeat_penalty=request.repeat_penalty,
            )
        except (ValueError, RuntimeError) as exc:
            # A prompt too long for the context, for example: this row fails, the batch goes on.
            return GenerationResult(request_id=request.request_id, text="", error=f"llama.cpp: {exc}")
        response = cast("CreateChatCompletionResponse", out)  # one response, not chunks: stream is off
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return GenerationResult(
            request_id=request.request_id,
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
        )
