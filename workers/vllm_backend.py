"""vLLM engines inside Ray actors, through Ray Data LLM, for GPU clusters.

Structured output goes per row as `sampling_params.structured_outputs = {"json": schema}`
(vLLM's StructuredOutputsParams; the old guided_* fields were removed in vLLM 0.12), and
`should_continue_on_error` turns a failing row into a result with an error instead of
failing the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator

from schemas.config import BackendConfig
from workers.backend import GenerationRequest, GenerationResult

ERROR_COLUMN = "__inference_error__"


def vllm_processor_config(cfg: BackendConfig):
    from ray.data.llm import vLLMEngineProcessorConfig

    return vLLMEngineProcessorConfig(
        model_source=cfg.model,
        engine_kwargs={"max_model_len": cfg.context_size, "enable_prefix_caching": True},
        concurrency=cfg.workers,
        batch_size=cfg.batch_size,
        should_continue_on_error=True,
        chat_template_stage=True,
        tokenize_stage=True,
        detokenize_stage=True,
    )


def request_row(request: GenerationRequest) -> dict:
    """One dataset row: chat messages and per-row sampling parameters with the JSON schema."""
    return {
        "request_id": request.request_id,
        "messages": request.messages,
        "sampling_params": {
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
            "repetition_penalty": request.repeat_penalty,
            "structured_outputs": {"json": request.json_schema},
        },
    }


def result_row(row: dict) -> dict:
    """The processor's output row as the fields of a GenerationResult."""
    error = row.get(ERROR_COLUMN) or None
    return {
        "request_id": row["request_id"],
        "text": "" if error else row.get("generated_text", ""),
        "error": str(error) if error else None,
        "finish_reason": None if error else row.get("finish_reason"),
        "prompt_tokens": int(row.get("num_input_tokens") or 0),
        "completion_tokens": int(row.get("num_generated_tokens") or 0),
    }


def build_vllm_processor(cfg: BackendConfig):
    from ray.data.llm import build_processor

    return build_processor(vllm_processor_config(cfg), preprocess=lambda row: row, postprocess=result_row)


def as_result(row: dict) -> GenerationResult:
    """Rows that failed skip our postprocess and arrive raw, with the error column set."""
    fields = result_row(row) if row.get(ERROR_COLUMN) else {k: row[k] for k in GenerationResult.model_fields
                                                              if k in row}
    return GenerationResult.model_validate(fields)


def propose_with_vllm(requests: list[GenerationRequest], cfg: BackendConfig) -> Iterator[GenerationResult]:
    import ray.data

    processor = build_vllm_processor(cfg)
    for row in processor(ray.data.from_items([request_row(r) for r in requests])).iter_rows():
        yield as_result(row)


class VLLMBackend:
    """The LLMBackend view of the Ray Data vLLM processor (used by preview; builds use it directly)."""

    name = "vllm"

    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return list(propose_with_vllm(list(requests), self.cfg))
