"""The one training loop: accumulation, clipping, AMP, DDP, validation with CER, resume, faults.

Used by :func:`funasr_lite.train.finetune.finetune` (and by anything else that trains). Its options
are the ``train_conf`` section, :class:`funasr_lite.train.options.TrainConf`. Per epoch:

1. seed every RNG from ``(seed, epoch, rank)`` and set the data order of the epoch, so an
   epoch's result depends only on the state at its start (resume is exact on CPU);
2. train: ``accum_grad`` micro-batches per update, loss / accum_grad, ``grad_clip`` on the L2
   norm, AMP (``bf16``, or ``fp16`` with a GradScaler) on GPU only. A non-finite loss skips its
   micro-batch (a warning); a non-finite gradient norm skips the update; more than
   ``max_nan_steps`` in a row stop the run (:class:`TrainingDiverged`);
3. validate: dev loss and acc (teacher-forced, weighted by utterances) and dev CER from real
   greedy decoding (``decode_fn``); two REF/HYP examples go to the log;
4. rank 0 writes ``{N}epoch.pb`` + sidecar and ``checkpoint.pb``, then links ``valid.*.best.pb``, prunes and
   plots (:mod:`funasr_lite.train.outputs`, which also writes the log lines and TensorBoard scalars).

After the last epoch, rank 0 writes the ``valid.*.ave_{n}best.pb`` averages.

Faults (the exceptions are in :mod:`funasr_lite.train.faults`): SIGINT/SIGTERM (Ctrl-C, torchrun's shutdown)
finish the current update, save a mid-epoch ``checkpoint.pb`` and raise :class:`TrainingInterrupted`; a second
Ctrl-C aborts at once. A full disk raises :class:`DiskFullError` with the previous ``checkpoint.pb`` intact
(writes are atomic). kill -9 at any moment leaves only complete files; re-running resumes
from the last ``checkpoint.pb``.

DDP (``world_size > 1``): the model is wrapped in DistributedDataParallel; ranks agree through
small all-reduces on whether to stop (data exhausted on any rank, interrupt) and whether to skip
a micro-batch (non-finite loss or empty batch on any rank). Gradients of a window whose last
micro-batch was skipped are all-reduced by hand. Validation runs on every rank's dev shard and
the sums are all-reduced.
"""

import contextlib
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from funasr_lite.errors import CheckpointError, ConfigError
from funasr_lite.train import checkpoint as ckpt
from funasr_lite.train.distributed import DistInfo, all_reduce_sum, barrier
from funasr_lite.train.faults import (
    OutOfMemory,
    StopSignal,
    TrainingDiverged,
    TrainingInterrupted,
    ignore_sigint_in_workers,
    run_on_rank0,
)
from funasr_lite.train.options import TrainConf
from funasr_lite.train.outputs import RunOutputs
from funasr_lite.train.rundir import check_resume_config
from funasr_lite.train.stats import EpochTotals, LogWindow
from funasr_lite.train.validation import DecodeFn, DevResult, evaluate, scalar, warn_if_dev_suspicious
from funasr_lite.train.validation import nonfinite_utterances as culprits
from funasr_lite.utils.seeding import epoch_seed

