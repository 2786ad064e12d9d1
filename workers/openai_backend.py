"""Any OpenAI-compatible chat endpoint (vllm serve, SGLang, llama.cpp server, Ollama, hosted APIs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import weakref
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson

from schemas.config import BackendConfig
from schemas.errors import BackendError, UserInputError
from workers.backend import GenerationRequest, GenerationResult

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, read whole."""

    status_code: int
    text: str


def refuses_json_schema(response: Reply) -> bool:
    """A refusal of the request format, not a transient failure: 400/422, or a 500 whose body
    blames response_format (llama.cpp's server). A plain 500 is retried as it is, so a flaky
    server never downgrades a vLLM endpoint to unconstrained json_object."""
    if response.status_code in (400, 422):
        return True
    return response.status_code == 500 and "response_format" in response.text


class ClientLoop:
    """An event loop on a daemon thread holding one aiohttp session and one concurrency limit.

    Every generate() call, from any thread, runs its requests on this loop: connections are kept
    alive across batches (a session per batch opened a TCP connection per request), and batches
    that overlap share `concurrency` slots, so the next batch's requests start as soon as the last
    one's finish instead of after its slowest request.
    """

    def __init__(self, cfg: BackendConfig, headers: dict[str, str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openai-client", daemon=True)
        self.thread.start()
        self.session, self.limit = self.call(self._open(cfg, headers))

    @staticmethod
    async def _open(cfg: BackendConfig, headers: dict[str, str]) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        # aiohttp: httpx's connection pool costs milliseconds of CPU per request at this concurrency,
        # which capped one worker at a few hundred requests per second.
        connector = aiohttp.TCPConnector(limit=cfg.concurrency)
        timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers={**headers, "Content-Type": "application/json"}
        )
        return session, asyncio.Semaphore(cfg.concurrency)

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and wait for its result (from any thread but the loop's)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        # At interpreter exit the loop's thread may be gone: then there is nothing left to close.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.session.close(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class OpenAIBackend:
    """Async requests with bounded concurrency; retries with exponential backoff and jitter.

    Structured output: `json_schema` first; an endpoint that refuses it (the llama.cpp server
    answers 500) is asked with `json_object` + `schema` instead, and keeps that mode.
    generate() may be called from several threads at once (a model worker takes overlapping
    batches); they share one session and one concurrency limit.
    """

    name = "openai"

    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.mode = "json_schema" if cfg.structured_output == "auto" else cfg.structured_output
        headers: dict[str, str] = {}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise UserInputError(
                    "run config",
                    "backend.api_key_env",
                    f"${cfg.api_key_env} is not set",
                    f"export {cfg.api_key_env}=<key> before running",
                )
            headers["Authorization"] = f"Bearer {key}"  # kept in memory only
        self.client = ClientLoop(cfg, headers)
        # The loop's thread and session end with the backend (or at exit), without an explicit close().
        self._finalizer = weakref.finalize(self, self.client.close)

    def close(self) -> None:
        self._finalizer()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return self.client.call(self._generate_all(requests))

    async def _generate_all(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        async def one(request: GenerationRequest) -> GenerationResult:
            async with self.client.limit:
                return await self._generate_one(self.client.session, request)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _post(self, client: aiohttp.ClientSession, payload: dict[str, Any]) -> Reply:
        if self.cfg.base_url is None:  # BackendConfig refuses an openai backend without one
            raise BackendError("an openai backend needs base_url")
        url = f"{self.cfg.base_url.rstrip('/')}/chat/completions"
        async with client.post(url, data=orjson.dumps(payload)) as response:
            return Reply(response.status, await response.text(errors="replace"))

    def _payload(self, request: GenerationRequest, mode: str) -> dict[str, Any]:
        response_format: dict[str, Any]
        if mode == "json_schema":
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": "persona", "schema": request.json_schema, "strict": True},
            }
        else:
            response_format = {"type": "json_object", "schema": request.json_schema}
        return {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
            "response_format": response_format,
        }

    async def _generate_one(self, client: aiohttp.ClientSession, request: GenerationRequest) -> GenerationResult:
        problem, retries = "", 0
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                retries += 1
                await asyncio.sleep(min(30.0, self.cfg.retry_backoff_s * 2 ** (attempt - 1)) * (0.5 + random.random()))
            try:
                response = await self._post(client, self._payload(request, self.mode))
                auto = self.cfg.structured_output == "auto"
                if auto and self.mode == "json_schema" and refuses_json_schema(response):
                    fallback = await self._post(client, self._payload(request, "json_object"))
                    if fallback.status_code < 400:
                        self.mode = "json_object"
                    response = fallback
            except (aiohttp.ClientError, TimeoutError) as exc:  # connection refused or reset, timeouts
                problem = f"{exc.__class__.__name__}"
                continue
            if response.status_code in RETRY_STATUS:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                return GenerationResult(
                    request_id=request.request_id,
                    text="",
                    retries=retries,
                    error=f"HTTP {response.status_code}: {response.text[:200]}",
                )
            try:
                body = orjson.loads(response.text)
                choice = body["choices"][0]
                usage = body.get("usage") or {}
                return GenerationResult(
                    request_id=request.request_id,
                    text=choice["message"].get("content") or "",
                    finish_reason=choice.get("finish_reason"),
                    prompt_tokens=usage.get("prompt_tokens", 0),
                    completion_tokens=usage.get("completion_tokens", 0),
                    retries=retries,
                )
            except (ValueError, KeyError, IndexError, TypeError):
                problem = "unreadable response body"
        return GenerationResult(
            request_id=request.request_id, text="", retries=retries, error=f"gave up after {retries} retries: {problem}"
        )
