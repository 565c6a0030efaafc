"""The FSMN-VAD frontend: streamed Kaldi fbank -> LFR stacking -> CMVN, fed one chunk of audio at a time.

It computes what FunASR 1.4.16's ``WavFrontendOnline`` computes when FsmnVADStreaming feeds it the 60 s chunks
of a file, call by call (the same fbank calls on the same samples, so the same floats):

1. the samples left over from the previous call are put in front of the chunk; every full frame
   (``frame_length`` ms, hop ``frame_shift`` ms) gets a Kaldi fbank row (samples x 32768, ``energy_floor`` 0,
   ``snip_edges``; FunASR's online frontend always scales and always snips, whatever ``upsacle_samples`` and
   ``snip_edges`` say); the samples after the last frame start are kept for the next call;
2. LFR with ``lfr_n = 1``: output frame ``t`` stacks fbank frames ``t - (lfr_m-1)//2 .. t + lfr_m - 1 - (lfr_m-1)//2``;
   the stream's first frame is repeated on the left; a frame is emitted once its right context has arrived,
   and on the last call the last frame is repeated on the right;
3. CMVN ``(x + AddShift) * Rescale``.

With each batch of output frames comes the exact waveform span they cover,
``[t0 * hop, (t0 + n - 1) * hop + frame_length)`` in stream samples, for the detector's frame energies.
Memory holds one chunk plus a few frames.
"""

from typing import Optional, Tuple

import torch
import torchaudio.compliance.kaldi as kaldi

from funasr_lite.config.sections import FrontendConf

__all__ = ["VadFrontend"]


class VadFrontend:
    """Streaming features for the VAD; :meth:`reset` before each new input."""

    def __init__(self, conf: FrontendConf, cmvn: Optional[torch.Tensor]):
        """conf: the dir's frontend_conf (lfr_n must be 1); cmvn: (2, n_mels*lfr_m) AddShift/Rescale, or None."""
        self.conf = conf  # fbank and LFR options
        self.cmvn = cmvn  # (2, D) float32 or None
        self.frame_len = int(conf.frame_length * conf.fs / 1000)  # samples per fbank frame
        self.hop = int(conf.frame_shift * conf.fs / 1000)  # samples per hop
        self.reset()

    def reset(self) -> None:
        """Forget the previous stream."""
        self._pending = torch.empty(0)  # samples not yet framed
        self._context: Optional[torch.Tensor] = None  # fbank frames kept for LFR context; None before any
        self._emitted = 0  # LFR frames emitted so far
        self._wave = torch.empty(0)  # stream samples from self._wave_start on
        self._wave_start = 0

    def _fbank(self, samples: torch.Tensor) -> torch.Tensor:
        c = self.conf
        return kaldi.fbank(
            (samples * (1 << 15)).unsqueeze(0),
            num_mel_bins=c.n_mels,
            frame_length=c.frame_length,
            frame_shift=c.frame_shift,
            dither=c.dither,
            energy_floor=0.0,
            window_type=c.window,
            sample_frequency=c.fs,
        )

    def _stack(self, frames: torch.Tensor, final: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """LFR over ``frames`` (T, n_mels) = context + new: the rows whose right context is there (all on
        the last call, padding with the last frame), and the frames to keep as the next call's context."""
        m, total = self.conf.lfr_m, frames.shape[0]
        rows = total - (m - 1) // 2 if final else total - m + 1
        keep = frames[min(total - 1, rows) :] if not final else frames[:0]
        if rows <= 0:
            return frames.new_zeros(0, m * frames.shape[1]), keep
        need = rows - 1 + m
        if need > total:
            frames = torch.cat([frames, frames[-1:].expand(need - total, -1)])
        idx = torch.arange(rows)[:, None] + torch.arange(m)[None, :]
        return frames[idx].reshape(rows, -1), keep

    def accept(self, chunk: torch.Tensor, final: bool) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """Feed the next samples of the stream (``final``: the last call).

        Args:
            chunk: (S,) float32 samples (S may be 0).

        Returns:
            None when no frame is ready, else (feats (1, N, n_mels*lfr_m) float32, the N frames'
            waveform span ((N - 1) * hop + frame_length,)).
        """
        if chunk.numel() > 0:
            self._wave = torch.cat((self._wave, chunk))
        samples = torch.cat((self._pending, chunk))
        n = 0
        if samples.numel() >= self.frame_len:
            n = max(int((samples.numel() - self.frame_len) / self.hop + 1), 0)
        left = samples.numel() - n * self.hop
        self._pending = samples[-left:] if left else samples  # FunASR's slice: [-0:] keeps everything
        m = self.conf.lfr_m
        if n:
            fb = self._fbank(samples)
            if self._context is None:
                self._context = fb[:1].repeat((m - 1) // 2, 1)
            if not final and n + self._context.shape[0] < m:
                self._context = torch.cat((self._context, fb))
                return None
            feats, self._context = self._stack(torch.cat((self._context, fb)), final)
        elif final and self._context is not None:
            feats, self._context = self._stack(self._context, True)
        else:
            return None
        rows = feats.shape[0]
        if rows == 0:
            return None
        if self.cmvn is not None:
            feats = (feats + self.cmvn[0]) * self.cmvn[1]
        start = self._emitted * self.hop - self._wave_start
        span = self._wave[start : start + (rows - 1) * self.hop + self.frame_len]
        self._emitted += rows
        end = self._wave_start + self._wave.numel()
        next_start = min(self._emitted * self.hop, end)
        self._wave = self._wave[next_start - self._wave_start :]
        self._wave_start = next_start
        return feats.to(torch.float32)[None], span
