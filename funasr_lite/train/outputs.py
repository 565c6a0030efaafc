"""What a training run derives from its epoch checkpoints and reports, on rank 0: pruning, the
``valid.<m>.best.pb`` links, ``training_curves.png``, the ``valid.<m>.ave_{n}best.pb`` averages at the end,
and the progress bar, log lines and TensorBoard scalars (``output_dir/tensorboard``): ``update/*`` every update,
``train/*`` every ``log_interval`` updates and at the end of each epoch, ``epoch/*`` and ``dev/*`` per epoch, all
at the global step.

File formats and the ranking of epochs are in :mod:`funasr_lite.train.checkpoint`. The training loop
(:mod:`funasr_lite.train.trainer`) writes the epoch checkpoints, decides when, and handles failed writes.
"""

import logging
import math
import os
import time
from typing import Any, Dict, Optional, Sequence

from funasr_lite.train import checkpoint as ckpt
from funasr_lite.train.stats import LogWindow, fmt, rss_gb

__all__ = ["RunOutputs"]

logger = logging.getLogger(__name__)


class RunOutputs:
    """The files, log lines and TensorBoard scalars of one run.

    Args:
        output_dir: where everything goes (must exist).
        criteria: dev metrics that rank checkpoints (``valid.<m>.*``), names from ``checkpoint.CRITERIA``.
        keep_nbest: the n of each ``valid.<m>.ave_{n}best.pb``; the largest n is also how many epoch
            files each criterion keeps.
        is_main: rank 0; the log and scalar calls do nothing elsewhere.
        tensorboard: write TensorBoard scalars.
        plot: refresh ``training_curves.png`` with the checkpoints.
    """

    def __init__(
        self,
        output_dir: str,
        criteria: Sequence[str],
        keep_nbest: Sequence[int],
        *,
        is_main: bool,
        tensorboard: bool,
        plot: bool,
    ) -> None:
        self.output_dir, self.criteria, self.keep_nbest = output_dir, list(criteria), list(keep_nbest)
        self.is_main, self.tensorboard, self.plot = is_main, tensorboard, plot
        self._writer: Any = None
        self._update_sums = (None, 0.0, 0.0)  # (window, loss_sum, batches) at the last log_update

    # ------------------------------------------------------------------ files (call on rank 0)
    def sync(self, records: Sequence[ckpt.EpochRecord]) -> None:
        """Prune, refresh best links and the plot: idempotent, also run after a resume."""
        ckpt.prune_epoch_files(self.output_dir, records, self.criteria, max(self.keep_nbest))
        for m in self.criteria:
            ckpt.update_best(self.output_dir, records, m)
        if self.plot and records:
            from funasr_lite.train.plot import plot_training_curves

            plot_training_curves(self.output_dir, records)

    def write_averages(self, records: Sequence[ckpt.EpochRecord]) -> Dict[str, str]:
        """Every ``valid.<m>.ave_{n}best.pb`` (and ``valid.<m>.ave.pb``): ``{file name: path}``."""
        written: Dict[str, str] = {}
        for m in self.criteria:
            for path in ckpt.write_averages(self.output_dir, records, m, self.keep_nbest).values():
                written[os.path.basename(path)] = path
        return written

    def best_epochs(self, records: Sequence[ckpt.EpochRecord]) -> Dict[str, int]:
        """The best epoch per criterion, e.g. ``{"acc": 7, "cer": 9}`` (criteria no epoch has left out)."""
        ranked = {m: ckpt.rank_records(records, m) for m in self.criteria}
        return {m: r[0].epoch for m, r in ranked.items() if r}

    # ------------------------------------------------------------------ progress
    def open(self, step: int) -> None:
        """Start the TensorBoard writer; points after ``step`` (redone by a resumed run) are purged."""
        if not (self.tensorboard and self.is_main):
            return
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(
            os.path.join(self.output_dir, "tensorboard"), purge_step=step + 1 if step else None
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def scalar(self, tag: str, value: Optional[float], step: int) -> None:
        if self._writer is not None and value is not None and math.isfinite(value):
            self._writer.add_scalar(tag, value, step)

    def progress_bar(self, epoch: int, total: Optional[int], initial: int, enabled: bool) -> Any:
        """The tqdm bar of an epoch's batches (rank 0, when ``enabled``; a no-op bar otherwise)."""
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=initial,
            desc=f"epoch {epoch}",
            unit="batch",
            dynamic_ncols=True,
            disable=not (enabled and self.is_main),
            leave=False,
        )

    def log_update(self, step: int, window: LogWindow, lr: float) -> None:
        """The per-update scalars ``update/loss`` (mean of the update's micro-batches with a finite loss) and
        ``update/lr`` (the lr it used), at the global step: curves even when log_interval exceeds an epoch."""
        if self._writer is None:
            return
        last, loss_sum, batches = self._update_sums
        if last is not window:  # a new log window: it started from zero
            loss_sum, batches = 0.0, 0.0
        if window.batches > batches:
            self.scalar("update/loss", (window.loss_sum - loss_sum) / (window.batches - batches), step)
        self.scalar("update/lr", lr, step)
        self._update_sums = (window, window.loss_sum, window.batches)

    def log_epoch(self, record: ckpt.EpochRecord, max_epoch: int) -> None:
        """The end-of-epoch line and the ``epoch/*``, ``dev/*`` scalars (at the global step)."""
        if not self.is_main:
            return
        logger.info(
            "epoch %d/%d done: train loss %s acc %s | dev loss %s acc %s CER %s | lr %.3e | "
            "%.1f s, %s audio-s/s, %d skipped",
            record.epoch,
            max_epoch,
            fmt(record.train_loss),
            fmt(record.train_acc),
            fmt(record.dev_loss),
            fmt(record.dev_acc),
            fmt(record.dev_cer, "%.2f%%"),
            record.lr,
            record.epoch_time,
            fmt(record.throughput, "%.1f"),
            record.skipped_steps,
        )
        for tag, v in (
            ("epoch/train_loss", record.train_loss),
            ("epoch/train_acc", record.train_acc),
            ("dev/loss", record.dev_loss),
            ("dev/acc", record.dev_acc),
            ("dev/cer", record.dev_cer),
        ):
            self.scalar(tag, v, record.step)  # global step, so a resumed run purges redone points

    def log_step(
        self, epoch: int, max_epoch: int, done: int, total: Optional[int], step: int, window: LogWindow, lr: float
    ) -> None:
        """The every-``log_interval`` line and the ``train/*`` scalars of the updates since the last one: mean
        loss and acc (a non-finite acc counts as 0) and audio seconds per second."""
        if not self.is_main:
            return
        n = max(window.batches, 1)
        elapsed = time.perf_counter() - window.t0
        w = {
            "loss": window.loss_sum / n,
            "acc": window.acc_sum / n,
            "speed": window.audio_s / elapsed if elapsed > 0 else float("nan"),
        }
        logger.info(
            "epoch %d/%d batch %d/%s update %d: loss %.4f acc %.4f lr %.3e | %.1f audio-s/s | rss %.2f GB",
            epoch,
            max_epoch,
            done,
            total if total is not None else "?",
            step,
            w["loss"],
            w["acc"],
            lr,
            w["speed"],
            rss_gb(),
        )
        for tag, value in (
            ("loss", w["loss"]),
            ("acc", w["acc"]),
            ("lr", lr),
            ("audio_seconds_per_second", w["speed"]),
        ):
            self.scalar(f"train/{tag}", value, step)
