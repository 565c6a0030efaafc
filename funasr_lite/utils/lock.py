"""One writer per output dir: an advisory ``fcntl`` lock on ``<dir>/.funasr_lite.lock``.

The operating system drops the lock when its process ends, however it ends (exit, Ctrl-C, ``kill -9``), so a
lock left by a killed run never blocks a resume; the file itself may stay behind and is harmless.
"""

import contextlib
import fcntl
import os
from typing import Iterator

from funasr_lite.errors import FunasrLiteError

__all__ = ["DirLockedError", "dir_lock", "LOCK_NAME"]

LOCK_NAME = ".funasr_lite.lock"


class DirLockedError(FunasrLiteError):
    """Another process holds the output dir."""


@contextlib.contextmanager
def dir_lock(directory: str, what: str = "run") -> Iterator[None]:
    """Hold the lock of ``directory`` (created if missing) for the ``with`` block.

    Raises:
        DirLockedError: another live process holds it; the message names the dir and that process.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
            raise DirLockedError(
                f"{directory} is in use by {holder}: another {what} is writing there; wait for it to finish "
                f"or choose another output dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
