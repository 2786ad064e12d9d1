"""The OpenAI-compatible backend against a real llama.cpp server on 127.0.0.1."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import orjson
import psutil
import pytest

from schemas.config import BackendConfig
from schemas.errors import UserInputError
from taxonomy.loader import load_taxonomy
from taxonomy.quotas import assign_slots, plan_quotas
from taxonomy.sampling import sample_skeletons
from tests.helpers.fault_proxy import FaultProxy
from workers.backend import GenerationRequest
from workers.factory import create_backend
from workers.proposer import build_requests

pytestmark = pytest.mark.llm
TAXONOMY = load_taxonomy("seed:core")


def requests_for(cfg: BackendConfig, count: int):
    cells = assign_slots(plan_quotas([], TAXONOMY, count), 0)
    return build_requests(sample_skeletons(TAXONOMY, cells, 0, range(count)), TAXONOMY, cfg, 0, 0)


def config(base_url: str, **overrides) -> BackendConfig:
    values = {
        "kind": "openai",
        "base_url": base_url,
        "model": "smollm2",
        "max_tokens": 160,
        "temperature": 0.0,
        "concurrency": 2,
        "timeout_s": 60,
    }
    values.update(overrides)
    return BackendConfig(**values)


def test_schema_constrained_output_with_fallback_to_json_object(llama_chat_server):
    cfg = config(llama_chat_server)
    backend = create_backend(cfg)
    requests = requests_for(cfg, 2)
    results = backend.generate(requests)
    assert backend.mode == "json_object"  # llama.cpp's server refuses json_schema; we fell back
    for request, result in zip(requests, results, strict=True):
        assert result.error is None and result.prompt_tokens > 0 and result.completion_tokens > 0
        if result.finish_reason == "stop":  # the continuation opens with the person's pronoun and a verb
            pattern = request.json_schema["properties"]["narrative"]["pattern"]
            assert re.fullmatch(pattern, orjson.loads(result.text)["narrative"])


def short_request() -> GenerationRequest:
    """A request the 135M model answers in seconds (well within the 20 s client timeout of the retry test,
    even on a busy 2-core machine), so a timeout can be tested.

    The schema bounds the answer far below max_tokens, so it always ends as whole JSON, whatever
    city the model picks."""
    return GenerationRequest(
        request_id="r-1",
        messages=[{"role": "user", "content": "Name a city as JSON."}],
        json_schema={
            "type": "object",
            "properties": {"city": {"type": "string", "pattern": "^[A-Za-z ]{1,20}$"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        max_tokens=64,
        temperature=0.0,
        seed=1,
    )


def test_retries_through_injected_faults(llama_chat_server):
    faults = ["429", "500", "reset", "garbage", "truncated", "slow"]
    # "slow" answers after 15 s, past the client's 10 s timeout; a real answer takes a few seconds.
    # Short backoffs: the retries are what this tests, not how long they wait.
    with FaultProxy(llama_chat_server, faults, slow_s=15) as proxy:
        backend = create_backend(
            config(proxy.base_url, timeout_s=10, max_retries=7, retry_backoff_s=0.05, structured_output="json_object")
        )
        result = backend.generate([short_request()])[0]
    assert result.error is None and result.retries == len(faults) and result.finish_reason == "stop"
    assert set(orjson.loads(result.text)) == {"city"}


def test_giving_up_is_a_result_not_a_crash(llama_chat_server):
    with FaultProxy(llama_chat_server, ["503", "503"]) as proxy:
        result = create_backend(config(proxy.base_url, max_retries=1, structured_output="json_object")).generate(
            [short_request()]
        )[0]
    assert result.text == "" and "503" in result.error and result.retries == 1


def test_api_key_comes_from_the_environment(llama_chat_server, monkeypatch):
    monkeypatch.setenv("POPULACE_TEST_KEY", "sk-test-123")
    cfg = config(llama_chat_server, api_key_env="POPULACE_TEST_KEY", structured_output="json_object")
    with FaultProxy(llama_chat_server) as proxy:
        backend = create_backend(
            config(proxy.base_url, api_key_env="POPULACE_TEST_KEY", structured_output="json_object")
        )
        backend.generate([short_request()])
    assert proxy.seen_headers[0]["Authorization"] == "Bearer sk-test-123"
    assert "sk-test-123" not in cfg.model_dump_json()


def test_missing_api_key_is_a_user_error(monkeypatch):
    monkeypatch.delenv("POPULACE_NO_SUCH_KEY", raising=False)
    with pytest.raises(UserInputError, match="POPULACE_NO_SUCH_KEY"):
        create_backend(config("http://127.0.0.1:9/v1", api_key_env="POPULACE_NO_SUCH_KEY"))


def test_openai_backend_needs_a_url():
    with pytest.raises(ValueError, match="base_url"):
        BackendConfig(kind="openai")


def server_connections(base_url: str) -> set[int]:
    """Local ports of this process's open TCP connections to the server."""
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    return {
        c.laddr.port
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }


def test_batches_reuse_connections_and_overlapping_batches_share_the_slots(llama_chat_server):
    """A model worker sends the next batch while the last one finishes: both calls run at once on one
    session, within `concurrency` connections, and later batches reuse those connections."""
    backend = create_backend(config(llama_chat_server, concurrency=2, structured_output="json_object"))
    requests = [short_request().model_copy(update={"request_id": f"r-{i}", "seed": i}) for i in range(4)]
    with ThreadPoolExecutor(2) as pool:  # two batches at once, as a worker's threads send them
        answers = list(pool.map(backend.generate, [requests[:2], requests[2:]]))
    assert [r.request_id for batch in answers for r in batch] == ["r-0", "r-1", "r-2", "r-3"]
    assert all(r.error is None and set(orjson.loads(r.text)) == {"city"} for batch in answers for r in batch)
    kept = server_connections(llama_chat_server)
    assert 1 <= len(kept) <= 2  # the concurrency limit holds across both batches; connections stay open
    backend.generate([requests[0]])
    assert server_connections(llama_chat_server) == kept  # the next batch went over the same connections
    backend.close()
    assert not server_connections(llama_chat_server)
