"""The per-run lock: one process at a time trains a run and writes its checkpoint.

An advisory `flock` on `DIR/runs/<run_id>/lock`, taken without waiting. The kernel drops it when its
holder exits, however it exits, so a lock never outlives a killed process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock, as before
    fcntl = None

LOCK_NAME = "lock"


class RunLocked(Exception):
    """Another live process holds the run's lock."""


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the lock of the run in `run_dir` for the block; RunLocked when another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                raise RunLocked(f"{path} is held by process {holder}, which is still training this run") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for a person reading the file; the lock is the flock
        yield
    finally:
        os.close(fd)  # releases the flock
