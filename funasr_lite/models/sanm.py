"""SANM building blocks and the SANM encoder of Paraformer.

SAN-M = self-attention plus an FSMN "memory" (a depthwise 1-D convolution over
the value projection), Gao et al., https://arxiv.org/abs/2006.01713.

Parameter names follow FunASR 1.x exactly (``encoders0.0.self_attn.linear_q_k_v``,
``fsmn_block``, ``feed_forward.w_1``, ``after_norm`` ...) so that a FunASR
``model.pt`` loads with ``strict=True``. The code is our own.

Padding: every module takes ``(x, lengths)``; frames at ``t >= lengths[b]``
never influence frames ``t < lengths[b]`` (keys are masked in attention and the
FSMN input is zeroed before its convolution), and the encoder returns zeros on
padded frames, so a batched encode equals encoding each utterance alone.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.dropout import Dropout, dropout

LAYER_NORM_EPS = 1e-12  # FunASR's LayerNorm uses eps=1e-12 everywhere in SANM models


def layer_norm(size: int) -> nn.LayerNorm:
    """A LayerNorm with FunASR's epsilon (1e-12)."""
    return nn.LayerNorm(size, eps=LAYER_NORM_EPS)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """lengths: (B,) ints, max_len: T, the padded length -> (B, T) bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def sinusoidal_position_encoding(
    length: int, depth: int, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """FunASR's SinusoidalPositionEncoder table (bit-exact).

    Positions are 1..length; timescale step ``ln(10000) / (depth/2 - 1)``; the
    sin half and the cos half are concatenated (not interleaved). Returns (length, depth).
    """
    if depth % 2 != 0 or depth < 4:
        raise ValueError(f"sinusoidal position encoding needs an even depth >= 4, got {depth}")
    positions = torch.arange(1, length + 1, device=device).to(dtype)
    increment = torch.log(torch.tensor([10000.0], dtype=dtype, device=device)) / (depth / 2 - 1)
    inv_timescales = torch.exp(torch.arange(depth // 2, device=device).to(dtype) * (-increment))
    scaled = positions[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class PositionwiseFeedForward(nn.Module):
    """Linear(idim, hidden) -> ReLU -> dropout -> Linear(hidden, idim)."""

    def __init__(self, idim: int, hidden_units: int, dropout_rate: float):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.w_2 = nn.Linear(hidden_units, idim)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, idim) -> (B, T, idim)."""
        return self.w_2(self.dropout(torch.relu(self.w_1(x))))


def fsmn_padding(kernel_size: int, sanm_shfit: int) -> Tuple[int, int]:
    """(left, right) zero padding of the FSMN convolution; ``sanm_shfit`` moves it left."""
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    if sanm_shfit < 0 or sanm_shfit > (kernel_size - 1) // 2 + (kernel_size - 1) % 2:
        raise ValueError(f"sanm_shfit={sanm_shfit} does not fit kernel_size={kernel_size}")
    left = (kernel_size - 1) // 2 + sanm_shfit
    return left, kernel_size - 1 - left


def fsmn_memory(
    conv: nn.Conv1d, pad: Tuple[int, int], x: torch.Tensor, mask: torch.Tensor, dropout: nn.Module
) -> torch.Tensor:
    """FSMN memory block shared by encoder and decoder: ``dropout(conv(x) + x)`` on valid frames.

    ``conv`` is depthwise (D -> D, groups=D, no bias, padding 0), ``pad`` its (left, right) zero padding;
    x: (B, T, D), mask: (B, T, 1) float, 1 on valid frames -> (B, T, D), zero on padded frames.
    """
    x = x * mask
    # the depthwise conv runs in the (B, T, D) layout: padded along T, viewed as a channels-last (B, D, 1, T)
    # image, so neither the input nor the output is transposed into a copy (same sums as conv(x.transpose(1, 2)),
    # bit for bit; 1.4-1.7x faster on CPU for paraformer-large shapes)
    xp = F.pad(x, (0, 0) + tuple(pad))
    y = F.conv2d(xp.permute(0, 2, 1).unsqueeze(2), conv.weight.unsqueeze(2), groups=conv.groups)
    return dropout(y.squeeze(2).permute(0, 2, 1) + x) * mask


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, heads: int, dropout_p: float
) -> torch.Tensor:
    """Multi-head scaled dot-product attention, shared by encoder self-attention and decoder cross-attention.

    q: (B, N, D), k, v: (B, T, D), key_mask: (B, T) bool, True on valid frames -> (B, N, D), heads concatenated.
    """
    b, n, d = q.shape
    q, k, v = (z.reshape(b, z.size(1), heads, d // heads).transpose(1, 2) for z in (q, k, v))
    if dropout_p > 0.0 and q.device.type == "cpu":  # training: SDPA's math path, with the cheaper dropout mask
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d // heads))
        probs = torch.softmax(scores.masked_fill(~key_mask[:, None, None, :], float("-inf")), dim=-1)
        att = torch.matmul(dropout(probs, dropout_p, True), v)
    else:
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :], dropout_p=dropout_p)
    return att.transpose(1, 2).reshape(b, n, d)


