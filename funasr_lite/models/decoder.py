"""Paraformer's non-autoregressive SANM decoder (FunASR ``ParaformerSANMDecoder``).

Input is the CIF acoustic embeddings (one per token), not token embeddings;
the decoder runs once over all positions. Parameter names follow FunASR
(``decoders.N.self_attn.fsmn_block``, ``src_attn.linear_k_v``, ``decoders3``,
``after_norm``, ``output_layer``, ``embed.0``) so FunASR checkpoints load
strictly. ``embed`` is only used by the training-time glancing sampler.
"""

from typing import Callable, Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.dropout import Dropout
from funasr_lite.models.sanm import attention, fsmn_memory, fsmn_padding, layer_norm, lengths_to_mask


def _embedding(num: int, dim: int) -> nn.Embedding:
    """``nn.Embedding(num, dim)``, N(0, 1) initialised as nn.Embedding does (same RNG draws), except on the meta
    device (inference builds there and loads the checkpoint's tensors): ``normal_`` on meta runs a torch._refs
    decomposition that imports torch._dynamo, 1.5-4 s of a model load."""
    emb = nn.Embedding(num, dim, _weight=torch.empty(num, dim))
    if emb.weight.device.type != "meta":
        nn.init.normal_(emb.weight)
    return emb


class PositionwiseFeedForwardDecoderSANM(nn.Module):
    """Linear(idim, hidden) -> ReLU -> dropout -> LayerNorm(hidden) -> Linear(hidden, idim, no bias)."""

    def __init__(self, idim: int, hidden_units: int, dropout_rate: float):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.w_2 = nn.Linear(hidden_units, idim, bias=False)
        self.dropout = Dropout(dropout_rate)
        self.norm = layer_norm(hidden_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, idim) -> (B, N, idim)."""
        return self.w_2(self.norm(self.dropout(torch.relu(self.w_1(x)))))


class MultiHeadedAttentionSANMDecoder(nn.Module):
    """The decoder's "self-attention": an FSMN memory only (depthwise conv + identity)."""

    def __init__(self, n_feat: int, dropout_rate: float, kernel_size: int, sanm_shfit: int = 0):
        super().__init__()
        self.dropout = Dropout(p=dropout_rate)
        self.fsmn_block = nn.Conv1d(n_feat, n_feat, kernel_size, groups=n_feat, bias=False)
        self.fsmn_pad = fsmn_padding(kernel_size, sanm_shfit)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D), mask: (B, N, 1) float -> (B, N, D), zero on padded positions."""
        return fsmn_memory(self.fsmn_block, self.fsmn_pad, x, mask, self.dropout)


class MultiHeadedAttentionCrossAtt(nn.Module):
    """Cross-attention from decoder positions to encoder frames (fused K/V projection)."""

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float):
        super().__init__()
        if n_head < 1 or n_feat % n_head != 0:
            raise ValueError(f"n_feat={n_feat} must be a positive multiple of n_head={n_head}")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k_v = nn.Linear(n_feat, n_feat * 2)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.dropout = Dropout(p=dropout_rate)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D) queries, memory: (B, T, D) encoder output, memory_mask: (B, T) bool -> (B, N, D)."""
        k, v = self.linear_k_v(memory).split(self.h * self.d_k, dim=-1)
        att = attention(self.linear_q(x), k, v, memory_mask, self.h, self.dropout.p if self.training else 0.0)
        return self.linear_out(att)

    def weights(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """The attention probabilities: x (B, N, D), memory (B, T, D), memory_mask (B, T) bool
        -> (B, heads, N, T), zero on masked frames."""
        b, n, _ = x.shape
        q = self.linear_q(x).reshape(b, n, self.h, self.d_k).transpose(1, 2) * self.d_k**-0.5
        k = self.linear_k_v(memory)[..., : self.h * self.d_k]
        k = k.reshape(b, memory.size(1), self.h, self.d_k).transpose(1, 2)
        masked = ~memory_mask[:, None, None, :]
        scores = torch.matmul(q, k.transpose(-2, -1)).masked_fill(masked, float("-inf"))
        return torch.softmax(scores, dim=-1).masked_fill(masked, 0.0)


class DecoderLayerSANM(nn.Module):
    """One decoder block.

    ``y = feed_forward(norm1(x))``; with an FSMN: ``x = x + dropout(fsmn(norm2(y)))``,
    else ``x = y`` (no residual: the ``decoders3`` block); with cross-attention:
    ``x = x + dropout(src_attn(norm3(x), memory))``.
    """

    def __init__(
        self,
        size: int,
        self_attn: Optional[MultiHeadedAttentionSANMDecoder],
        src_attn: Optional[MultiHeadedAttentionCrossAtt],
        feed_forward: PositionwiseFeedForwardDecoderSANM,
        dropout_rate: float,
    ):
        super().__init__()
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.norm1 = layer_norm(size)
        if self_attn is not None:
            self.norm2 = layer_norm(size)
        if src_attn is not None:
            self.norm3 = layer_norm(size)
        self.dropout = Dropout(dropout_rate)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor
    ) -> torch.Tensor:
        """x: (B, N, D); mask: (B, N, 1) float; memory: (B, T, D_enc); memory_mask: (B, T) bool."""
        x = self.self_part(x, mask)
        if self.src_attn is not None:
            x = x + self.dropout(self.src_attn(self.norm3(x), memory, memory_mask))
        return x

    def self_part(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The block before its cross-attention: ``feed_forward(norm1(x))``, then the FSMN residual if any;
        x: (B, N, D), mask: (B, N, 1) float -> (B, N, D)."""
        y = self.feed_forward(self.norm1(x))
        if self.self_attn is None:
            return y
        return x + self.dropout(self.self_attn(self.norm2(y), mask))

    def source_weights(
        self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor
    ) -> torch.Tensor:
        """This block's cross-attention probabilities (B, heads, N, T) for input x (see :meth:`forward`)."""
        if self.src_attn is None:
            raise ValueError("this decoder block has no cross-attention")
        return self.src_attn.weights(self.norm3(self.self_part(x, mask)), memory, memory_mask)


def check_decoder_args(
    name: str,
    vocab_size: int,
    input_layer: str,
    normalize_before: bool,
    att_layer_num: int,
    num_blocks: int,
    min_att_layers: int,
) -> None:
    """The ``decoder_conf`` checks of the SANM decoders: ValueError naming decoder ``name`` unless
    ``vocab_size >= 1``, ``input_layer == "embed"``, ``normalize_before`` and
    ``min_att_layers <= att_layer_num <= num_blocks``."""
    if vocab_size < 1:
        raise ValueError(f"{name}: vocab_size must be >= 1, got {vocab_size}")
    if input_layer != "embed":
        raise ValueError(f"{name}: input_layer={input_layer!r} unsupported (only 'embed')")
    if not normalize_before:
        raise ValueError(f"{name}: normalize_before=False is unsupported")
    if not min_att_layers <= att_layer_num <= num_blocks:
        raise ValueError(
            f"{name}: need {min_att_layers} <= att_layer_num ({att_layer_num}) <= num_blocks ({num_blocks})"
        )


def block_maker(
    size: int,
    attention_heads: int,
    linear_units: int,
    dropout_rate: float,
    self_attention_dropout_rate: float,
    src_attention_dropout_rate: float,
    kernel_size: int,
) -> Callable[[Optional[int], bool], DecoderLayerSANM]:
    """``make(shift, cross)``: a new :class:`DecoderLayerSANM` of width ``size`` with an FSMN of memory shift
    ``shift`` (None: no FSMN, the FFN-only block) and cross-attention when ``cross``; its modules are built
    (and initialised) in the order FSMN, cross-attention, FFN, norms."""

    def make(shift: Optional[int], cross: bool) -> DecoderLayerSANM:
        return DecoderLayerSANM(
            size,
            None
            if shift is None
            else MultiHeadedAttentionSANMDecoder(size, self_attention_dropout_rate, kernel_size, shift),
            MultiHeadedAttentionCrossAtt(attention_heads, size, src_attention_dropout_rate) if cross else None,
            PositionwiseFeedForwardDecoderSANM(size, linear_units, dropout_rate),
            dropout_rate,
        )

    return make


def decoder_masks(
    memory: torch.Tensor, memory_lengths: torch.Tensor, embeds: torch.Tensor, embed_lengths: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The decoder blocks' masks: (B, N, 1) of ``embeds``' dtype over the valid positions, (B, T) bool over
    the valid encoder frames; arguments as :meth:`ParaformerSANMDecoder.forward`."""
    mask = lengths_to_mask(embed_lengths, embeds.size(1))[:, :, None].to(embeds.dtype)
    return mask, lengths_to_mask(memory_lengths, memory.size(1))


class ParaformerSANMDecoder(nn.Module):
    """Paraformer decoder; keyword names equal FunASR's ``decoder_conf`` keys.

    ``decoders``: ``att_layer_num`` blocks with FSMN + cross-attention;
    ``decoders2``: ``num_blocks - att_layer_num`` blocks with FSMN only (absent if 0);
    ``decoders3``: one FFN-only block; then ``after_norm`` and ``output_layer``.

    Supported: ``input_layer="embed"``, ``normalize_before=True``; others raise ValueError.
    ``positional_dropout_rate`` has no effect here. The config layer refuses FunASR's other
    ``decoder_conf`` options unless they hold FunASR's defaults.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        self_attention_dropout_rate: float = 0.0,
        src_attention_dropout_rate: float = 0.0,
        input_layer: str = "embed",
        use_output_layer: bool = True,
        wo_input_layer: bool = False,
        normalize_before: bool = True,
        att_layer_num: int = 6,
        kernel_size: int = 21,
        sanm_shfit: Optional[int] = 0,
    ):
        super().__init__()
        check_decoder_args(
            "ParaformerSANMDecoder", vocab_size, input_layer, normalize_before, att_layer_num, num_blocks, 0
        )
        d = encoder_output_size
        self.embed = None if wo_input_layer else nn.Sequential(_embedding(vocab_size, d))
        self.after_norm = layer_norm(d)
        self.output_layer = nn.Linear(d, vocab_size) if use_output_layer else None
        if sanm_shfit is None:
            sanm_shfit = (kernel_size - 1) // 2
        block = block_maker(
            d,
            attention_heads,
            linear_units,
            dropout_rate,
            self_attention_dropout_rate,
            src_attention_dropout_rate,
            kernel_size,
        )
        self.decoders = nn.ModuleList(block(sanm_shfit, True) for _ in range(att_layer_num))
        n_fsmn_only = num_blocks - att_layer_num
        self.decoders2 = nn.ModuleList(block(0, False) for _ in range(n_fsmn_only)) if n_fsmn_only > 0 else None
        self.decoders3 = nn.ModuleList([block(None, False)])

    def forward(
        self, memory: torch.Tensor, memory_lengths: torch.Tensor, embeds: torch.Tensor, embed_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            memory: (B, T, D_enc) encoder output.
            memory_lengths: (B,) encoder lengths.
            embeds: (B, N, D) CIF acoustic embeddings (or sampler-mixed embeddings).
            embed_lengths: (B,) valid positions (tokens) per utterance.
        Returns:
            (B, N, V) logits (or (B, N, D) hidden without an output layer), and (B,) ``embed_lengths``.
        """
        hidden = self.hidden(memory, memory_lengths, embeds, embed_lengths)
        if self.output_layer is None:
            return hidden, embed_lengths
        return self.output_layer(hidden), embed_lengths

    def hidden(
        self, memory: torch.Tensor, memory_lengths: torch.Tensor, embeds: torch.Tensor, embed_lengths: torch.Tensor
    ) -> torch.Tensor:
        """The normalised output of the last block, before ``output_layer``: (B, N, D); arguments as
        :meth:`forward`."""
        mask, memory_mask = decoder_masks(memory, memory_lengths, embeds, embed_lengths)
        x = embeds
        for layer in [*self.decoders, *(self.decoders2 or ()), *self.decoders3]:
            x = layer(x, mask, memory, memory_mask)
        return self.after_norm(x)

    def source_weights(
        self,
        memory: torch.Tensor,
        memory_lengths: torch.Tensor,
        embeds: torch.Tensor,
        embed_lengths: torch.Tensor,
        block: int,
    ) -> torch.Tensor:
        """Cross-attention probabilities (B, heads, N, T) of attention block ``block`` (0-based), after the
        blocks before it; arguments as :meth:`forward`. ValueError if there is no such block."""
        if not 0 <= block < len(self.decoders):
            raise ValueError(f"the decoder has {len(self.decoders)} cross-attention blocks, block {block} asked")
        mask, memory_mask = decoder_masks(memory, memory_lengths, embeds, embed_lengths)
        x = embeds
        for layer in self.decoders[:block]:
            x = layer(x, mask, memory, memory_mask)
        return self.decoders[block].source_weights(x, mask, memory, memory_mask)
