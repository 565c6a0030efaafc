"""Length-bucketed batches (small datasets) and the collate function that pads them and extracts features.

:class:`BucketBatchSampler` is FunASR's ``LengthBatchSampler``, except that a batch never overshoots
``batch_bins`` by one utterance; lengths are LFR frames, ``ceil(ms / 60)`` (see
:meth:`~funasr_lite.data.options.DatasetConf.batch_units`). :func:`collate` runs the frontend
(fbank + LFR + CMVN) inside the DataLoader workers.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Sampler

__all__ = ["Item", "BucketBatchSampler", "collate"]

Item = Tuple[str, torch.Tensor, torch.Tensor]


class BucketBatchSampler(Sampler[List[int]]):
    """Length-sorted buckets with ``len(batch) * longest <= batch_bins``; batch order shuffled per epoch.

    Sorted by (length, index) and cut greedily (a lone over-long utterance is its own
    batch); indices longest first. With ``shuffle`` the fixed batches are permuted by
    ``Random(seed + epoch)``, identically on every rank; with ``pad`` the list is padded
    by repeating its first batches to a multiple of ``world_size``, and rank ``r`` takes
    batches ``r, r + world_size, ...``, so every rank gets ``len(self)`` batches.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_bins: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        epoch: int = 0,
    ) -> None:
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        self.batches: List[List[int]] = []
        cur: List[int] = []
        for i in order:
            if cur and (len(cur) + 1) * lengths[i] > batch_bins:
                self.batches.append(cur[::-1])
                cur = []
            cur.append(i)
        self.batches.append(cur[::-1])
        self.shuffle, self.seed, self.rank, self.world_size, self.pad = shuffle, seed, rank, world_size, pad
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the batch order of ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[List[int]]:
        batches = list(self.batches)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(batches)
        if self.pad and self.world_size > 1:
            n = -(-len(batches) // self.world_size) * self.world_size
            batches += [batches[i % len(batches)] for i in range(n - len(batches))]
        return iter(batches[self.rank :: self.world_size])

    def __len__(self) -> int:
        n = len(self.batches)
        return -(-n // self.world_size) if self.pad else len(range(self.rank, n, self.world_size))


def _pad(seqs: Sequence[torch.Tensor], value: float, dtype: torch.dtype) -> "Tuple[torch.Tensor, torch.Tensor]":
    """1-D tensors -> (B, max_len) padded with ``value``, and their lengths (B,) int64."""
    lens = torch.tensor([x.numel() for x in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lens.max()) if seqs else 0), value, dtype=dtype)
    for b, x in enumerate(seqs):
        out[b, : x.numel()] = x
    return out, lens


def collate(items: Sequence[Optional[Item]], frontend: Optional[torch.nn.Module] = None) -> Dict[str, Any]:
    """Pads a list of ``(key, wav, ids)`` items and extracts features with ``frontend``.

    Returns a dict:
        ``keys``: List[str] (B); ``speech``: (B, T, D) float32 features from the
        frontend (D = 80 x lfr_m = 560), or (B, S) padded waveforms when
        ``frontend`` is None; ``speech_lengths``: (B,) int64;
        ``text``: (B, L) int64 token ids padded with -1; ``text_lengths``: (B,) int64.
    None items (audio that failed to load) are dropped; if none is left B is 0.
    """
    items = [it for it in items if it is not None]
    keys = [it[0] for it in items]
    wavs, wav_lens = _pad([it[1] for it in items], 0.0, torch.float32)
    text, text_lens = _pad([it[2] for it in items], -1, torch.long)
    if frontend is None:
        speech, speech_lens = wavs, wav_lens
    elif not items:
        dim = int(getattr(frontend, "output_size", lambda: 0)())
        speech, speech_lens = torch.zeros(0, 0, dim), wav_lens
    else:
        with torch.no_grad():
            speech, speech_lens = frontend(wavs, wav_lens)
        speech_lens = torch.as_tensor(speech_lens, dtype=torch.long)
    return {"keys": keys, "speech": speech, "speech_lengths": speech_lens, "text": text, "text_lengths": text_lens}
