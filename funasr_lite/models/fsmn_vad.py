"""The FSMN encoder of FunASR's FSMN-VAD (``encoder: FSMN``): LFR fbank frames -> per-frame class posteriors.

Layers, in order (parameter names are FunASR's, so its ``model.pt`` loads unchanged)::

    in_linear1.linear   Linear(input_dim -> input_affine_dim)
    in_linear2.linear   Linear(input_affine_dim -> linear_dim), then ReLU
    fsmn.<i>            fsmn_layers blocks, each:
        linear.linear         Linear(linear_dim -> proj_dim), no bias
        fsmn_block.conv_left  causal depthwise memory over lorder frames (dilation lstride), added to its input
        fsmn_block.conv_right look-ahead memory over rorder frames (only when rorder > 0)
        affine.linear         Linear(proj_dim -> linear_dim), then ReLU
    out_linear1.linear  Linear(linear_dim -> output_affine_dim)
    out_linear2.linear  Linear(output_affine_dim -> output_dim), then softmax

The left memory is streamed: each block keeps the last ``(lorder - 1) * lstride`` projected frames of the
previous call (zeros before the first), so calling the encoder chunk by chunk gives what one call on the
whole input gives. The right memory sees only the current chunk (zero padding at its end), as in FunASR.
"""

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FSMNEncoder", "FsmnBlock", "FsmnLayer"]


class _Linear(nn.Module):
    """``nn.Linear`` under the attribute name ``linear`` (FunASR's parameter names)."""

    def __init__(self, idim: int, odim: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(idim, odim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class FsmnBlock(nn.Module):
    """FSMN memory: ``x + left(x) [+ right(x)]`` with depthwise convolutions over time."""

    def __init__(self, dim: int, lorder: int, rorder: int, lstride: int, rstride: int):
        super().__init__()
        self.lorder = lorder  # left memory taps
        self.rorder = rorder  # right (look-ahead) memory taps; 0 = none
        self.lstride = lstride  # dilation of the left taps, frames
        self.rstride = rstride  # dilation of the right taps, frames
        self.conv_left = nn.Conv2d(dim, dim, [lorder, 1], dilation=[lstride, 1], groups=dim, bias=False)
        self.conv_right = (
            nn.Conv2d(dim, dim, [rorder, 1], dilation=[rstride, 1], groups=dim, bias=False) if rorder > 0 else None
        )

    def history(self) -> int:
        """Frames of left context the memory needs: ``(lorder - 1) * lstride``."""
        return (self.lorder - 1) * self.lstride

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        """x: (B, T, D); state: (B, D, history, 1), the previous frames. Returns (B, T, D) and the new state."""
        xt = x.unsqueeze(1).permute(0, 3, 2, 1)  # (B, D, T, 1)
        padded = torch.cat((state.to(xt.device), xt), dim=2)
        new_state = padded[:, :, -self.history() :, :]  # FunASR's slice, kept as is
        out = xt + self.conv_left(padded)
        if self.conv_right is not None:
            ahead = F.pad(xt, [0, 0, 0, self.rorder * self.rstride])[:, :, self.rstride :, :]
            out += self.conv_right(ahead)
        return out.permute(0, 3, 2, 1).squeeze(1), new_state


class FsmnLayer(nn.Module):
    """Projection -> FSMN memory -> affine -> ReLU (FunASR's ``BasicBlock``)."""

    def __init__(self, linear_dim: int, proj_dim: int, lorder: int, rorder: int, lstride: int, rstride: int):
        super().__init__()
        self.linear = _Linear(linear_dim, proj_dim, bias=False)
        self.fsmn_block = FsmnBlock(proj_dim, lorder, rorder, lstride, rstride)
        self.affine = _Linear(proj_dim, linear_dim)

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        """x: (B, T, linear_dim) -> (B, T, linear_dim) and the block's new memory state."""
        y, state = self.fsmn_block(self.linear(x), state)
        return torch.relu(self.affine(y)), state


class FSMNEncoder(nn.Module):
    """FunASR's ``FSMN`` encoder; constructor arguments are its ``encoder_conf`` keys."""

    def __init__(
        self,
        input_dim: int,
        input_affine_dim: int,
        fsmn_layers: int,
        linear_dim: int,
        proj_dim: int,
        lorder: int,
        rorder: int,
        lstride: int,
        rstride: int,
        output_affine_dim: int,
        output_dim: int,
        use_softmax: bool = True,
    ):
        super().__init__()
        self.proj_dim = proj_dim  # width of the FSMN memory
        self.use_softmax = use_softmax  # posteriors (True) or logits
        self.in_linear1 = _Linear(input_dim, input_affine_dim)
        self.in_linear2 = _Linear(input_affine_dim, linear_dim)
        self.fsmn = nn.ModuleList(
            FsmnLayer(linear_dim, proj_dim, lorder, rorder, lstride, rstride) for _ in range(fsmn_layers)
        )
        self.out_linear1 = _Linear(linear_dim, output_affine_dim)
        self.out_linear2 = _Linear(output_affine_dim, output_dim)

    def initial_state(self, batch: int = 1, device: Optional[torch.device] = None) -> List[torch.Tensor]:
        """Zero memory for each block: (B, proj_dim, history, 1) tensors."""
        return [torch.zeros(batch, self.proj_dim, b.fsmn_block.history(), 1, device=device) for b in self.fsmn]

    def forward(self, feats: torch.Tensor, state: List[torch.Tensor]):
        """feats: (B, T, input_dim); state: from :meth:`initial_state` or the previous call.

        Returns:
            (B, T, output_dim) posteriors (logits without softmax), and the new state.
        """
        x = torch.relu(self.in_linear2(self.in_linear1(feats)))
        new_state = []
        for layer, s in zip(self.fsmn, state):
            x, s = layer(x, s)
            new_state.append(s)
        x = self.out_linear2(self.out_linear1(x))
        return (torch.softmax(x, dim=-1) if self.use_softmax else x), new_state
