"""Paraformer's acoustic frontend: Kaldi fbank -> LFR stacking -> global CMVN.

Same steps and numbers as funasr 1.4.16 ``WavFrontend`` (``frontends/wav_frontend.py``):

1. waveform (float in [-1, 1]) x 32768 (``upsacle_samples``, FunASR's spelling);
2. ``torchaudio.compliance.kaldi.fbank``: ``n_mels`` bins, ``frame_length``/``frame_shift`` ms,
   ``window``, ``energy_floor=0``, ``dither`` from the config (0 at inference), torchaudio's
   other defaults (pre-emphasis 0.97, DC removal, snip_edges, log power mel, low_freq 20);
   an utterance shorter than one frame gets a frame as long as itself, as in FunASR;
3. LFR (low frame rate): ``T_lfr = ceil(T / lfr_n)``; frames are padded on the left with
   ``(lfr_m - 1) // 2`` copies of frame 0 and on the right with copies of the last frame;
   output frame i stacks padded frames ``lfr_n*i .. lfr_n*i + lfr_m - 1`` (``n_mels*lfr_m`` dims);
4. CMVN: ``(x + AddShift) * Rescale`` per dimension, from the Kaldi nnet1 ``am.mvn``.

``am.mvn`` (text)::

    <Nnet>
    <Splice> D D
    [ 0 ]
    <AddShift> D D
    <LearnRateCoef> 0 [ -mean_1 ... -mean_D ]
    <Rescale> D D
    <LearnRateCoef> 0 [ 1/std_1 ... 1/std_D ]
    </Nnet>
"""

import math
import os
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torchaudio.compliance.kaldi as kaldi

from funasr_lite.config.sections import WINDOW_TYPES  # torch-free: the config checks it at load
from funasr_lite.errors import AudioError, ModelDirError
from funasr_lite.utils.fileio import atomic_write_text
from funasr_lite.utils.textio import read_utf8

# Smallest variance used when turning statistics into a standard deviation (a constant
# feature dimension would otherwise give an infinite Rescale).
VAR_FLOOR = 1e-10


def _vector_after(path: str, lines: List[str], start: int, tag: str, dims: int) -> List[float]:
    """Parse the ``<LearnRateCoef> 0 [ v1 ... vD ]`` vector that follows line ``start``."""
    lineno = start + 1
    tokens = lines[lineno].split() if lineno < len(lines) else []
    if tokens[:1] != ["<LearnRateCoef>"]:
        raise ModelDirError(f"{path}:{start + 2}: expected a '<LearnRateCoef> 0 [ ... ]' line after {tag}")
    # The vector normally sits on one line; follow it onto later lines up to its "]".
    while "]" not in tokens and lineno + 1 < len(lines):
        lineno += 1
        tokens += lines[lineno].split()
    if len(tokens) < 4 or tokens[2] != "[" or tokens[-1] != "]":
        raise ModelDirError(f"{path}:{start + 2}: malformed {tag} vector (want '<LearnRateCoef> 0 [ ... ]')")
    try:
        values = [float(t) for t in tokens[3:-1]]
    except ValueError as exc:
        raise ModelDirError(f"{path}:{start + 2}: non-numeric value in {tag} vector: {exc}") from exc
    if dims >= 0 and len(values) != dims:
        raise ModelDirError(f"{path}:{start + 2}: {tag} declares {dims} dims but its vector has {len(values)} values")
    if not all(math.isfinite(v) for v in values):
        raise ModelDirError(f"{path}:{start + 2}: {tag} vector contains NaN/Inf")
    return values


