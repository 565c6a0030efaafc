"""Per-epoch validation: dev loss and acc (teacher-forced) and dev CER from real greedy decoding.

Loss and acc are averaged over utterances (each batch weighted by its size, as FunASR 0.x's
reporter does). CER decodes every dev utterance with ``decode_fn`` (the same greedy search as
inference) and scores ``tokenizer.decode(hyp)`` against ``tokenizer.decode(reference ids)`` with
:func:`funasr_lite.decode.cer.score_utterance`, so a model that "validates" at acc 1.0 but decodes
nothing shows it (FunASR issue #836). Under DDP every rank evaluates its dev shard and the sums
are all-reduced; no collective runs inside the loop, so shards may differ in length.
"""

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import torch

from funasr_lite.errors import DataDirError
from funasr_lite.train.distributed import DistInfo, all_reduce_sum

__all__ = ["DevResult", "evaluate", "DecodeFn", "scalar", "warn_if_dev_suspicious", "nonfinite_utterances"]

logger = logging.getLogger(__name__)

# decode_fn(model, speech (B, T, D), speech_lengths (B,)) -> token ids per utterance (no blank/sos/eos)
DecodeFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], Sequence[Sequence[int]]]


def scalar(v: Any) -> Optional[float]:
    """A one-element tensor or number as float; None for None, non-scalars and non-numbers."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            return None
        v = v.detach().float().item()
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


@dataclass
class DevResult:
    """Dev metrics of one epoch (None where not measurable)."""

    # utterance-weighted mean loss over batches with a finite loss
    loss: Optional[float] = None
    # utterance-weighted mean token accuracy
    acc: Optional[float] = None
    # CER in percent from greedy decoding (None without decode_fn)
    cer: Optional[float] = None


class _Unusable(Exception):
    """An utterance (or batch) whose dev metrics cannot be computed; the message says why."""


def _utterance(batch: Dict[str, Any], i: int) -> Dict[str, Any]:
    """Utterance ``i`` of ``batch`` as a batch of one (padding cut off)."""
    n, m = int(batch["speech_lengths"][i]), int(batch["text_lengths"][i])
    keys = batch.get("keys") or [str(j) for j in range(int(batch["speech"].shape[0]))]
    return dict(
        batch,
        speech=batch["speech"][i : i + 1, :n],
        speech_lengths=batch["speech_lengths"][i : i + 1],
        text=batch["text"][i : i + 1, :m],
        text_lengths=batch["text_lengths"][i : i + 1],
        keys=[keys[i]],
    )


def nonfinite_utterances(model: torch.nn.Module, batch: Dict[str, Any], forward: Callable) -> List[str]:
    """The keys of the utterances of ``batch`` whose own loss is NaN/Inf (one no-grad forward each, the RNG state
    kept), to name the culprits of a skipped training batch."""
    keys = batch.get("keys") or []
    device = next(model.parameters()).device
    bad = []
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for i, key in enumerate(keys):
            loss, _ = forward(model, _utterance(batch, i))
            if not torch.isfinite(loss.detach()).all():
                bad.append(str(key))
    return bad


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: Iterable[Dict[str, Any]],
    forward: Callable[[torch.nn.Module, Dict[str, Any]], Tuple[torch.Tensor, Dict[str, Any]]],
    dist: DistInfo,
    decode_fn: Optional[DecodeFn] = None,
    tokenizer: Any = None,
    autocast: Callable[[], ContextManager] = contextlib.nullcontext,
    epoch: int = 0,
    reported: Optional[Set[str]] = None,
) -> DevResult:
    """Evaluate ``model`` (put in eval mode, restored to train mode after) on ``loader``; rank 0 logs two
    "key: REF ... | HYP ..." examples.

    A batch with a NaN/Inf loss or acc, or whose decoding fails, is evaluated again one utterance at a time:
    each utterance that still fails is reported (once per ``reported`` set, i.e. once per run), skipped and
    counted; the metrics are computed over the rest.

    Args:
        model: the bare model (not the DDP wrapper).
        loader: yields dicts with ``speech``, ``speech_lengths``, ``text`` (B, L) padded,
            ``text_lengths`` and ``keys``.
        forward: runs the model on a batch, returns ``(loss, stats)`` with ``stats["acc"]``.
        dist: process placement; sums are all-reduced over ranks.
        decode_fn, tokenizer: greedy decoding and ``tokenizer.decode(ids) -> (text, words)`` for CER (the
            Trainer checks that a decode_fn comes with a tokenizer).
        autocast: context manager factory used around decoding (AMP).
        epoch: for the log lines.
        reported: keys of failed dev utterances already reported (updated).

    Raises:
        DataDirError: every dev utterance failed (on every rank).
    """
    from funasr_lite.decode.cer import score_utterance

    reported = set() if reported is None else reported
    sums = [0.0] * 6  # loss*B, acc*B, B (finite), failed utterances, CER errors, CER reference units
    examples: List[str] = []
    device = next(model.parameters()).device

    def run(batch: Dict[str, Any], b: int) -> List[float]:
        loss, stats = forward(model, batch)
        lv, av = scalar(loss), scalar(stats.get("acc"))
        if lv is None or not math.isfinite(lv) or av is None or not math.isfinite(av):
            raise _Unusable(f"NaN/Inf loss or acc ({lv}, {av})")
        part = [lv * b, av * b, b, 0.0, 0.0, 0.0]
        if decode_fn is None:
            return part
        try:
            with autocast():
                hyps = decode_fn(model, batch["speech"].to(device), batch["speech_lengths"].to(device))
        except torch.cuda.OutOfMemoryError:
            raise
        except (RuntimeError, ValueError, IndexError) as e:  # e.g. NaN CIF weights: "cannot convert float NaN"
            raise _Unusable(f"decoding failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        keys = batch.get("keys") or [str(i) for i in range(b)]
        for i in range(b):
            n_ref = int(batch["text_lengths"][i])
            ref, _ = tokenizer.decode([int(t) for t in batch["text"][i, :n_ref].tolist()])
            hyp, _ = tokenizer.decode([int(t) for t in hyps[i]])
            score = score_utterance(str(keys[i]), ref, hyp)
            part[4] += score.wrong
            part[5] += score.nwords
            if len(examples) < 2:
                examples.append(f"{keys[i]}: REF {ref} | HYP {hyp}")
        return part

    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            b = int(batch["speech"].shape[0])
            if b == 0:
                continue
            try:
                parts = [run(batch, b)]
            except _Unusable:  # find the utterance(s) at fault; the others count
                parts = []
                for i in range(b):
                    one = _utterance(batch, i)
                    try:
                        parts.append(run(one, 1))
                    except _Unusable as e:
                        parts.append([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
                        if one["keys"][0] not in reported:
                            reported.add(one["keys"][0])
                            logger.warning("dev utterance %s: %s; skipped in every validation", one["keys"][0], e)
            for part in parts:
                sums = [x + y for x, y in zip(sums, part)]
    finally:
        model.train(was_training)
    sums = all_reduce_sum(sums, dist)
    if sums[3] and not sums[2]:
        raise DataDirError(
            f"epoch {epoch}: all {int(sums[3])} dev utterances failed (NaN/Inf loss or failed decoding; each is "
            "reported above), so there is no dev metric to rank checkpoints by: fix or replace the dev set"
        )
    if dist.is_main:
        if sums[3]:
            logger.warning(
                "epoch %d: %d dev utterance(s) failed and were left out of the dev metrics", epoch, int(sums[3])
            )
        for line in examples:
            logger.info("dev example  %s", line)
    return DevResult(
        loss=sums[0] / sums[2] if sums[2] else None,
        acc=sums[1] / sums[2] if sums[2] else None,
        cer=round(100.0 * sums[4] / sums[5], 4) if decode_fn is not None and sums[5] else None,
    )


def warn_if_dev_suspicious(records: Sequence[Any]) -> None:
    """Warn when the last of ``records`` (not empty) has unusable dev metrics (NaN/empty) or the same ones as the
    previous epoch although updates were made (FunASR issue #862: a "training" that changes nothing)."""
    last = records[-1]
    if last.dev_loss is None:
        logger.warning("epoch %d: dev loss is NaN/Inf or the dev set is empty; dev metrics are unusable", last.epoch)
    if len(records) > 1:
        prev = records[-2]
        if (
            last.dev_loss is not None
            and last.dev_loss == prev.dev_loss
            and last.dev_acc == prev.dev_acc
            and last.step > prev.step
        ):
            logger.warning(
                "epoch %d: dev loss and acc are identical to epoch %d although %d updates were made: "
                "is the model really training (lr, frozen parameters)?",
                last.epoch,
                prev.epoch,
                last.step - prev.step,
            )
