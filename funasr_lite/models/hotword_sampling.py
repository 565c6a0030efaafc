"""Training hotwords sampled from the targets, as FunASR's ``AudioDatasetHotword`` does for the
hotword models (ContextualParaformer, SeacoParaformer).

Per utterance of ``L`` target tokens (FunASR's defaults: ``hotword_min_length=2``,
``hotword_max_length=8``, ``sample_rate=0.75``, ``double_rate=0.1``):

* ``L < min``: no hotword;
* with probability ``1 - sample_rate``: no hotword;
* ``L == min``: the whole target;
* with probability ``double_rate``, when ``L > max + min + 2``: two spans, the first starting in
  ``[0, L // 3]`` and at most ``min(max, L // 2)`` long, the second after it;
* otherwise one span of ``min``..``max`` tokens (cut at the end of the target).

The random draws are Python's ``random`` module calls in FunASR's order, so one seed gives the spans
FunASR's code gives. The batch's hotwords are the spans' token ids, in utterance order, followed by the
"no bias" entry ``[1]``, padded with 0 (FunASR's collator). For SeACo, :func:`seaco_labels` gives the
hotword-decoder targets of the same spans.
"""

import random
from typing import List, Optional, Sequence, Tuple

import torch

__all__ = [
    "HOTWORD_MIN_LENGTH",
    "HOTWORD_MAX_LENGTH",
    "hotword_spans",
    "collate_hotwords",
    "seaco_labels",
    "sample_hotwords",
]

HOTWORD_MIN_LENGTH = 2  # FunASR's hotword_min_length (tokens)
HOTWORD_MAX_LENGTH = 8  # FunASR's hotword_max_length (tokens)
SAMPLE_RATE = 0.75  # probability that an utterance gets a hotword
DOUBLE_RATE = 0.1  # probability of two hotwords (long utterances only)
NO_BIAS_ID = 1  # the id of the "no bias" entry FunASR's collator appends


def hotword_spans(length: int, rng: Optional[random.Random] = None) -> List[Tuple[int, int]]:
    """Inclusive ``(start, end)`` token spans of the hotwords of one target of ``length`` tokens (0, 1 or 2)."""
    r = rng if rng is not None else random
    lo, hi = HOTWORD_MIN_LENGTH, HOTWORD_MAX_LENGTH
    if length < lo or r.random() >= SAMPLE_RATE:
        return []
    if length == lo:
        return [(0, length - 1)]
    if r.random() < DOUBLE_RATE and length > hi + lo + 2:
        longest = min(hi, length // 2)
        start1 = r.randint(0, length // 3)
        end1 = r.randint(start1 + lo - 1, start1 + longest - 1)
        start2 = r.randint(end1 + 1, length - lo)
        end2 = r.randint(min(length - 1, start2 + lo - 1), min(length - 1, start2 + hi - 1))
        return [(start1, end1), (start2, end2)]
    start = r.randint(0, length - lo)
    end = r.randint(min(length - 1, start + lo - 1), min(length - 1, start + hi - 1))
    return [(start, end)]


def collate_hotwords(
    text: torch.Tensor, spans: Sequence[Sequence[Tuple[int, int]]]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The batch's hotwords: text (B, L) ids, ``spans[b]`` the spans of utterance b ->
    hotword_pad (K, Lh) long padded with 0 (the last row is ``[NO_BIAS_ID]``) and hotword_lengths (K,) int32."""
    rows = [text[b, s : e + 1].long().cpu() for b, utt in enumerate(spans) for s, e in utt]
    rows.append(torch.tensor([NO_BIAS_ID]))
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.int32)
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=0), lengths


def seaco_labels(
    text: torch.Tensor, text_lengths: torch.Tensor, spans: Sequence[Sequence[Tuple[int, int]]], seaco_id: int
) -> torch.Tensor:
    """FunASR's ``seaco_label_pad``: (B, L) long, ``seaco_id`` on every target position, the target token inside
    a hotword span, -1 on padding. text (B, L) ids; text_lengths (B,)."""
    labels = torch.full(text.shape, -1, dtype=torch.long)
    for b, (n, utt) in enumerate(zip(text_lengths.tolist(), spans)):
        labels[b, : int(n)] = seaco_id
        for s, e in utt:
            labels[b, s : e + 1] = text[b, s : e + 1].long().cpu()
    return labels


def sample_hotwords(
    text: torch.Tensor, text_lengths: torch.Tensor, rng: Optional[random.Random] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sample the spans of every utterance (:func:`hotword_spans`) and collate them (:func:`collate_hotwords`)."""
    spans = [hotword_spans(int(n), rng) for n in text_lengths.tolist()]
    return collate_hotwords(text, spans)
