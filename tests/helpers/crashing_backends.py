"""Test backends (plugin kind) whose worker process dies, for the bounded-restart tests.

These are fault injectors, not models: `SigillOnEveryRequest` stands for a llama.cpp build that
uses an instruction the CPU traps; `DiesOnFirstRequest` wraps the real embedded llama.cpp model
and kills its own process once (the first request anywhere in the build), like a worker lost to
the out-of-memory killer.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from schemas.config import BackendConfig
from workers.backend import GenerationRequest, GenerationResult


class SigillOnEveryRequest:
    name = "sigill"

    def __init__(self, cfg: BackendConfig, threads: int | None = None) -> None:
        self.model = cfg.model
        self.deaths = Path(str(cfg.options["deaths"]))  # one line per death, read by the test

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        with self.deaths.open("a") as log:
            log.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGILL)
        raise AssertionError("unreachable: SIGILL ends the process")


class DiesOnFirstRequest:
    name = "dies_once"

    def __init__(self, cfg: BackendConfig, threads: int | None = None) -> None:
        from workers.llama_cpp_backend import LlamaCppBackend

        self.model = cfg.model
        self.marker = Path(str(cfg.options["marker"]))
        self.signal = signal.Signals[str(cfg.options.get("signal", "SIGSEGV"))]
        self.inner = LlamaCppBackend(cfg.model_copy(update={"kind": "llama_cpp"}), threads=threads)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.inner.generate(requests)
        os.write(fd, f"{os.getpid()} {[r.request_id for r in requests]}\n".encode())
        os.close(fd)
        os.kill(os.getpid(), self.signal)
        raise AssertionError("unreachable: the signal ends the process")
