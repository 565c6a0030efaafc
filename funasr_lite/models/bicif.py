"""BiCifParaformer: a Paraformer whose predictor has a second, upsampled CIF head for token timestamps.

``CifPredictorV3`` is FunASR's predictor of the same name (0.x: ``cif_predictor_v3``): the CIF head of
:class:`~funasr_lite.models.cif.CifPredictorV2` (same parameters, same token embeddings), plus a timestamp
head, and FunASR's frame-by-frame integrate-and-fire (:func:`cif_sequential`). The timestamp head takes the CIF convolution's output (``use_cif1_cnn``) or the encoder output,
upsamples it ``upsample_times`` x with a ConvTranspose1d (kernel = stride, so each frame makes its own
``upsample_times`` sub-frames), optionally runs a bidirectional LSTM over it (``upsample_type: cnn_blstm``)
and predicts one weight per sub-frame: ``relu(sigmoid(.) * smooth_factor2 - noise_threshold2)``.

Padding: the BLSTM runs over each utterance's own sub-frames only (packed sequences), and padded frames
are zeroed before the convolutions, so every row of a batch gets its batch-1 result (FunASR's batched
timestamp head sees the padding).

Training (``BiCifParaformer.forward``), as FunASR 1.4.16: Paraformer's loss plus
``predictor_weight * 0.5 * loss_pre2``, where ``loss_pre2`` is the L1 distance between the target lengths
(with the eos of ``predictor_bias``) and the sum of the timestamp head's weights, normalised like ``loss_pre``.
"""

import inspect
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.cif import CifPredictorV2, fired_token_embeddings
from funasr_lite.models.paraformer import Paraformer
from funasr_lite.models.sanm import lengths_to_mask

__all__ = ["cif_sequential", "CifPredictorV3", "BiCifParaformer"]

UPSAMPLE_TYPES = ("cnn", "cnn_blstm")


