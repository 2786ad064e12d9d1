"""The embedded llama.cpp backend on the real packaged model."""

import re

import orjson
import pytest

from schemas.config import BackendConfig
from schemas.records import proposal_json_schema
from taxonomy.loader import load_taxonomy
from taxonomy.quotas import assign_slots, plan_quotas
from taxonomy.sampling import sample_skeletons
from workers.backend import GenerationRequest, LLMBackend
from workers.models import resolve_model_path
from workers.proposer import build_requests

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def backend():
    from workers.factory import create_backend

    return create_backend(BackendConfig(max_tokens=200, temperature=0.0, threads_per_worker=2))


def test_packaged_model_resolves_without_download():
    path = resolve_model_path("smollm2-135m-instruct")
    assert path.is_file() and path.suffix == ".gguf" and "site-packages" in str(path)


def test_output_is_constrained_by_the_proposal_schema(backend):
    assert isinstance(backend, LLMBackend)
    taxonomy = load_taxonomy("seed:core")
    skeletons = sample_skeletons(taxonomy, assign_slots(plan_quotas([], taxonomy, 2), 0), 0, range(2))
    requests = build_requests(skeletons, taxonomy, BackendConfig(max_tokens=200, temperature=0.0), 0, 0)
    results = backend.generate(requests)
    assert [r.request_id for r in results] == [s.persona_id for s in skeletons]
    for result in results:
        assert result.error is None and result.completion_tokens > 0 and result.prompt_tokens > 0
        if result.finish_reason == "stop":  # a length stop may cut the JSON; that is a reject, not a crash
            data = orjson.loads(result.text)
            assert set(data) <= set(proposal_json_schema()["properties"])
            # The per-request schema holds the continuation to open with the person's pronoun and a verb.
            pattern = next(r.json_schema for r in requests if r.request_id == result.request_id)
            assert re.fullmatch(pattern["properties"]["narrative"]["pattern"], data["narrative"])
    # Whether a proposal ends before max_tokens depends on what the model writes; an answer the schema
    # bounds far below max_tokens cannot be cut, so it must stop with JSON that the schema allows.
    bounded = GenerationRequest(
        request_id="bounded",
        messages=[{"role": "user", "content": "Name a city as JSON."}],
        json_schema={
            "type": "object",
            "properties": {"city": {"type": "string", "pattern": "^[A-Za-z ]{1,20}$"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        max_tokens=160,
        temperature=0.0,
        seed=3,
    )
    result = backend.generate([bounded])[0]
    assert result.error is None and result.finish_reason == "stop", result
    data = orjson.loads(result.text)
    assert set(data) == {"city"} and re.fullmatch(r"[A-Za-z ]{1,20}", data["city"])


def test_same_seed_decodes_the_same(backend):
    taxonomy = load_taxonomy("seed:core")
    skeletons = sample_skeletons(taxonomy, assign_slots(plan_quotas([], taxonomy, 1), 0), 0, range(1))
    cfg = BackendConfig(max_tokens=40, temperature=0.8)
    first = backend.generate(build_requests(skeletons, taxonomy, cfg, 5, 0))[0].text
    second = backend.generate(build_requests(skeletons, taxonomy, cfg, 5, 0))[0].text
    assert first == second