def load_cmvn(path: str) -> torch.Tensor:
    """Read a Kaldi nnet1 text ``am.mvn``.

    Returns:
        float32 tensor (2, D): row 0 = AddShift (= -mean), row 1 = Rescale (= 1/std).

    Raises:
        ModelDirError: missing/unreadable file, missing or malformed ``<AddShift>``/``<Rescale>``,
            dimension mismatch, non-numeric or non-finite values (message names file:line).
    """
    path = os.fspath(path)
    lines = read_utf8(path, "CMVN", ModelDirError).splitlines()
    found = {}
    for i, line in enumerate(lines):
        tokens = line.split()
        if not tokens or tokens[0] not in ("<AddShift>", "<Rescale>"):
            continue
        tag = tokens[0]
        if tag in found:
            raise ModelDirError(f"{path}:{i + 1}: second {tag} component (only one is supported)")
        dims = -1
        if len(tokens) >= 2:
            try:
                dims = int(tokens[1])
            except ValueError as exc:
                raise ModelDirError(f"{path}:{i + 1}: bad dimension in '{line.strip()}'") from exc
        found[tag] = _vector_after(path, lines, i, tag, dims)
    for tag in ("<AddShift>", "<Rescale>"):
        if tag not in found:
            raise ModelDirError(f"{path}: no {tag} component: not a Kaldi nnet1 am.mvn file")
    shift, scale = found["<AddShift>"], found["<Rescale>"]
    if len(shift) != len(scale) or not shift:
        raise ModelDirError(f"{path}: <AddShift> has {len(shift)} values but <Rescale> has {len(scale)}")
    return torch.tensor([shift, scale], dtype=torch.float32)


def _fmt(values: np.ndarray) -> str:
    # str(np.float32) is the shortest text that reads back as the same float32.
    return " ".join(str(v) for v in values.astype(np.float32))


