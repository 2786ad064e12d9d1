"""The process tree read from /proc: what a command started is found and stopped, grandchildren too."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from foundation.process_tree import identify, is_alive, list_descendants, read_stat, stop_descendants
from tests.helpers.paths import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A child that starts a grandchild and waits: both must be found and stopped.
PARENT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "time.sleep(60)\n"
)


def test_descendants_are_found_below_a_process_and_stopped():
    """Only the child's own subtree is touched: the test session's other children (Ray, Prefect) stay."""
    child = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        deadline = time.monotonic() + 20
        while not list_descendants(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (grandchild,) = list_descendants(child.pid)
        assert read_stat(grandchild.pid).parent == child.pid
        below_us = [p.pid for p in list_descendants(os.getpid())]
        assert below_us.index(child.pid) < below_us.index(grandchild.pid)  # parents before children
        stop_descendants(child.pid, grace_s=2.0)
        deadline = time.monotonic() + 10
        while is_alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not is_alive(grandchild) and list_descendants(child.pid) == []
        assert child.poll() is None  # the root itself is left to its owner
    finally:
        child.kill()
        child.wait()


def test_a_finished_process_is_no_longer_identified():
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert identify(done.pid) is None and read_stat(done.pid) is None
    me = identify(os.getpid())
    assert me is not None and is_alive(me)


# A guarded command that starts a child and dies at once, before its reaper has looked at it.
DIES_AT_ONCE = (
    "import os, subprocess, sys\n"
    "from foundation.process_guard import guard_command\n"
    "guard_command()\n"
    "quiet = {'stdout': subprocess.DEVNULL, 'stderr': subprocess.DEVNULL}\n"
    "sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], **quiet)\n"
    "print(sleeper.pid, flush=True)\n"
    "os._exit(0)\n"
)


def test_what_a_command_started_is_stopped_even_when_it_dies_before_its_reaper_looks():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = subprocess.run(
        [sys.executable, "-c", DIES_AT_ONCE], cwd=REPO, env=env, capture_output=True, text=True, start_new_session=True
    )
    sleeper_pid = int(command.stdout.strip())  # it sleeps for a minute unless the reaper stops it
    deadline = time.monotonic() + 15
    while read_stat(sleeper_pid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert read_stat(sleeper_pid) is None  # found as an orphan of the command's session, and stopped
