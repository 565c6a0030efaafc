"""Training faults turned into clear outcomes: interrupts, divergence, a full disk, out of memory.

* :class:`StopSignal`: while active, the first SIGINT (Ctrl-C) or SIGTERM (torchrun's shutdown, a
  cluster preemption) only sets a flag, which the loop reads at the start of each update window;
  a second Ctrl-C raises KeyboardInterrupt at once.
* :func:`ignore_sigint_in_workers`: DataLoader workers ignore SIGINT, so a terminal Ctrl-C (sent to
  the whole process group) does not kill them under the main process.
* :func:`run_on_rank0`: runs an output-writing step on rank 0 and makes every rank raise when it
  failed (no rank is left waiting in a collective); ``ENOSPC`` / ``EDQUOT`` become
  :class:`DiskFullError`.
"""

import contextlib
import errno
import functools
import logging
import signal
import threading
from typing import Any, Callable, Iterator, Optional

from funasr_lite.errors import CheckpointError, FunasrLiteError
from funasr_lite.train.distributed import DistInfo, all_reduce_sum

__all__ = [
    "TrainingInterrupted",
    "TrainingDiverged",
    "DiskFullError",
    "OutOfMemory",
    "StopSignal",
    "ignore_sigint_in_workers",
    "run_on_rank0",
]

logger = logging.getLogger(__name__)


class TrainingInterrupted(FunasrLiteError):
    """Ctrl-C / SIGTERM: the state was saved to checkpoint.pb; re-run the same command to resume."""


class TrainingDiverged(FunasrLiteError):
    """Too many consecutive NaN/Inf losses or gradients."""


class DiskFullError(CheckpointError):
    """No space left while writing outputs; the previous checkpoint.pb is intact."""


class OutOfMemory(FunasrLiteError):
    """The device ran out of memory on a batch; the message suggests a smaller batch_bins."""


class StopSignal:
    """A flag set by the first SIGINT/SIGTERM while :meth:`installed` is active."""

    requested = False  # set on the instance by the handler

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "%s received: finishing the current update, then saving checkpoint.pb (press Ctrl-C again to abort "
            "without saving)",
            signal.Signals(signum).name,
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopSignal"]:
        """Install the handlers (main thread only; elsewhere a no-op) and restore the old ones after."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _ignore_sigint(inner: Optional[Callable[[int], None]], worker_id: int) -> None:
    """DataLoader ``worker_init_fn`` (bound with functools.partial): ignore SIGINT, then run the original init."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if inner is not None:
        inner(worker_id)


def ignore_sigint_in_workers(loader: Any) -> None:
    """Make the worker processes of ``loader`` (a DataLoader) ignore SIGINT."""
    init = getattr(loader, "worker_init_fn", None)
    if getattr(loader, "num_workers", 0) > 0 and getattr(init, "func", None) is not _ignore_sigint:
        loader.worker_init_fn = functools.partial(_ignore_sigint, init)


def run_on_rank0(dist: DistInfo, what: str, fn: Callable[[], Any], output_dir: str, last_good: str) -> Any:
    """Run ``fn`` on rank 0 only and return its result there (None elsewhere).

    Args:
        what: the step in words, for messages ("writing the checkpoints of epoch 3").
        last_good: names the last good state for the disk-full message ("checkpoint.pb (epoch 2)").
    Raises:
        DiskFullError: no space left / quota exceeded (on every rank).
        CheckpointError: another OSError, or rank 0 failed (seen from the other ranks).
        FunasrLiteError: whatever ``fn`` raised of that kind.
    """
    error: Optional[BaseException] = None
    result = None
    if dist.is_main:
        try:
            result = fn()
        except OSError as e:
            if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):  # no space left, quota exceeded
                error = DiskFullError(
                    f"{output_dir}: no space left on device while {what} ({e}). The last good state is {last_good}; "
                    "free some space and re-run the same command to resume"
                )
            else:
                error = CheckpointError(f"{output_dir}: {what} failed: {e}")
            error.__cause__ = e
        except FunasrLiteError as e:
            error = e
    failed = all_reduce_sum([1.0 if error is not None else 0.0], dist)[0] > 0
    if error is not None:
        raise error
    if failed:
        raise CheckpointError(f"rank 0 failed while {what}; see its log")
    return result
