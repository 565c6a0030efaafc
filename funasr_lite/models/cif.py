"""CIF (continuous integrate-and-fire) predictor of Paraformer, and CIF timestamps.

``CifPredictorV2`` has FunASR's parameter names (``cif_conv1d``, ``cif_output``)
and math: a per-frame weight ``alpha`` in [0, 1] from Conv1d + ReLU + Linear +
sigmoid; a token fires each time the running sum of alphas crosses an integer.

Integrate-and-fire, as FunASR's vectorised ``cif_v1`` defines it: with prefix
sums ``S_t = alpha_0 + ... + alpha_t`` (accumulated in float64, then rounded to
the working dtype, as FunASR does), frame t *fires* when
``floor(S_t) > floor(S_{t-1})``. Let ``r_t = S_t - floor(S_t)`` (the remainder).
A firing frame gives ``alpha_t - r_t`` to the token that fires there and ``r_t``
to the next token; any other frame gives ``alpha_t`` to the current token. A
token's embedding is the weighted sum of encoder frames; tokens that never fire
are zero. We build this as a (B, N, T) weight matrix and one ``bmm``: no long
cumulative sums of hidden vectors (FunASR subtracts float32 prefix sums, which
loses precision on long inputs), and every token depends only on its own
utterance's frames.

Padding invariance: FunASR feeds the raw (unmasked) encoder output into the
predictor's convolution, so in a padded batch the last valid frame's alpha sees
the neighbouring padded frame, and the tail frame's hidden vector is a padded
frame instead of zero. That is why FunASR's batched decode differs from its
batch-1 decode. We zero padded frames first, which reproduces the batch-1
result exactly for every utterance of a batch.
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.errors import NonFiniteError
from funasr_lite.models.sanm import lengths_to_mask


def cif_integrate(hidden: torch.Tensor, alphas: torch.Tensor, num_tokens: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Integrate-and-fire with threshold 1 (FunASR's ``cif_v1`` semantics, see module doc).

    Args:
        hidden: (B, T, D) frame vectors (zero on padded frames).
        alphas: (B, T) frame weights (zero on padded frames).
        num_tokens: N, number of token slots to return.
    Returns:
        embeds: (B, N, D) token embeddings; slot k is zero if fewer than k+1 tokens fired.
        peaks: (B, T) FunASR's "cif_peak": ``S_t - floor(S_t)``, plus 1 on firing frames.
    """
    prefix = torch.cumsum(alphas, dim=1, dtype=torch.float64).to(alphas.dtype)  # S_t
    floor = torch.floor(prefix)
    fire = floor > F.pad(floor[:, :-1], (1, 0))  # True where floor(S) increases
    peaks = prefix - floor + fire.to(alphas.dtype)
    remainder = (prefix - floor) * fire.to(alphas.dtype)  # r_t on firing frames, else 0
    return fired_token_embeddings(hidden, fire, alphas - remainder, remainder, num_tokens), peaks


def fired_token_embeddings(
    hidden: torch.Tensor, fire: torch.Tensor, own: torch.Tensor, carried: torch.Tensor, num_tokens: int
) -> torch.Tensor:
    """The token embeddings of an integrate-and-fire pass as one ``bmm``: frame t's token is the number of fires
    strictly before it; t gives ``own[t]`` to that token and ``carried[t]`` (0 unless t fires) to the next one.

    hidden (B, T, D), fire (B, T) bool, own and carried (B, T) in the working dtype, num_tokens N
    -> (B, N, D) in that dtype; slots past each utterance's fired tokens are zero.
    """
    fire_long = fire.long()
    seg = torch.cumsum(fire_long, dim=1) - fire_long  # (B, T): the token each frame belongs to
    slots = torch.arange(num_tokens, device=own.device)[None, :, None]  # (1, N, 1)
    weights = (seg[:, None, :] == slots).to(own.dtype) * own[:, None, :]
    weights = weights + (seg[:, None, :] + 1 == slots).to(own.dtype) * carried[:, None, :]
    fired = slots[:, :, 0] < fire_long.sum(dim=1)[:, None]  # (B, N): only tokens that fired get an embedding
    weights = weights * fired[:, :, None].to(own.dtype)
    return torch.bmm(weights, hidden.to(own.dtype))


