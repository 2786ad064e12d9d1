"""When a model worker process dies: name the signal, the stage and the likely cause.

Ray restarts a dead actor and reruns its batch, but it cannot say which signal killed the process.
Each model worker therefore points Python's faulthandler at a file in a crash folder the driver
made; after a fatal signal (SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGABRT) that file says which one.
SIGKILL (the out-of-memory killer, `kill -9`) leaves no such trace and is reported as such.
Workers on other nodes write on their own machine, so there the cause falls back to Ray's words.
"""

from __future__ import annotations

import faulthandler
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from schemas.errors import BackendError

# faulthandler's wording for each fatal signal it handles.
FAULT_NAMES = {
    "Illegal instruction": "SIGILL",
    "Segmentation fault": "SIGSEGV",
    "Bus error": "SIGBUS",
    "Floating-point exception": "SIGFPE",
    "Floating point exception": "SIGFPE",
    "Aborted": "SIGABRT",
}

LIKELY_CAUSES = {
    "SIGILL": "the llama.cpp build uses CPU instructions this machine does not allow; rebuild it portably "
    "(`make distclean && make demo`) and see README Troubleshooting (`populace doctor` checks it)",
    "SIGSEGV": "a native crash in the model library: a corrupt or incompatible model file, or a bug in that "
    "library; check backend.model with `populace doctor`",
    "SIGBUS": "the model file changed or vanished while it was memory-mapped, or the disk is full",
    "SIGFPE": "an arithmetic fault in the model library's native code",
    "SIGABRT": "the model library aborted (an internal assertion, or no memory for backend.context_size)",
    "SIGKILL": "killed from outside, most often by the out-of-memory killer: lower backend.workers or "
    "backend.context_size, or give the machine more memory",
}


class WorkerCrashError(BackendError):
    """A model worker kept dying: the build stops instead of restarting it forever."""

    def __init__(self, stage: str, signal_name: str | None, restarts: int, detail: str = "") -> None:
        self.stage = stage
        self.signal_name = signal_name
        self.restarts = restarts
        self.detail = detail
        killed_by = f"was killed by {signal_name}" if signal_name else "died"
        cause = LIKELY_CAUSES.get(signal_name or "", detail or "see the worker logs in /tmp/ray/session_latest/logs")
        super().__init__(
            f"the model worker {killed_by} during {stage} (restarted {restarts} times, then given up): "
            f"{cause}. The run folder is kept: rerun the same command to resume."
        )

    def __reduce__(self) -> tuple[type[WorkerCrashError], tuple[str, str | None, int, str]]:
        # Prefect and Ray pickle task errors: keep the fields, not just the message
        return type(self), (self.stage, self.signal_name, self.restarts, self.detail)


def enable_crash_trace(crash_dir: str | None) -> IO[str] | None:
    """In a worker process: record a fatal signal in crash_dir. Keep the returned file open."""
    if not crash_dir or not Path(crash_dir).is_dir():
        return None  # another node, or no crash folder: Ray's own logs still hold faulthandler's output
    trace = open(Path(crash_dir) / f"worker-{os.getpid()}.log", "w", encoding="utf-8")  # noqa: SIM115
    faulthandler.enable(file=trace, all_threads=True)
    return trace


def read_crash_signal(crash_dir: Path) -> str | None:
    """The signal named in the newest crash trace, or SIGKILL when a worker died without one."""
    traces = sorted(crash_dir.glob("worker-*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for trace in traces:
        text = trace.read_text(encoding="utf-8", errors="replace")
        match = re.search(r"Fatal Python error: ([A-Za-z -]+)", text)
        if match and match.group(1).strip() in FAULT_NAMES:
            return FAULT_NAMES[match.group(1).strip()]
    return "SIGKILL" if traces else None


def is_worker_death(exc: BaseException) -> bool:
    """True when Ray gave up on an actor or task because its process died (its restarts spent)."""
    from ray.exceptions import OutOfMemoryError, RayActorError, WorkerCrashedError

    seen: BaseException | None = exc
    for _ in range(5):  # Ray Data may wrap the error it got from the dead actor
        if seen is None:
            return False
        if isinstance(seen, RayActorError | WorkerCrashedError | OutOfMemoryError):
            # An exception in the actor's constructor (a bad model path) is an error, not a death.
            return creation_failure(seen) is None
        seen = seen.__cause__ or seen.__context__
    return False


def creation_failure(exc: BaseException) -> str | None:
    """The constructor's own error message when Ray says an actor failed to start, else None."""
    text = str(exc)
    if "error raised in its creation task" not in text:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line and not line.startswith("ray.exceptions")]
    return errors[-1] if errors else lines[-1]


@contextmanager
def crash_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="populace-worker-crash-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
