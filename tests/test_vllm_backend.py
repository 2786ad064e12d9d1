"""vLLM through Ray Data LLM: a contract test that runs without a GPU, and a GPU test."""

from __future__ import annotations

import json
import os

import pytest

from schemas.config import BackendConfig
from schemas.records import proposal_json_schema
from workers.backend import GenerationRequest
from workers.vllm_backend import ERROR_COLUMN, as_result, request_row, vllm_processor_config

pytest.importorskip("aiohttp", reason="ray.data.llm needs aiohttp (dev extra)")

REQUEST = GenerationRequest(request_id="p-1", messages=[{"role": "user", "content": "hi"}],
                            json_schema=proposal_json_schema(), max_tokens=64, temperature=0.5, seed=7,
                            repeat_penalty=1.1)


@pytest.fixture()
def local_model_dir(tmp_path):
    """A model folder with a config.json, so building the processor reads no hub."""
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    return tmp_path


def test_processor_config_is_accepted_by_the_pinned_ray(local_model_dir):
    cfg = BackendConfig(kind="vllm", model=str(local_model_dir), workers=2, batch_size=16)
    config = vllm_processor_config(cfg)  # Ray validates every field here
    assert config.should_continue_on_error is True
    assert config.concurrency == 2 and config.batch_size == 16


def test_processor_builds_from_that_config(local_model_dir):
    pytest.importorskip("torch", reason="Ray Data LLM reads the model config through transformers, which needs "
                        "torch here; the gpu extra brings it")
    from ray.data.llm import build_processor

    config = vllm_processor_config(BackendConfig(kind="vllm", model=str(local_model_dir)))
    assert build_processor(config, preprocess=lambda row: row, postprocess=lambda row: row) is not None


def test_per_row_sampling_params_carry_the_schema():
    row = request_row(REQUEST)
    params = row["sampling_params"]
    assert params["structured_outputs"] == {"json": proposal_json_schema()}
    assert {"guided_json", "guided_decoding"}.isdisjoint(params)  # removed in vLLM 0.12
    assert (params["temperature"], params["max_tokens"], params["seed"]) == (0.5, 64, 7)


def test_a_failed_row_becomes_an_error_result():
    result = as_result({"request_id": "p-1", ERROR_COLUMN: "CUDA out of memory"})
    assert result.error == "CUDA out of memory" and result.text == ""
    ok = as_result({"request_id": "p-2", "text": "{}", "error": None, "prompt_tokens": 3, "completion_tokens": 2})
    assert ok.error is None and ok.completion_tokens == 2


@pytest.mark.gpu
def test_vllm_generates_schema_valid_json(local_ray):
    model = os.environ.get("POPULACE_VLLM_TEST_MODEL")
    if not model:
        pytest.skip("set POPULACE_VLLM_TEST_MODEL to a local instruct model folder (no downloads at run time)")
    from workers.vllm_backend import VLLMBackend

    result = VLLMBackend(BackendConfig(kind="vllm", model=model, max_tokens=200)).generate([REQUEST])[0]
    assert result.error is None and json.loads(result.text)["name"]