class CifPredictorV2(nn.Module):
    """CIF predictor (FunASR ``CifPredictorV2``); keyword names equal ``predictor_conf`` keys.

    Args:
        idim: encoder output width.
        l_order, r_order: left/right context of the Conv1d (kernel ``l_order + r_order + 1``).
        threshold: firing threshold; must be 1.0 (FunASR's vectorised CIF ignores any other value).
        dropout: accepted for compatibility; FunASR defines but never applies it.
        smooth_factor, noise_threshold: ``alpha = relu(sigmoid(.) * smooth_factor - noise_threshold)``.
        tail_threshold: at inference, weight of one extra zero frame appended after each
            utterance's last frame (0 disables it).
        tail_mask: accepted for compatibility; we always put the tail right after each
            utterance's last valid frame (identical to FunASR at batch size 1).
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
        tail_mask: bool = True,
    ):
        super().__init__()
        if threshold != 1.0:
            raise ValueError(f"CifPredictorV2: threshold must be 1.0, got {threshold}")
        if l_order < 0 or r_order < 0:
            raise ValueError(f"CifPredictorV2: l_order/r_order must be >= 0, got {l_order}/{r_order}")
        if tail_threshold < 0:
            raise ValueError(f"CifPredictorV2: tail_threshold must be >= 0, got {tail_threshold}")
        self.l_order = l_order
        self.r_order = r_order
        self.cif_conv1d = nn.Conv1d(idim, idim, l_order + r_order + 1)
        self.cif_output = nn.Linear(idim, 1)
        self.smooth_factor = smooth_factor
        self.noise_threshold = noise_threshold
        self.tail_threshold = tail_threshold

    def integrate(
        self, hidden: torch.Tensor, alphas: torch.Tensor, num_tokens: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """This predictor's integrate-and-fire (:func:`cif_integrate`); same arguments and results."""
        return cif_integrate(hidden, alphas, num_tokens)

    def forward(
        self,
        hidden: torch.Tensor,
        lengths: torch.Tensor,
        target_lengths: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict token embeddings.

        Training (``target_lengths`` given): alphas are rescaled so they sum to the
        target length; no tail; N = max(target_lengths); ``token_num`` is the
        unscaled ``sum(alphas)`` (input of the MAE length loss).

        Inference: with ``tail_threshold > 0`` a zero frame of weight
        ``tail_threshold`` is appended after each utterance (alphas/peaks get
        T+1 columns), ``token_num = floor(sum(alphas))`` and N = max(token_num);
        without a tail ``token_num = sum(alphas)`` and N = max(round(token_num)).
        Callers use ``round(token_num)`` tokens per utterance.

        hidden (B, T, D) encoder output, lengths (B,), target_lengths (B,) or None
        -> acoustic_embeds (B, N, D), token_num (B,) float, alphas (B, T'), peaks (B, T').
        """
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            mask = lengths_to_mask(lengths, hidden.size(1)).float()
            hidden = hidden.float() * mask[:, :, None]  # padded frames must not leak in
            x = torch.relu(self.cif_conv1d(F.pad(hidden.transpose(1, 2), (self.l_order, self.r_order))))
            alphas = torch.sigmoid(self.cif_output(x.transpose(1, 2))).squeeze(-1)
            alphas = torch.relu(alphas * self.smooth_factor - self.noise_threshold) * mask  # (B, T), 0 on padding
            token_num = slots = alphas.sum(-1)
            if target_lengths is not None:
                alphas = alphas * (target_lengths.to(alphas.dtype) / token_num)[:, None]
                slots = target_lengths
            elif self.tail_threshold > 0.0:
                b, t, d = hidden.shape
                tail = F.one_hot(lengths.long(), t + 1).to(alphas.dtype) * self.tail_threshold
                alphas = F.pad(alphas, (0, 1)) + tail
                hidden = torch.cat([hidden, hidden.new_zeros(b, 1, d)], dim=1)
                # from the float64 prefix sum, so every counted token also fires
                total = torch.cumsum(alphas, dim=1, dtype=torch.float64)[:, -1].to(alphas.dtype)
                token_num = slots = torch.floor(total)
            else:
                slots = torch.round(token_num)
            if target_lengths is None and not bool(torch.isfinite(slots).all()):
                rows = torch.nonzero(~torch.isfinite(slots)).flatten().tolist()
                where = f" (batch rows {rows})" if slots.numel() > 1 else ""
                raise NonFiniteError(
                    f"the CIF weights (alphas) are NaN/Inf{where}: the predictor's input or weights are not finite"
                )
            embeds, peaks = self.integrate(hidden, alphas, max(int(slots.max()) if slots.numel() else 0, 0))
        return embeds, token_num, alphas, peaks


def cif_timestamps(
    alphas: torch.Tensor,
    lengths: torch.Tensor,
    num_tokens: torch.Tensor,
    frame_ms: float = 60.0,
) -> List[List[Tuple[int, int]]]:
    """Per-token start/end times in ms, from the CIF alphas of :meth:`CifPredictorV2.forward`.

    Method: CIF spreads each frame's weight ``alpha_t`` evenly over that frame's
    ``frame_ms`` (60 ms = 6 x 10 ms after LFR). The integrated weight is then a
    continuous, non-decreasing function of time, and token k (0-based) is made
    of exactly the audio during which it rose from k to k+1. So token k spans
    ``[tau(k), tau(k+1)]``, where ``tau(x)`` is the time the integrated weight
    reaches x, interpolated linearly inside the frame where it happens;
    ``tau(k+1)`` is the instant token k fires, ``tau(0) = 0``. Tokens are
    contiguous and non-overlapping. Times are clamped to the utterance's
    duration ``lengths * frame_ms`` (the inference tail frame lies beyond the
    audio). A token that never fired (a rounding edge case) ends at the end of
    the audio. Positions of ids the caller drops (e.g. ``</s>``) should be
    dropped from the result too.

    Args:
        alphas: (B, T') alphas (with the tail column when the predictor added one).
        lengths: (B,) encoder lengths (frames of real audio).
        num_tokens: (B,) number of tokens kept per utterance.
        frame_ms: duration of one encoder frame.
    Returns:
        one list per utterance of ``(start_ms, end_ms)`` int pairs, ``num_tokens[b]`` long.
    """
    out: List[List[Tuple[int, int]]] = []
    prefix_all = torch.cumsum(alphas.detach().double(), dim=1)
    for b in range(alphas.size(0)):
        n = int(num_tokens[b])
        duration = float(lengths[b]) * frame_ms
        prefix = prefix_all[b]
        alpha = alphas[b].detach().double()
        levels = torch.arange(1, n + 1, dtype=torch.float64, device=prefix.device)
        # frame where the integrated weight first reaches each level k
        idx = torch.searchsorted(prefix, levels, right=False).clamp(max=prefix.numel() - 1)
        before = prefix[idx] - alpha[idx]
        within = ((levels - before) / alpha[idx].clamp_min(1e-12)).clamp(0.0, 1.0)
        fire_ms = ((idx.double() + within) * frame_ms).clamp(max=duration)
        fire_ms = torch.cummax(fire_ms, dim=0).values.tolist()
        bounds = [0.0] + fire_ms
        out.append([(int(round(bounds[k])), int(round(bounds[k + 1]))) for k in range(n)])
    return out
