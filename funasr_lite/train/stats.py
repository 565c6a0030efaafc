"""Running training statistics of an epoch and of a logging window; helpers for the log lines.

Everything is kept as Python floats (``.item()`` of detached tensors), so no graph or device memory
is held across steps (FunASR issue #1716: host RAM growing every step).
"""

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

from funasr_lite.train.distributed import DistInfo, all_reduce_sum

__all__ = ["EpochTotals", "LogWindow", "rss_gb", "fmt"]


@dataclass
class EpochTotals:
    """Sums over the batches of one epoch (saved in checkpoint.pb by a Ctrl-C mid-epoch)."""

    # batches with a finite loss
    batches: float = 0.0
    # sum of their losses
    loss_sum: float = 0.0
    # sum of their accuracies, and how many had one
    acc_sum: float = 0.0
    acc_n: float = 0.0
    # seconds of audio trained on
    audio_s: float = 0.0
    # seconds spent in the training loop (all runs of this epoch)
    time: float = 0.0
    # skipped micro-batches / updates (non-finite loss or gradient)
    skipped: float = 0.0
    # lr of the last update
    lr: float = 0.0
    # training seconds of this epoch spent by earlier (interrupted) runs
    time_before: float = 0.0

    def add(self, loss: float, acc: Optional[float], audio_s: float) -> None:
        """Count one trained batch."""
        self.batches += 1
        self.loss_sum += loss
        self.audio_s += audio_s
        if acc is not None and math.isfinite(acc):
            self.acc_sum += acc
            self.acc_n += 1

    def to_partial(self) -> Dict[str, float]:
        """Plain dict for checkpoint.pb (``time`` includes earlier runs)."""
        d = asdict(self)
        d.pop("time_before")
        return d

    @classmethod
    def from_partial(cls, d: Dict[str, float], lr: float) -> "EpochTotals":
        """Continue the sums of an interrupted epoch ({} for a fresh one)."""
        tot = cls(**{"lr": lr, **{k: float(v) for k, v in d.items() if k in cls.__dataclass_fields__}})
        tot.time_before = tot.time
        return tot

    def all_reduce(self, dist: DistInfo) -> None:
        """Sum the counts over ranks (time and lr stay per rank)."""
        keys = ("batches", "loss_sum", "acc_sum", "acc_n", "audio_s", "skipped")
        for k, v in zip(keys, all_reduce_sum([getattr(self, k) for k in keys], dist)):
            setattr(self, k, v)


@dataclass
class LogWindow(EpochTotals):
    """Sums since the last log line, which opened at ``t0``."""

    t0: float = field(default_factory=time.perf_counter)


def rss_gb() -> float:
    """Resident memory of this process in GB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except (OSError, ValueError, IndexError):
        return float("nan")


def fmt(v: Optional[float], pattern: str = "%.4f") -> str:
    """``pattern % v``, or "n/a" for None."""
    return "n/a" if v is None else pattern % v
