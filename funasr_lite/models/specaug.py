"""SpecAugment for LFR features (FunASR ``SpecAugLFR``), used in training only.

Keyword names equal FunASR's ``specaug_conf`` keys. Order: time warp, frequency
masks, time masks. The random draws (``torch.randint`` calls, their shapes and
order) are the same as FunASR's, so with the same seed the same bands are masked.

- Frequency masks: the LFR feature is ``lfr_rate + 1`` stacked base frames
  (7 x 80 = 560 for Paraformer-large); a band is drawn inside one base block and
  the same band is zeroed in every block.
- Time masks: widths from ``time_mask_width_range`` (or, with
  ``time_mask_width_ratio_range``, as a fraction of the padded length); positions
  drawn over the padded length, as FunASR does.
- Time warp: bicubic stretch around a random centre (per utterance when lengths differ).
"""

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

Range = Union[int, float, Sequence[Union[int, float]]]


def _as_range(value: Optional[Range], name: str) -> Optional[Tuple]:
    """``w`` -> ``(0, w)``; validates a (low, high) pair with high > low; None stays None."""
    if value is None:
        return None
    pair = (0, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not pair[1] > pair[0]:
        raise ValueError(f"SpecAugLFR: {name} must be (low, high) with high > low, got {value!r}")
    return pair


def mask_along_axis(
    spec: torch.Tensor, width_range: Tuple[int, int], dim: int, num_mask: int, blocks: int = 1
) -> torch.Tensor:
    """Zero ``num_mask`` random bands per utterance along ``dim`` (1: time, 2: frequency) of spec (B, T, F);
    widths are drawn from ``[low, high)``; with ``blocks`` > 1 the axis is that many equal blocks and each band
    repeats in every block. Returns a masked (B, T, F) copy."""
    batch = spec.size(0)
    size = spec.size(dim)
    block = size // blocks
    widths = torch.randint(width_range[0], width_range[1], (batch, num_mask), device=spec.device)
    starts = torch.randint(0, max(1, block - int(widths.max())), (batch, num_mask), device=spec.device)
    offsets = torch.arange(blocks, device=spec.device) * block  # (blocks,)
    starts = (starts[:, None, :] + offsets[None, :, None]).reshape(batch, -1, 1)
    widths = widths[:, None, :].expand(-1, blocks, -1).reshape(batch, -1, 1)
    pos = torch.arange(size, device=spec.device)[None, None, :]
    mask = ((starts <= pos) & (pos < starts + widths)).any(dim=1)  # (B, size)
    mask = mask[:, :, None] if dim == 1 else mask[:, None, :]
    return spec.masked_fill(mask, 0.0)


def time_warp(x: torch.Tensor, window: int, mode: str) -> torch.Tensor:
    """Stretch frames ``[0, c)`` to ``[0, w)`` and ``[c, T)`` to ``[w, T)``; x: (B, T, F) -> (B, T, F)."""
    t = x.size(1)
    if t - window <= window:
        return x
    center = torch.randint(window, t - window, (1,))[0]
    warped = int(torch.randint(center - window, center + window, (1,))[0]) + 1
    center = int(center)
    x4 = x[:, None]
    left = F.interpolate(x4[:, :, :center], (warped, x.size(2)), mode=mode, align_corners=False)
    right = F.interpolate(x4[:, :, center:], (t - warped, x.size(2)), mode=mode, align_corners=False)
    return torch.cat([left, right], dim=2)[:, 0]


class SpecAugLFR(nn.Module):
    """SpecAugment on LFR features; see the module docstring. No parameters."""

    def __init__(
        self,
        apply_time_warp: bool = True,
        time_warp_window: int = 5,
        time_warp_mode: str = "bicubic",
        apply_freq_mask: bool = True,
        freq_mask_width_range: Range = (0, 20),
        num_freq_mask: int = 2,
        lfr_rate: int = 0,
        apply_time_mask: bool = True,
        time_mask_width_range: Optional[Range] = None,
        time_mask_width_ratio_range: Optional[Range] = None,
        num_time_mask: int = 2,
    ):
        super().__init__()
        if not (apply_time_warp or apply_freq_mask or apply_time_mask):
            raise ValueError("SpecAugLFR: enable at least one of time warp, freq mask, time mask")
        if apply_time_mask and (time_mask_width_range is None) == (time_mask_width_ratio_range is None):
            raise ValueError(
                "SpecAugLFR: with apply_time_mask give exactly one of "
                "time_mask_width_range / time_mask_width_ratio_range"
            )
        if lfr_rate < 0 or num_freq_mask < 0 or num_time_mask < 0:
            raise ValueError("SpecAugLFR: lfr_rate, num_freq_mask and num_time_mask must be >= 0")
        self.apply_time_warp = apply_time_warp
        self.time_warp_window = time_warp_window
        self.time_warp_mode = time_warp_mode
        self.apply_freq_mask = apply_freq_mask
        self.freq_mask_width_range = _as_range(freq_mask_width_range, "freq_mask_width_range")
        self.num_freq_mask = num_freq_mask
        self.blocks = lfr_rate + 1  # stacked base frames per LFR frame
        self.apply_time_mask = apply_time_mask
        self.time_mask_width_range = _as_range(time_mask_width_range, "time_mask_width_range")
        self.time_mask_width_ratio_range = _as_range(time_mask_width_ratio_range, "time_mask_width_ratio_range")
        self.num_time_mask = num_time_mask

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, F) features, lengths: (B,) -> augmented (B, T, F) copy and the same lengths."""
        if self.apply_time_warp:
            if bool((lengths == lengths[0]).all()):
                x = time_warp(x, self.time_warp_window, self.time_warp_mode)
            else:
                out = x.new_zeros(x.shape)
                for i, n in enumerate(lengths.tolist()):
                    out[i, :n] = time_warp(x[i : i + 1, :n], self.time_warp_window, self.time_warp_mode)[0]
                x = out
        if self.apply_freq_mask:
            x = mask_along_axis(x, self.freq_mask_width_range, 2, self.num_freq_mask, self.blocks)
        if self.apply_time_mask:
            if self.time_mask_width_range is not None:
                x = mask_along_axis(x, self.time_mask_width_range, 1, self.num_time_mask)
            else:
                t = x.size(1)
                low = max(0, math.floor(t * self.time_mask_width_ratio_range[0]))
                high = min(t, math.floor(t * self.time_mask_width_ratio_range[1]))
                if high > low:
                    x = mask_along_axis(x, (low, high), 1, self.num_time_mask)
        return x, lengths