def cif_sequential(hidden: torch.Tensor, alphas: torch.Tensor, num_tokens: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Integrate-and-fire with threshold 1 as FunASR's CifPredictorV3 does it: one frame at a time in the
    working dtype, a running sum that loses exactly 1 at each fire.

    Frame t adds ``alpha_t`` to the running sum ``s``; it fires when ``s >= 1``. A firing frame gives
    ``1 - s_before`` to the token that fires there and the rest of ``alpha_t`` to the next token; any other
    frame gives ``alpha_t`` to the current token. (:func:`~funasr_lite.models.cif.cif_integrate` decides
    fires from float64 prefix sums instead, so near-integer sums can fire differently.) The firing decisions
    and weights come from a loop over frames on (B,) vectors; the embeddings from one ``bmm``.

    hidden (B, T, D), alphas (B, T), num_tokens N -> embeds (B, N, D) (slots past the fired tokens are zero),
    peaks (B, T) (the running sum before each fire's subtraction).
    """
    batch, frames = alphas.shape
    running = alphas.new_zeros(batch)
    sums, fired, own = [], [], []
    for t in range(frames):
        a = alphas[:, t]
        completion = 1.0 - running
        running = running + a
        sums.append(running)
        fire = running >= 1.0
        fired.append(fire)
        own.append(torch.where(fire, completion, a))  # weight for the token this frame belongs to
        running = torch.where(fire, running - 1.0, running)
    if not frames:
        return hidden.new_zeros(batch, num_tokens, hidden.size(-1)), alphas
    fire = torch.stack(fired, 1)
    own_w = torch.stack(own, 1)
    carried = (alphas - own_w) * fire.long()  # carried to the next token by firing frames
    return fired_token_embeddings(hidden, fire, own_w, carried, num_tokens), torch.stack(sums, 1)


class CifPredictorV3(CifPredictorV2):
    """CIF predictor with an upsampled timestamp head (FunASR ``CifPredictorV3``).

    Args (beyond :class:`CifPredictorV2`'s, all ``predictor_conf`` keys):
        smooth_factor2, noise_threshold2: the timestamp weights are
            ``relu(sigmoid(.) * smooth_factor2 - noise_threshold2)``.
        upsample_times: sub-frames per encoder frame (3 in the ModelScope models).
        upsample_type: ``cnn`` (ConvTranspose1d only) or ``cnn_blstm`` (then a BLSTM);
            FunASR's ``cnn_attn`` is not supported.
        use_cif1_cnn: feed the CIF convolution's output (True) or the encoder output (False) to the head.
    """

    def __init__(
        self,
        idim: int,
        l_order: int,
        r_order: int,
        threshold: float = 1.0,
        dropout: float = 0.1,
        smooth_factor: float = 1.0,
        noise_threshold: float = 0.0,
        tail_threshold: float = 0.0,
        tf2torch_tensor_name_prefix_torch: str = "predictor",
        tf2torch_tensor_name_prefix_tf: str = "seq2seq/cif",
        smooth_factor2: float = 1.0,
        noise_threshold2: float = 0.0,
        upsample_times: int = 5,
        upsample_type: str = "cnn",
        use_cif1_cnn: bool = True,
        tail_mask: bool = True,
    ):
        super().__init__(
            idim,
            l_order,
            r_order,
            threshold=threshold,
            smooth_factor=smooth_factor,
            noise_threshold=noise_threshold,
            tail_threshold=tail_threshold,
        )
        if upsample_type not in UPSAMPLE_TYPES:
            raise ValueError(
                f"CifPredictorV3: upsample_type {upsample_type!r} is not supported (supported: {', '.join(UPSAMPLE_TYPES)})"
            )
        if upsample_times < 1:
            raise ValueError(f"CifPredictorV3: upsample_times must be >= 1, got {upsample_times}")
        self.upsample_times = upsample_times
        self.use_cif1_cnn = use_cif1_cnn
        self.smooth_factor2 = smooth_factor2
        self.noise_threshold2 = noise_threshold2
        self.upsample_cnn = nn.ConvTranspose1d(idim, idim, upsample_times, upsample_times)
        self.blstm = (
            nn.LSTM(idim, idim, 1, bias=True, batch_first=True, bidirectional=True)
            if upsample_type == "cnn_blstm"
            else None
        )
        self.cif_output2 = nn.Linear(idim * (2 if self.blstm is not None else 1), 1)

    def integrate(
        self, hidden: torch.Tensor, alphas: torch.Tensor, num_tokens: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """FunASR's CifPredictorV3 integrates frame by frame: :func:`cif_sequential`."""
        return cif_sequential(hidden, alphas, num_tokens)

    def timestamp_alphas(self, hidden: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The timestamp head's weights, unscaled.

        hidden (B, T, D) encoder output, lengths (B,) -> alphas2 (B, T * upsample_times), zero on padded
        sub-frames, and their lengths (B,) ``lengths * upsample_times``.
        """
        k = self.upsample_times
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            mask = lengths_to_mask(lengths, hidden.size(1)).float()
            x = (hidden.float() * mask[:, :, None]).transpose(1, 2)  # (B, D, T)
            if self.use_cif1_cnn:
                x = torch.relu(self.cif_conv1d(F.pad(x, (self.l_order, self.r_order))))
            up = self.upsample_cnn(x).transpose(1, 2)  # (B, kT, D): frame t -> sub-frames kt .. kt+k-1
            up_lens = lengths.long() * k
            if self.blstm is not None:
                packed = nn.utils.rnn.pack_padded_sequence(
                    up, up_lens.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
                )
                out, _ = self.blstm(packed)
                up, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=up.size(1))
            alphas2 = torch.sigmoid(self.cif_output2(up)).squeeze(-1)
            alphas2 = torch.relu(alphas2 * self.smooth_factor2 - self.noise_threshold2)
            alphas2 = alphas2 * lengths_to_mask(up_lens, up.size(1)).float()
        return alphas2, up_lens


class BiCifParaformer(Paraformer):
    """Paraformer with FunASR's ``CifPredictorV3`` timestamp head (FunASR ``BiCifParaformer``).

    Constructor arguments are :class:`Paraformer`'s; the predictor must be ``CifPredictorV3``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not isinstance(self.predictor, CifPredictorV3):
            raise ValueError(
                f"{type(self).__name__}: the predictor must be CifPredictorV3, got {type(self.predictor).__name__}"
            )

    # Paraformer's keyword arguments exactly (for the config layer, which passes a class what it takes)
    __init__.__signature__ = inspect.signature(Paraformer.__init__)

    def timestamp_alphas(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, token_lens: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Inference: the timestamp head's weights rescaled to sum to each utterance's token count.

        enc (B, T, D), enc_lens (B,), token_lens (B,) long -> (alphas2 (B, T * upsample_times), lengths (B,)).
        Each row is scaled by ``token_lens / sum`` in float32, as FunASR does, the sum taken over the row's
        own sub-frames.
        """
        alphas2, up_lens = self.predictor.timestamp_alphas(enc, enc_lens)
        scaled = torch.zeros_like(alphas2)
        for b in range(alphas2.size(0)):
            row = alphas2[b, : int(up_lens[b])]
            scaled[b, : row.size(0)] = row * (token_lens[b] / row.sum())
        return scaled, up_lens

    def _auxiliary_loss(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, ys_lens: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], Dict[str, Any]]:
        """``predictor_weight * 0.5 * loss_pre2`` (see the module docstring) and ``{"loss_pre2": ...}``."""
        alphas2, _ = self.predictor.timestamp_alphas(enc, enc_lens)
        token_num2 = alphas2.sum(-1)
        target = ys_lens.to(token_num2.dtype)
        norm = target.sum() if self.length_normalized_loss else target.new_tensor(float(ys_lens.size(0)))
        loss_pre2 = (target - token_num2).abs().sum() / norm
        return loss_pre2 * self.predictor_weight * 0.5, {"loss_pre2": loss_pre2.detach()}
