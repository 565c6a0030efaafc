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
from typing import Any, Callable, ContextManager, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from funasr_lite.train.distributed import DistInfo, all_reduce_sum

__all__ = ["DevResult", "evaluate", "DecodeFn", "scalar", "warn_if_dev_suspicious"]

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
) -> DevResult:
    """Evaluate ``model`` (put in eval mode, restored to train mode after) on ``loader``; rank 0 logs two
    "key: REF ... | HYP ..." examples and how many batches had a NaN/Inf loss or acc (left out of the means).

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
    """
    from funasr_lite.decode.cer import score_utterance

    was_training = model.training
    model.eval()
    sums = [0.0] * 6  # loss*B, acc*B, B (finite), nonfinite batches, CER errors, CER reference units
    examples: List[str] = []
    device = next(model.parameters()).device
    try:
        for batch in loader:
            b = int(batch["speech"].shape[0])
            if b == 0:
                continue
            loss, stats = forward(model, batch)
            lv, av = scalar(loss), scalar(stats.get("acc"))
            if lv is not None and math.isfinite(lv) and av is not None and math.isfinite(av):
                sums[0] += lv * b
                sums[1] += av * b
                sums[2] += b
            else:
                sums[3] += 1
            if decode_fn is None:
                continue
            with autocast():
                hyps = decode_fn(model, batch["speech"].to(device), batch["speech_lengths"].to(device))
            keys = batch.get("keys") or [str(i) for i in range(b)]
            for i in range(b):
                n_ref = int(batch["text_lengths"][i])
                ref, _ = tokenizer.decode([int(t) for t in batch["text"][i, :n_ref].tolist()])
                hyp, _ = tokenizer.decode([int(t) for t in hyps[i]])
                score = score_utterance(str(keys[i]), ref, hyp)
                sums[4] += score.wrong
                sums[5] += score.nwords
                if len(examples) < 2:
                    examples.append(f"{keys[i]}: REF {ref} | HYP {hyp}")
    finally:
        model.train(was_training)
    sums = all_reduce_sum(sums, dist)
    if dist.is_main:
        if sums[3]:
            logger.warning(
                "epoch %d: %d dev batch(es) had a NaN/Inf loss or acc and were left out", epoch, int(sums[3])
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