__all__ = ["Trainer", "TrainResult"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    # records of all epochs trained so far (resumed runs included)
    records: List[ckpt.EpochRecord]
    # optimizer updates done
    step: int
    # {"valid.acc.ave_10best.pb": path, ...} written at the end (rank 0; {} elsewhere)
    averaged: Dict[str, str]
    # the best epoch per criterion, e.g. {"acc": 7, "cer": 9}
    best_epochs: Dict[str, int]


class Trainer:
    """Trains ``model`` with ``optimizer``/``scheduler`` on ``train_loader``; validates on ``dev_loader``.

    Args:
        model: on ``dist.device``; ``model(speech, speech_lengths, text, text_lengths)`` (positional)
            returns ``(loss, stats)`` or ``(loss, stats, weight)`` with ``stats["acc"]``.
        optimizer, scheduler: from :mod:`funasr_lite.train.scheduler` (scheduler stepped per update).
        train_loader, dev_loader: yield dicts with ``speech (B,T,D)``, ``speech_lengths (B,)``,
            ``text (B,L)`` padded with -1, ``text_lengths (B,)`` and ``keys`` (see dataset.py).
        conf: the ``train_conf`` section, :class:`~funasr_lite.train.options.TrainConf`; mixed precision is
            its ``use_bf16``/``use_fp16``, on GPU only.
        dist: from :func:`funasr_lite.train.distributed.setup_distributed`.
        output_dir: where all outputs go (must exist).
        best_model_criterion: dev metrics that rank checkpoints (``valid.<m>.*``): ``acc`` (max),
            ``cer`` (min), ``loss`` (min). Not FunASR's ``train_conf.best_model_criterion``
            (``[[valid, acc, max]]``, kept verbatim and unused).
        frame_seconds: seconds of audio per speech frame (LFR: frame_shift 10 ms x lfr_n 6 = 0.06),
            for the audio-seconds-per-second throughput.
        decode_fn: greedy decoding for dev CER (None: no CER).
        tokenizer: ``decode(ids) -> (text, words)``; needed with ``decode_fn``.
        progress_bar: show a tqdm bar (rank 0).
        tensorboard: write TensorBoard scalars under ``output_dir/tensorboard``.
        plot: write ``output_dir/training_curves.png`` after every epoch.
        config: the merged config (:func:`~funasr_lite.train.rundir.training_config`), saved in ``checkpoint.pb``;
            a resume that changes more than its run-time keys is refused (ConfigError).

    Raises:
        ConfigError: an unknown/empty ``best_model_criterion``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        train_loader: Any,
        dev_loader: Any,
        conf: TrainConf,
        dist: DistInfo,
        *,
        output_dir: str,
        best_model_criterion: Sequence[str],
        frame_seconds: float,
        decode_fn: Optional[DecodeFn] = None,
        tokenizer: Any = None,
        progress_bar: bool = True,
        tensorboard: bool = True,
        plot: bool = True,
        config: Optional[Dict[str, Any]] = None,
    ) -> None:
        bad = [m for m in best_model_criterion if m not in ckpt.CRITERIA]
        if bad:
            raise ConfigError(f"best_model_criterion: unknown metric(s) {bad}; use {list(ckpt.CRITERIA)}")
        if not best_model_criterion:
            raise ConfigError("best_model_criterion must name at least one metric")
        if decode_fn is not None and tokenizer is None:
            raise ValueError("decode_fn needs a tokenizer to turn ids into text")
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.dev_loader = train_loader, dev_loader
        self.conf, self.dist = conf, dist
        self.output_dir, self.frame_seconds = output_dir, frame_seconds
        self.decode_fn, self.tokenizer = decode_fn, tokenizer
        self.progress_bar = progress_bar
        self.config = config
        self.device = dist.device
        amp = "bf16" if conf.use_bf16 else "fp16" if conf.use_fp16 else "none"
        if amp != "none" and self.device.type != "cuda":
            logger.warning("amp=%s needs a GPU; training in float32 on %s", amp, self.device)
            amp = "none"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        self.ddp = None
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=conf.find_unused_parameters,
            )
        self.epoch_done = 0  # completed epochs
        self.step = 0  # optimizer updates
        self.records: List[ckpt.EpochRecord] = []
        self.wall_time = 0.0  # training seconds over all runs
        self._resume_batches = 0  # batches of epoch epoch_done+1 already trained (Ctrl-C resume)
        self._resume_partial: Dict[str, float] = {}
        self._resume_rng: Optional[Dict[str, Any]] = None
        self._stop = StopSignal()
        self._nonfinite_run, self._dev_reported = 0, set()  # the dev utterances reported as failed
        self.outputs = RunOutputs(
            output_dir,
            best_model_criterion,
            conf.nbest_list(),
            is_main=dist.is_main,
            tensorboard=tensorboard,
            plot=plot,
        )
        self._saved_epoch: Optional[int] = None  # epoch of the last checkpoint.pb written or loaded

    # ------------------------------------------------------------------ setup / resume
    def resume(self) -> bool:
        """Load ``output_dir/checkpoint.pb`` if present (every rank); returns True if it did.

        Raises:
            CheckpointError: checkpoint.pb exists but is unreadable or does not fit the model.
        """
        state = ckpt.load_resume_state(self.output_dir)
        path = os.path.join(self.output_dir, ckpt.RESUME_NAME)
        if state is None:
            if self.dist.is_main:
                logger.info("no %s in %s: training starts from the init model", ckpt.RESUME_NAME, self.output_dir)
            return False
        if self.config is not None:  # a refused change leaves this run untouched
            check_resume_config(state.get("config"), self.config, path)
        try:
            self.model.load_state_dict(state["model"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"{path}: does not fit the model/optimizer of this run ({str(e).splitlines()[0]}). It was written "
                "by a run with another config; use another --output_dir or move checkpoint.pb away"
            ) from e
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch_done = self._saved_epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.wall_time = float(state.get("wall_time", 0.0))
        self.records = [ckpt.EpochRecord.from_dict(d, source=path) for d in state.get("records", [])]
        self._resume_batches = int(state.get("batches_done", 0))
        self._resume_partial = dict(state.get("partial") or {})
        self._resume_rng = state.get("rng") if self._resume_batches else None  # epoch starts reseed anyway
        if self._resume_batches and int(state.get("world_size", 1)) != self.dist.world_size:
            logger.warning(
                "%s was saved mid-epoch with %s process(es), this run has %d: epoch %d restarts from its first batch",
                path,
                state.get("world_size"),
                self.dist.world_size,
                self.epoch_done + 1,
            )
            self._resume_batches, self._resume_partial, self._resume_rng = 0, {}, None
        if self.dist.is_main:
            where = (
                f" and {self._resume_batches} batch(es) of epoch {self.epoch_done + 1}" if self._resume_batches else ""
            )
            logger.info(
                "RESUMING from %s: %d epoch(s) done%s, %d update(s), lr %.3e",
                path,
                self.epoch_done,
                where,
                self.step,
                self.optimizer.param_groups[0]["lr"],
            )
            if self.epoch_done >= self.conf.max_epoch:
                logger.info(
                    "all %d epochs are done; only the best/averaged checkpoints are (re)written", self.conf.max_epoch
                )
        return True

    def _resume_state(
        self, batches_done: int, partial: Dict[str, float], rng: Optional[Dict[str, Any]] = None
    ) -> Dict[str, Any]:
        """The ``checkpoint.pb`` content; ``rng``: the RNG state to save (default: the current one)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng or ckpt.capture_rng_state(),
            "epoch": self.epoch_done,
            "batches_done": batches_done,
            "partial": partial,
            "step": self.step,
            "records": [r.to_dict() for r in self.records],
            "wall_time": self.wall_time,
            "world_size": self.dist.world_size,
            "config": self.config,
        }

    # ------------------------------------------------------------------ rank-0 writes
    def _on_main(self, what: str, fn: Any) -> Any:
        """Run an output-writing step on rank 0; all ranks raise if it failed (see run_on_rank0)."""
        return run_on_rank0(self.dist, what, fn, self.output_dir, self._last_good())

    def _last_good(self) -> str:
        if self._saved_epoch is None:
            return f"the init model (no {ckpt.RESUME_NAME} written yet)"
        return f"{os.path.join(self.output_dir, ckpt.RESUME_NAME)} (epoch {self._saved_epoch})"

    def _finish_epoch_files(self, record: ckpt.EpochRecord) -> None:
        ckpt.write_epoch_checkpoint(self.output_dir, record, self.model.state_dict())
        ckpt.save_resume_state(self.output_dir, self._resume_state(0, {}))
        self._saved_epoch = record.epoch
        self.outputs.sync(self.records)

    # ------------------------------------------------------------------ main loop
    def fit(self) -> TrainResult:
        """Train from ``epoch_done + 1`` to ``max_epoch``, then write the averages.

        Raises:
            TrainingInterrupted, TrainingDiverged, DiskFullError, OutOfMemory: see the module docstring.
        """
        self._on_main(
            "cleaning up",
            lambda: (
                ckpt.remove_stale_temp_files(self.output_dir),
                self.outputs.sync(self.records) if self.records else None,
            ),
        )
        self.outputs.open(self.step)
        try:
            with self._stop.installed():
                for epoch in range(self.epoch_done + 1, self.conf.max_epoch + 1):
                    self._run_epoch(epoch)
            averaged = self._on_main("averaging checkpoints", lambda: self.outputs.write_averages(self.records)) or {}
        finally:
            self.outputs.close()
        return TrainResult(
            records=list(self.records),
            step=self.step,
            averaged=averaged,
            best_epochs=self.outputs.best_epochs(self.records),
        )

    def _run_epoch(self, epoch: int) -> None:
        from funasr_lite.data.dataset import set_epoch

        if all_reduce_sum([self._stop.requested], self.dist)[0] > 0:  # Ctrl-C during the last validation
            raise TrainingInterrupted(
                f"interrupted before epoch {epoch}; epoch {epoch - 1} is saved in "
                f"{os.path.join(self.output_dir, ckpt.RESUME_NAME)}. Re-run the same command to resume"
            )
        t0 = time.perf_counter()
        seed = epoch_seed(self.conf.seed, epoch, self.dist.rank)
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)
        set_epoch(self.train_loader, epoch)
        skip, partial, rng = self._resume_batches, self._resume_partial, self._resume_rng
        self._resume_batches, self._resume_partial, self._resume_rng = 0, {}, None
        train = self._train_epoch(epoch, skip, partial, rng)
        dev = self._validate(epoch)
        elapsed = time.perf_counter() - t0
        self.wall_time += elapsed
        self.epoch_done = epoch
        record = ckpt.EpochRecord(
            epoch=epoch,
            step=self.step,
            lr=train.lr,
            train_loss=train.loss_sum / train.batches if train.batches else None,
            train_acc=train.acc_sum / train.acc_n if train.acc_n else None,
            dev_loss=dev.loss,
            dev_acc=dev.acc,
            dev_cer=dev.cer,
            epoch_time=round(elapsed + train.time_before, 3),
            wall_time=round(self.wall_time, 3),
            throughput=round(train.audio_s / train.time, 2) if train.time > 0 else None,  # audio-s per train-s
            skipped_steps=int(train.skipped),
        )
        self.records.append(record)
        if self.dist.is_main and self.dev_loader is not None:
            warn_if_dev_suspicious(self.records)
        self.outputs.log_epoch(record, self.conf.max_epoch)
        self._on_main(f"writing the checkpoints of epoch {epoch}", lambda: self._finish_epoch_files(record))
        barrier(self.dist)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _forward(self, module: torch.nn.Module, batch: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, Any]]:
        try:
            with self._autocast():
                keys = ("speech", "speech_lengths", "text", "text_lengths")
                out = module(*(batch[k].to(self.device, non_blocking=True) for k in keys))
        except torch.cuda.OutOfMemoryError as e:
            raise OutOfMemory(
                f"out of GPU memory on a batch of {len(batch.get('keys', []))} utterances with "
                f"{int(batch['speech'].shape[1])} frames; lower batch_bins (or max_duration_ms), "
                "or use amp bf16/fp16"
            ) from e
        return out[0], (out[1] if len(out) > 1 and isinstance(out[1], dict) else {})

    def _train_epoch(
        self, epoch: int, skip: int, partial: Dict[str, float], rng: Optional[Dict[str, Any]]
    ) -> EpochTotals:
        from tqdm.contrib.logging import logging_redirect_tqdm

        module = self.ddp if self.ddp is not None else self.model
        module.train()
        tot = EpochTotals.from_partial(partial, lr=float(self.optimizer.param_groups[0]["lr"]))
        ignore_sigint_in_workers(self.train_loader)
        it = iter(self.train_loader)
        for _ in range(skip):  # batches trained before a Ctrl-C: same order, so skip them
            if next(it, None) is None:
                break
        if rng is not None:
            ckpt.restore_rng_state(rng)
        try:
            total: Optional[int] = len(self.train_loader)
        except TypeError:
            total = None
        bar = self.outputs.progress_bar(epoch, total, skip, self.progress_bar)
        self.optimizer.zero_grad(set_to_none=True)
        accum = synced = 0
        done = skip
        t_last = time.perf_counter()
        window = LogWindow()
        start: Tuple[int, Dict[str, float], Dict[str, Any]] = (done, tot.to_partial(), {})
        with logging_redirect_tqdm(), bar:
            while True:
                if accum == 0:  # a window starts: the only place where the state is consistent
                    if all_reduce_sum([self._stop.requested], self.dist)[0] > 0:
                        self._interrupt(epoch, done, tot, None)
                    start = (done, tot.to_partial(), ckpt.capture_rng_state())
                try:
                    batch = next(it, None)
                    lost = False
                except RuntimeError:  # DataLoader workers killed by the terminal's Ctrl-C
                    if not self._stop.requested:
                        raise
                    batch, lost = None, True
                empty = batch is not None and int(batch["speech"].shape[0]) == 0
                flags = all_reduce_sum([batch is None, lost, empty], self.dist)
                if flags[1] > 0:  # cannot finish this window: drop it, save the state at its start
                    self.optimizer.zero_grad(set_to_none=True)
                    self._interrupt(epoch, start[0], EpochTotals.from_partial(start[1], tot.lr), start[2])
                if flags[0] > 0:
                    if accum:  # data ran out inside a window: apply what was accumulated
                        self._update(synced == 0, tot)
                    break
                done += 1
                bar.update(1)
                if flags[2] > 0:
                    logger.warning(
                        "epoch %d batch %d: a rank got an empty batch (all its audio failed to load); skipped",
                        epoch,
                        done,
                    )
                    continue
                last_of_window = accum + 1 == self.conf.accum_grad
                sync_ctx = (
                    self.ddp.no_sync() if self.ddp is not None and not last_of_window else contextlib.nullcontext()
                )
                with sync_ctx:
                    loss, stats = self._forward(module, batch)
                    bad = all_reduce_sum([0.0 if torch.isfinite(loss.detach()).all() else 1.0], self.dist)[0] > 0
                    if not bad:
                        scaled = loss / self.conf.accum_grad
                        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                        synced += 1 if last_of_window else 0
                accum += 1
                if bad:
                    tot.skipped += 1
                    self._nonfinite(epoch, done, "loss", culprits(self.model, batch, self._forward))
                else:
                    self._nonfinite_run = 0
                    lv, av = float(loss.detach()), scalar(stats.get("acc"))
                    audio = float(batch["speech_lengths"].sum()) * self.frame_seconds
                    tot.add(lv, av, audio)
                    window.add(lv, av, audio)
                if accum == self.conf.accum_grad:
                    if self._update(synced == 0, tot):
                        self.outputs.log_update(self.step, window, tot.lr)
                        bar.set_postfix(loss=f"{window.loss_sum / max(window.batches, 1):.3f}", lr=f"{tot.lr:.2e}")
                        if self.step % self.conf.log_interval == 0:
                            self.outputs.log_step(epoch, self.conf.max_epoch, done, total, self.step, window, tot.lr)
                            window = LogWindow()
                    accum = synced = 0
                now = time.perf_counter()
                tot.time += now - t_last
                t_last = now
        if window.batches:  # a line per epoch at least, also when log_interval exceeds its updates
            self.outputs.log_step(epoch, self.conf.max_epoch, done, total, self.step, window, tot.lr)
        tot.all_reduce(self.dist)
        return tot

    def _interrupt(self, epoch: int, batches_done: int, tot: EpochTotals, rng: Optional[Dict[str, Any]]) -> None:
        """Save a mid-epoch state (``batches_done`` batches of ``epoch`` trained) and raise TrainingInterrupted."""
        self.wall_time += tot.time - tot.time_before
        self._on_main(
            "saving the interrupted state",
            lambda: ckpt.save_resume_state(self.output_dir, self._resume_state(batches_done, tot.to_partial(), rng)),
        )
        raise TrainingInterrupted(
            f"interrupted in epoch {epoch} after {batches_done} batch(es); the state is saved in "
            f"{os.path.join(self.output_dir, ckpt.RESUME_NAME)}. Re-run the same command to resume"
        )

    def _nonfinite(self, epoch: int, batch_no: int, what: str, keys: Sequence[str] = ()) -> None:
        self._nonfinite_run += 1
        logger.warning(
            "epoch %d batch %d: non-finite %s, step skipped (%d in a row, limit %d)%s",
            epoch,
            batch_no,
            what,
            self._nonfinite_run,
            self.conf.max_nan_steps,
            f"; caused by utterance(s) {', '.join(keys)}" if keys else "",
        )
        if self._nonfinite_run >= self.conf.max_nan_steps:
            raise TrainingDiverged(
                f"{self._nonfinite_run} consecutive steps had a NaN/Inf {what} (last: epoch {epoch}, batch "
                f"{batch_no}); training stopped. The last good state is {self._last_good()}. Check the data "
                "(pre-flight report), lower lr, keep grad_clip > 0, or train without amp"
            )

    def _update(self, need_manual_sync: bool, tot: EpochTotals) -> bool:
        """Clip, step optimizer and scheduler; returns False if the update was skipped."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.ddp is not None and need_manual_sync:
            import torch.distributed as tdist

            for p in params:
                if p.grad is not None:
                    tdist.all_reduce(p.grad)
                    p.grad /= self.dist.world_size
        if not any(p.grad is not None for p in params):
            self.optimizer.zero_grad(set_to_none=True)
            return False
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.conf.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm=self.conf.grad_clip)
        else:
            norm = torch.linalg.vector_norm(
                torch.stack([p.grad.detach().float().norm() for p in params if p.grad is not None])
            )
        if self.scaler is None and not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            tot.skipped += 1
            self._nonfinite(self.epoch_done + 1, int(tot.batches), "gradient norm")
            return False
        tot.lr = float(self.optimizer.param_groups[0]["lr"])
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scaler.get_scale() < scale:  # fp16 overflow: GradScaler skipped the step and lowered its scale
                logger.debug(
                    "fp16 gradient overflow: update skipped, loss scale %.0f -> %.0f", scale, self.scaler.get_scale()
                )
                self.optimizer.zero_grad(set_to_none=True)
                return False
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return True

    def _validate(self, epoch: int) -> DevResult:
        if self.dev_loader is None:
            return DevResult()
        args = (self.model, self.dev_loader, self._forward, self.dist, self.decode_fn, self.tokenizer, self._autocast)
        return evaluate(*args, epoch, self._dev_reported)
