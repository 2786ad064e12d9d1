"""One build per run folder at a time: an advisory lock that the operating system drops with its holder.

`flock` on `RUN_DIR/.lock` is released when the holding process exits, however it exits
(SIGKILL included), so a lock left by a killed build never blocks the rerun; the file only
says who held it last. Local filesystems only: NFS does not honour flock everywhere.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.errors import UserInputError

LOCK_NAME = ".lock"


@contextmanager
def run_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise UserInputError(
                str(root),
                "run folder",
                f"is in use by another build ({holder})",
                "wait for that build to finish or stop it, then rerun the same command",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
