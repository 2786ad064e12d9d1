"""A fault-injecting HTTP proxy in front of a real server on 127.0.0.1, for tests.

Each incoming request takes the next fault from a script ("429", "500", "reset", "garbage",
"truncated", "refusal", "slow", "hang"); when the script is empty requests are forwarded unchanged,
or, with `rate`, each request draws a fault among `kinds` with that probability (seeded).
`injected` counts the faults served by kind.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        faults: list[str] | None = None,
        slow_s: float = 3.0,
        rate: float = 0.0,
        kinds: tuple[str, ...] = ("429", "500", "reset", "garbage", "hang"),
        seed: int = 0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = deque(faults or [])
        self.slow_s = slow_s
        self.rate, self.kinds, self.rng = rate, kinds, random.Random(seed)
        self.injected: Counter = Counter()
        self.seen_headers: list[dict] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._forward("GET", b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    proxy.seen_headers.append(dict(self.headers))
                    fault = proxy.faults.popleft() if proxy.faults else None
                    if fault is None and proxy.rate and proxy.rng.random() < proxy.rate:
                        fault = proxy.rng.choice(proxy.kinds)
                    if fault:
                        proxy.injected[fault] += 1
                if fault in ("429", "500", "503"):
                    self._answer(int(fault), b'{"error": "injected"}')
                elif fault == "hang":  # no answer until the client times out, then a dropped connection
                    time.sleep(proxy.slow_s)
                    self.connection.shutdown(2)
                    self.close_connection = True
                elif fault == "reset":
                    self.connection.shutdown(2)  # drop the connection without an answer
                    self.close_connection = True
                elif fault == "garbage":
                    self._answer(200, b"<html>not json at all")
                elif fault == "refusal":  # a well-formed answer in which the model declines
                    self._answer(
                        200,
                        b'{"choices": [{"message": {"content": "I am sorry, but I cannot help '
                        b'with that."}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, '
                        b'"completion_tokens": 9}}',
                    )
                elif fault == "truncated":
                    self._answer(200, b'{"choices": [{"message": {"content": "{\\"name\\": \\"Ana')
                else:
                    # "slow" asks upstream at once and answers late: nothing reaches the server after
                    # the client gave up (and the test that injected it has ended).
                    self._forward("POST", body, delay_s=proxy.slow_s if fault == "slow" else 0.0)

            def _answer(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): that is the fault under test

            def _forward(self, method: str, body: bytes, delay_s: float = 0.0) -> None:
                path = self.path.removeprefix("/v1")
                response = httpx.request(
                    method,
                    f"{proxy.upstream}{path}",
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=300,
                )
                time.sleep(delay_s)
                self._answer(response.status_code, response.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
