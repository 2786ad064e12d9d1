"""Commands that start Prefect and Ray stop when asked and leave nothing running.

- SIGINT (Ctrl-C) or SIGTERM: the command unwinds (shards on disk are whole by construction),
  exits 130 or 143 within UNWIND_S even when the main thread is stuck in native code, and the
  reaper stops every process it started.
- SIGKILL: a reaper process (foundation/reaper.py) in its own session stops what the command started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import NoReturn

from foundation.process_tree import read_stat, stop_descendants

# After SIGINT/SIGTERM the main thread has this long to unwind before the command exits anyway
# (it may be stuck in native code); the reaper then needs ~2.5 s: well inside 10 s in all.
UNWIND_S = 3.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(KeyboardInterrupt):
    """Raised in the main thread when the command is asked to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_stopping: int | None = None
_guarded = False
_reaper_started = False


def guard_command() -> None:
    """Start the reaper and take over SIGINT and SIGTERM; call before Prefect or Ray start."""
    global _guarded, _reaper_started
    _guarded = True
    me = read_stat(os.getpid()) if sys.platform.startswith("linux") else None
    if me is not None:
        _reaper_started = True
        # The command's session and start time go with its pid: a command that dies before the
        # reaper has looked at it (a stop signal in its first second) is still known by them.
        subprocess.Popen(
            [sys.executable, "-m", "foundation.reaper", str(os.getpid()), str(me.session), str(me.started)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    install_stop_handlers()


def install_stop_handlers() -> None:
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, handle_stop_signal)


def take_back_stop_signals() -> None:
    """Inside a flow started by a guarded command: our handlers again, in place of Prefect's SIGTERM bridge.

    Under a Prefect worker (no guard) Prefect's own handling stays, as the worker expects.
    """
    if _guarded:
        install_stop_handlers()


def handle_stop_signal(signum: int, frame: object) -> None:
    global _stopping
    if _stopping is not None:
        return  # already stopping; the deadline thread finishes the job
    _stopping = signum
    name = signal.Signals(signum).name
    sys.stderr.write(f"\nstopping ({name}): finished shards are kept; rerun the same command to resume\n")
    sys.stderr.flush()
    threading.Thread(target=exit_at_deadline, args=(signum,), name="populace-stop", daemon=True).start()
    raise StopRequested(signum)


def exit_at_deadline(signum: int) -> None:
    """The orderly unwind gets UNWIND_S; then the command exits regardless."""
    time.sleep(UNWIND_S)
    exit_stopped(signum)


def stop_requested() -> int | None:
    """The signal that asked this command to stop, or None."""
    return _stopping


def command_is_guarded() -> bool:
    """True once this command may have started Prefect or Ray (guard_command ran)."""
    return _guarded


def exit_stopped(signum: int) -> NoReturn:
    """Exit with 128 + the signal number; the reaper then stops what this command started.

    The driver exits first on purpose: a Ray driver whose raylet is killed under it exits on
    its own with code 1. os._exit also skips atexit handlers, which would wait for the very
    servers being stopped. The run folder needs no cleanup: every shard is whole or absent.
    """
    exit_now(128 + signum)


def exit_with_error(message: str, code: int = 1) -> NoReturn:
    """Print the reason as the last line and exit; the reaper stops Ray and Prefect after us."""
    sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    exit_now(code)


def exit_now(code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    if not _reaper_started:  # no reaper on this platform: stop what we started ourselves
        stop_descendants(os.getpid(), grace_s=2.0)
    os._exit(code)
