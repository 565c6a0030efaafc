"""CTC head of Paraformer (FunASR ``CTC``): a ``ctc_lo`` projection and the CTC loss."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class CTC(nn.Module):
    """CTC projection + loss; keyword names equal FunASR's ``ctc_conf`` keys.

    Loss (``ctc_type="builtin"``): ``torch.nn.CTCLoss(reduction="none")`` on
    ``log_softmax(ctc_lo(dropout(h)))`` summed over utterances and divided by
    the batch size. With ``ignore_nan_grad`` utterances whose loss is not finite
    (targets that cannot fit in the frames) are left out of both the sum and
    the count, as FunASR does; if none is finite the plain average is returned.
    With ``reduce=False`` the per-utterance losses divided by that count are returned.

    Differences from FunASR, both with no effect at ``dropout_rate=0`` (the default):
    dropout is applied in training mode only (FunASR applies it in eval too);
    ``warpctc``/``gtnctc`` are not supported (ValueError).

    Args:
        odim: vocabulary size.
        encoder_output_size: encoder output width.
        dropout_rate: dropout on the encoder output before ``ctc_lo``.
        ctc_type: only ``"builtin"``.
        reduce: reduce the loss to a scalar.
        ignore_nan_grad: drop utterances with a non-finite loss.
        extra_linear: with False there is no ``ctc_lo`` and the encoder output is used as logits.
    """

    def __init__(
        self,
        odim: int,
        encoder_output_size: int,
        dropout_rate: float = 0.0,
        ctc_type: str = "builtin",
        reduce: bool = True,
        ignore_nan_grad: bool = True,
        extra_linear: bool = True,
    ):
        super().__init__()
        if ctc_type != "builtin":
            raise ValueError(f"CTC: ctc_type={ctc_type!r} unsupported (only 'builtin')")
        if not extra_linear and odim != encoder_output_size:
            raise ValueError(
                f"CTC: extra_linear=False needs odim == encoder_output_size ({odim} != {encoder_output_size})"
            )
        self.dropout_rate = dropout_rate
        self.ctc_lo: Optional[nn.Linear] = nn.Linear(encoder_output_size, odim) if extra_linear else None
        self.reduce = reduce
        self.ignore_nan_grad = ignore_nan_grad

    def logits(self, hs: torch.Tensor) -> torch.Tensor:
        """hs: (B, T, D) -> (B, T, V) logits (no dropout)."""
        return self.ctc_lo(hs) if self.ctc_lo is not None else hs

    def log_softmax(self, hs: torch.Tensor) -> torch.Tensor:
        """hs: (B, T, D) -> (B, T, V) float32 log-probabilities."""
        return F.log_softmax(self.logits(hs).float(), dim=2)

    def forward(self, hs: torch.Tensor, hlens: torch.Tensor, ys: torch.Tensor, ys_lens: torch.Tensor) -> torch.Tensor:
        """CTC loss: hs (B, T, D) encoder output, hlens (B,), ys (B, L) target ids (padding ignored via
        ``ys_lens``), ys_lens (B,) -> scalar loss (or (B,) losses with ``reduce=False``)."""
        if self.training and self.dropout_rate > 0:
            hs = F.dropout(hs, p=self.dropout_rate)
        log_probs = F.log_softmax(self.logits(hs).float(), dim=2).transpose(0, 1)  # (T, B, V)
        targets = torch.cat([ys[i, : int(n)] for i, n in enumerate(ys_lens)])
        losses = F.ctc_loss(
            log_probs, targets, hlens.long(), ys_lens.long(), blank=0, reduction="none", zero_infinity=False
        )
        count = losses.new_tensor(float(losses.numel()))
        if self.ignore_nan_grad and losses.requires_grad:
            finite = torch.isfinite(losses)
            n_finite = int(finite.sum())
            if 0 < n_finite < losses.numel():
                losses = losses[finite]
                count = losses.new_tensor(float(n_finite))
        loss = losses.sum() / count if self.reduce else losses / count
        return loss.to(hs.dtype)