def write_cmvn(path: str, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Write ``am.mvn`` in Kaldi nnet1 text format: AddShift = -mean, Rescale = 1/std.

    Args:
        path: output file (written atomically).
        mean: (D,) per-dimension mean of the (LFR-stacked) features.
        std: (D,) per-dimension standard deviation, > 0.

    Raises:
        ValueError: shapes differ, not 1-D, std <= 0, or non-finite values.
    """
    mean64 = torch.as_tensor(mean, dtype=torch.float64).detach().cpu()
    std64 = torch.as_tensor(std, dtype=torch.float64).detach().cpu()
    if mean64.ndim != 1 or mean64.shape != std64.shape or mean64.numel() == 0:
        raise ValueError(
            f"mean and std must be equal-length 1-D vectors, got {tuple(mean64.shape)} and {tuple(std64.shape)}"
        )
    if not bool(torch.isfinite(mean64).all() and torch.isfinite(std64).all()):
        raise ValueError("mean/std contain NaN/Inf")
    if not bool((std64 > 0).all()):
        raise ValueError("std must be > 0 in every dimension")
    dims = mean64.numel()
    text = (
        "<Nnet>\n"
        f"<Splice> {dims} {dims}\n"
        "[ 0 ]\n"
        f"<AddShift> {dims} {dims}\n"
        f"<LearnRateCoef> 0 [ {_fmt((-mean64).numpy())} ]\n"
        f"<Rescale> {dims} {dims}\n"
        f"<LearnRateCoef> 0 [ {_fmt((1.0 / std64).numpy())} ]\n"
        "</Nnet>\n"
    )
    atomic_write_text(path, text)


def compute_cmvn_stats(feats: Iterable[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Global mean and standard deviation over all frames of all utterances.

    Args:
        feats: iterable of (T, D) feature matrices (e.g. fbank or LFR output, without CMVN).

    Returns:
        (mean (D,) float64, std (D,) float64, total frames).  The variance
        E[x^2] - mean^2 is floored at ``VAR_FLOOR``; sums are accumulated in float64.

    Raises:
        ValueError: no frames at all, or matrices of different widths.
    """
    total = 0
    s1: Optional[torch.Tensor] = None
    s2: Optional[torch.Tensor] = None
    for mat in feats:
        mat = torch.as_tensor(mat).detach().to(torch.float64).cpu()
        if mat.ndim != 2:
            raise ValueError(f"expected a (T, D) matrix, got shape {tuple(mat.shape)}")
        if s1 is None:
            s1 = torch.zeros(mat.shape[1], dtype=torch.float64)
            s2 = torch.zeros(mat.shape[1], dtype=torch.float64)
        elif mat.shape[1] != s1.numel():
            raise ValueError(f"feature width changed from {s1.numel()} to {mat.shape[1]}")
        s1 += mat.sum(0)
        s2 += (mat * mat).sum(0)
        total += mat.shape[0]
    if s1 is None or total == 0:
        raise ValueError("no feature frames to compute CMVN statistics from")
    mean = s1 / total
    var = (s2 / total - mean * mean).clamp_min(VAR_FLOOR)
    return mean, var.sqrt(), total


def apply_lfr(feats: torch.Tensor, lengths: torch.Tensor, lfr_m: int, lfr_n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Low-frame-rate stacking of a padded batch (vectorised, padding-invariant).

    Args:
        feats: (B, T, D) frames; rows at or past ``lengths[b]`` are ignored.
        lengths: (B,) valid frame counts, each >= 1.
        lfr_m: frames stacked per output frame.
        lfr_n: hop in input frames.

    Returns:
        (B, T_lfr_max, D * lfr_m) with zero rows past each length, and
        lengths ceil(lengths / lfr_n) (B,) int64.
    """
    bsz, _, dim = feats.shape
    lengths = lengths.to(device=feats.device, dtype=torch.long)
    out_lens = torch.div(lengths + lfr_n - 1, lfr_n, rounding_mode="floor")
    t_out = int(out_lens.max())
    # Index of padded frame (lfr_n*i + j) in the original frames, clamped per utterance:
    # below 0 -> frame 0 (left padding), past the end -> last frame (tail padding).
    first = torch.arange(t_out, device=feats.device)[:, None] * lfr_n - (lfr_m - 1) // 2  # (T_out, 1)
    pos = first + torch.arange(lfr_m, device=feats.device)[None, :]  # (T_out, m)
    idx = torch.minimum(pos.clamp_min(0)[None], (lengths - 1).clamp_min(0)[:, None, None])  # (B, T_out, m)
    gathered = torch.gather(feats, 1, idx.reshape(bsz, -1, 1).expand(-1, -1, dim))
    out = gathered.reshape(bsz, t_out, lfr_m * dim)
    valid = torch.arange(t_out, device=feats.device)[None, :] < out_lens[:, None]
    return out.masked_fill(~valid[:, :, None], 0.0), out_lens


class WavFrontend(nn.Module):
    """Waveforms -> CMVN-normalised LFR fbank features, like FunASR's ``WavFrontend``.

    Constructor arguments are FunASR's ``frontend_conf`` keys (same names, including the
    ``upsacle_samples`` spelling; ``filter_length_min/max`` are accepted and unused, as in FunASR).
    Defaults follow Paraformer-large and this project's inference rule: ``lfr_m=7, lfr_n=6``
    and ``dither=0.0`` (FunASR's class defaults are 1, 1 and 1.0).  Unknown keys are a
    TypeError; bad values a ValueError.

    The CMVN tensor is a non-persistent buffer: it is not part of ``state_dict()``.
    """

    def __init__(
        self,
        cmvn_file: Optional[str] = None,
        fs: int = 16000,
        window: str = "hamming",
        n_mels: int = 80,
        frame_length: float = 25,
        frame_shift: float = 10,
        filter_length_min: int = -1,
        filter_length_max: int = -1,
        lfr_m: int = 7,
        lfr_n: int = 6,
        dither: float = 0.0,
        snip_edges: bool = True,
        upsacle_samples: bool = True,
    ):
        super().__init__()
        if not (isinstance(fs, int) and fs > 0):
            raise ValueError(f"fs must be a positive int, got {fs!r}")
        if window not in WINDOW_TYPES:
            raise ValueError(f"window must be one of {WINDOW_TYPES}, got {window!r}")
        if not (isinstance(n_mels, int) and n_mels > 0):
            raise ValueError(f"n_mels must be a positive int, got {n_mels!r}")
        if not (frame_length > 0 and frame_shift > 0):
            raise ValueError(f"frame_length and frame_shift must be > 0 ms, got {frame_length!r}, {frame_shift!r}")
        if not (isinstance(lfr_m, int) and isinstance(lfr_n, int) and lfr_m >= 1 and lfr_n >= 1):
            raise ValueError(f"lfr_m and lfr_n must be ints >= 1, got {lfr_m!r}, {lfr_n!r}")
        if not (dither >= 0):
            raise ValueError(f"dither must be >= 0, got {dither!r}")
        self.fs = fs  # sample rate in Hz of the input waveforms
        self.window = window  # analysis window type
        self.n_mels = n_mels  # mel bins per fbank frame
        self.frame_length = frame_length  # analysis window in ms
        self.frame_shift = frame_shift  # hop in ms
        self.lfr_m = lfr_m  # frames stacked per LFR frame
        self.lfr_n = lfr_n  # LFR hop in frames
        self.dither = float(dither)  # Kaldi dither amount (0 = deterministic)
        self.snip_edges = bool(snip_edges)  # Kaldi snip_edges framing
        self.upsacle_samples = bool(upsacle_samples)  # multiply [-1, 1] samples by 32768 first
        cmvn = None
        if cmvn_file is not None:
            cmvn = load_cmvn(cmvn_file)
            if cmvn.shape[1] != self.output_size():
                raise ModelDirError(
                    f"{cmvn_file}: CMVN has {cmvn.shape[1]} dims but the frontend outputs "
                    f"n_mels*lfr_m = {self.output_size()}"
                )
        self.register_buffer("cmvn", cmvn, persistent=False)

    def output_size(self) -> int:
        """Feature width: ``n_mels * lfr_m``."""
        return self.n_mels * self.lfr_m

    def _fbank(self, wav: torch.Tensor) -> torch.Tensor:
        """(S,) float waveform -> (T, n_mels) log-mel fbank."""
        # FunASR shortens the window to the whole utterance when it is shorter than one frame.
        frame_length = min(self.frame_length, wav.shape[0] / self.fs * 1000)
        if self.upsacle_samples:
            wav = wav * (1 << 15)
        return kaldi.fbank(
            wav[None, :],
            num_mel_bins=self.n_mels,
            frame_length=frame_length,
            frame_shift=self.frame_shift,
            dither=self.dither,
            energy_floor=0.0,
            window_type=self.window,
            sample_frequency=self.fs,
            snip_edges=self.snip_edges,
        )

    def forward(
        self, wavs: torch.Tensor, lengths: Union[torch.Tensor, Sequence[int]]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Compute features for a padded batch.

        Args:
            wavs: (B, S) float waveforms in [-1, 1]; samples past ``lengths[b]`` are ignored.
            lengths: (B,) valid sample counts, each >= 1.

        Returns:
            feats (B, T, n_mels*lfr_m) float32, zero past each length, and
            feat_lengths (B,) int64.  Each utterance's features do not depend on the
            batch it is in or on the padding.

        Raises:
            AudioError: an utterance's fbank features are not finite (they never reach the model).
        """
        if wavs.ndim != 2:
            raise ValueError(f"wavs must be (B, S), got shape {tuple(wavs.shape)}")
        lens = [int(n) for n in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
        if len(lens) != wavs.shape[0]:
            raise ValueError(f"got {wavs.shape[0]} waveforms but {len(lens)} lengths")
        for b, n in enumerate(lens):
            if n < 1 or n > wavs.shape[1]:
                raise ValueError(f"length {n} of utterance {b} is outside 1..{wavs.shape[1]}")
        wavs = wavs.to(torch.float32)
        mats = [self._fbank(wavs[b, :n]) for b, n in enumerate(lens)]
        bad = [b for b, m in enumerate(mats) if not bool(torch.isfinite(m).all())]
        if bad:  # never hand NaN/Inf to the model; the caller can retry the others one by one
            which = "" if len(mats) == 1 else f"utterance(s) {bad} of the batch: "
            raise AudioError(
                f"{which}non-finite (NaN/Inf) fbank features; the samples are NaN/Inf or far outside [-1, 1]"
            )
        frame_lens = torch.tensor([m.shape[0] for m in mats], dtype=torch.long, device=wavs.device)
        if int(frame_lens.min()) < 1:
            raise ValueError("an utterance produced no fbank frames")
        feats = nn.utils.rnn.pad_sequence(mats, batch_first=True)
        if self.lfr_m != 1 or self.lfr_n != 1:
            feats, frame_lens = apply_lfr(feats, frame_lens, self.lfr_m, self.lfr_n)
        if self.cmvn is not None:
            cmvn = self.cmvn.to(feats.device)
            feats = (feats + cmvn[0]) * cmvn[1]
            valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < frame_lens[:, None]
            feats = feats.masked_fill(~valid[:, :, None], 0.0)
        return feats, frame_lens