class MultiHeadedAttentionSANM(nn.Module):
    """Self-attention with FSMN memory: ``attention(x) + fsmn(V)``.

    Args:
        n_head: number of heads.
        in_feat: input width (560 for the first encoder layer of Paraformer).
        n_feat: model width, divisible by ``n_head``.
        dropout_rate: dropout on attention weights and on the FSMN output.
        kernel_size: FSMN kernel size.
        sanm_shfit: shift of the FSMN window to the left (FunASR's spelling).
    """

    def __init__(
        self,
        n_head: int,
        in_feat: int,
        n_feat: int,
        dropout_rate: float,
        kernel_size: int,
        sanm_shfit: int = 0,
    ):
        super().__init__()
        if n_head < 1 or n_feat % n_head != 0:
            raise ValueError(f"n_feat={n_feat} must be a positive multiple of n_head={n_head}")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_q_k_v = nn.Linear(in_feat, n_feat * 3)
        self.dropout = Dropout(p=dropout_rate)
        self.fsmn_block = nn.Conv1d(n_feat, n_feat, kernel_size, groups=n_feat, bias=False)
        self.fsmn_pad = fsmn_padding(kernel_size, sanm_shfit)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, in_feat), mask: (B, T) bool, True on valid frames -> (B, T, n_feat)."""
        q, k, v = self.linear_q_k_v(x).split(self.h * self.d_k, dim=-1)
        memory = fsmn_memory(self.fsmn_block, self.fsmn_pad, v, mask[:, :, None].to(x.dtype), self.dropout)
        att = attention(q, k, v, mask, self.h, self.dropout.p if self.training else 0.0)
        return self.linear_out(att) + memory


class EncoderLayerSANM(nn.Module):
    """One SANM encoder block (pre-norm by default).

    ``x = x + dropout(self_attn(norm1(x)))`` (no residual when ``in_size != size``),
    then ``x = x + dropout(feed_forward(norm2(x)))``.
    """

    def __init__(
        self,
        in_size: int,
        size: int,
        self_attn: MultiHeadedAttentionSANM,
        feed_forward: PositionwiseFeedForward,
        dropout_rate: float,
        normalize_before: bool = True,
    ):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.norm1 = layer_norm(in_size)
        self.norm2 = layer_norm(size)
        self.dropout = Dropout(dropout_rate)
        self.in_size = in_size
        self.size = size
        self.normalize_before = normalize_before

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, in_size), mask: (B, T) bool -> (B, T, size)."""
        pre = self.normalize_before
        y = self.dropout(self.self_attn(self.norm1(x) if pre else x, mask))
        x = x + y if self.in_size == self.size else y
        if not pre:
            x = self.norm1(x)
        x = x + self.dropout(self.feed_forward(self.norm2(x) if pre else x))
        return x if pre else self.norm2(x)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class SANMEncoder(nn.Module):
    """Paraformer's SANM encoder; keyword names equal FunASR's ``encoder_conf`` keys.

    Input frames are scaled by ``sqrt(output_size)``, a sinusoidal position code
    of the input width is added (``input_layer="pe"``), then ``encoders0`` (one
    block, input_size -> output_size, no attention residual), ``encoders``
    (``num_blocks - 1`` blocks) and ``after_norm``. There is no subsampling.

    It takes only the arguments it uses, plus the three that name the one configuration Paraformer uses
    (``input_layer="pe"``, ``selfattention_layer_type="sanm"``, ``pos_enc_class``), checked with ValueError
    (FunASR's default ``input_layer`` is ``conv2d``). ``positional_dropout_rate`` has no effect with "pe".
    The config layer refuses FunASR's other ``encoder_conf`` options unless they hold FunASR's defaults.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        input_layer: Optional[str] = "pe",
        pos_enc_class: Optional[str] = "SinusoidalPositionEncoder",
        normalize_before: bool = True,
        kernel_size: int = 11,
        sanm_shfit: int = 0,
        selfattention_layer_type: str = "sanm",
    ):
        super().__init__()
        _require(input_layer == "pe", f"SANMEncoder: input_layer={input_layer!r} unsupported (only 'pe')")
        _require(
            selfattention_layer_type == "sanm",
            f"SANMEncoder: selfattention_layer_type={selfattention_layer_type!r} unsupported (only 'sanm')",
        )
        _require(
            pos_enc_class in (None, "SinusoidalPositionEncoder"),
            f"SANMEncoder: pos_enc_class={pos_enc_class!r} unsupported",
        )
        _require(num_blocks >= 1, f"SANMEncoder: num_blocks must be >= 1, got {num_blocks}")
        _require(input_size >= 4 and input_size % 2 == 0, f"SANMEncoder: input_size must be even, got {input_size}")
        _require(output_size >= 1, f"SANMEncoder: output_size must be >= 1, got {output_size}")
        self._output_size = output_size
        self.normalize_before = normalize_before

        def block(in_size: int) -> EncoderLayerSANM:
            attn = MultiHeadedAttentionSANM(
                attention_heads, in_size, output_size, attention_dropout_rate, kernel_size, sanm_shfit
            )
            ffn = PositionwiseFeedForward(output_size, linear_units, dropout_rate)
            return EncoderLayerSANM(in_size, output_size, attn, ffn, dropout_rate, normalize_before)

        self.encoders0 = nn.ModuleList([block(input_size)])
        self.encoders = nn.ModuleList([block(output_size) for _ in range(num_blocks - 1)])
        if normalize_before:
            self.after_norm = layer_norm(output_size)

    def output_size(self) -> int:
        """Width of the encoder output."""
        return self._output_size

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """xs: (B, T, input_size) LFR + CMVN features, lengths: (B,) valid frames
        -> (B, T, output_size) encoder output, zero on padded frames, and the (B,) lengths."""
        mask = lengths_to_mask(lengths, xs.size(1))
        x = xs * math.sqrt(self._output_size)
        # the table in float32 (bf16 cannot even count positions past 256), then in x's dtype
        x = x + sinusoidal_position_encoding(x.size(1), x.size(2), torch.float32, x.device).to(x.dtype)[None]
        for layer in [*self.encoders0, *self.encoders]:
            x = layer(x, mask)
        if self.normalize_before:
            x = self.after_norm(x)
        return x * mask[:, :, None].to(x.dtype), lengths
