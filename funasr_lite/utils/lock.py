"""One writer per output dir: an advisory ``fcntl`` lock on ``<dir>/.funasr_lite.lock``.

The operating system drops the lock when its process ends, however it ends (exit, Ctrl-C, ``kill -9``), so a
lock left by a killed run never blocks a resume; the file itself may stay behind and is harmless.

It is a POSIX record lock (``lockf``), owned by the process, not a ``flock`` owned by the open file: a
forked child (a DataLoader worker) inherits the descriptor, and with ``flock`` an orphaned worker that
outlives a ``kill -9``-ed parent for a few seconds would keep the dir locked, so the resume right after
the kill was refused naming the dead pid.  POSIX locks do not exclude a second holder in the same process
and are dropped when any descriptor of the file closes, so holders in this process are tracked by path.
"""

import contextlib
import errno
import fcntl
import os
import threading
from typing import Iterator, Set

from funasr_lite.errors import FunasrLiteError

__all__ = ["DirLockedError", "dir_lock", "LOCK_NAME"]

LOCK_NAME = ".funasr_lite.lock"

_held: Set[str] = set()  # lock files this process holds (realpath)
_held_guard = threading.Lock()


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
    real = os.path.realpath(path)

    def refused(holder: str) -> DirLockedError:
        return DirLockedError(
            f"{directory} is in use by {holder}: another {what} is writing there; wait for it to finish "
            f"or choose another output dir"
        )

    with _held_guard:
        if real in _held:  # checked before opening: closing a second descriptor would drop our lock
            raise refused(f"pid {os.getpid()} (this process)")
        _held.add(real)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
                raise refused(holder) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode("ascii"), 0)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock
    finally:
        with _held_guard:
            _held.discard(real)
