"""One build per run folder: a second one refuses; a lock left by a killed build does not block."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml

from corpus.run_lock import LOCK_NAME, run_lock
from schemas.errors import UserInputError
from tests.helpers.configs import tiny_config
from tests.helpers.paths import REPO

HOLD = (
    "import sys, time; from pathlib import Path; from corpus.run_lock import run_lock\n"
    "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n"
)


def hold_lock_in_child(root) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_held_lock_refuses_and_a_killed_holders_lock_is_recovered(tmp_path):
    root = tmp_path / "run"
    child = hold_lock_in_child(root)
    try:
        with pytest.raises(UserInputError, match=f"in use by another build \\(pid {child.pid} on "), run_lock(root):
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (root / LOCK_NAME).is_file()  # the stale file stays; the kernel dropped the lock with its holder
    with run_lock(root):
        assert f"pid {os.getpid()} " in (root / LOCK_NAME).read_text()
    with run_lock(root):  # released on exit, so it can be taken again
        pass


def test_a_second_build_into_a_folder_in_use_exits_2_and_writes_nothing(tmp_path):
    root = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config().model_dump(mode="json")))
    child = hold_lock_in_child(root)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cli.main", "build", "--config", str(config), "--out", str(root)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "in use by another build" in proc.stderr and "fix:" in proc.stderr
    assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME]
