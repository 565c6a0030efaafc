"""ContextualParaformer: Paraformer with hotword biasing (FunASR ``ContextualParaformer`` and
``ContextualParaformerDecoder``; 0.x names ``contextual_paraformer`` / ``contextual_paraformer_decoder``).

Hotwords (token-id lists) are embedded (``bias_embed``, or the decoder's embedding with
``use_decoder_embedding``) and run through a one-layer LSTM (``bias_encoder``); each hotword's last
hidden state is one row of the *context* ``(B, K, D)``. The list always ends with a "no bias" entry
(the ``<s>`` id) so that a position can attend to nothing useful.

The decoder is Paraformer's, except that its last source-attention block (``last_decoder``) also
attends to the context (``bias_decoder``): with ``s`` the block's FSMN output and ``a`` its encoder
attention, ``x = s + bias_output([a, clas_scale * attend(norm3(s), context)])`` (a 1x1 conv from
2D to D), then the FSMN-only blocks, ``decoders3``, ``after_norm`` and the output layer as usual.

Training (``forward``) is Paraformer's loss with the context of hotwords sampled from the batch's
targets (:func:`funasr_lite.models.hotword_sampling.sample_hotwords`, as FunASR's
``AudioDatasetHotword`` does), or of the ``hotword_pad`` given.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from funasr_lite.models.decoder import (
    MultiHeadedAttentionCrossAtt,
    _embedding,
    block_maker,
    check_decoder_args,
    decoder_masks,
)
from funasr_lite.models.hotword_sampling import sample_hotwords
from funasr_lite.models.paraformer import Paraformer
from funasr_lite.models.sanm import layer_norm

__all__ = ["ContextualParaformerDecoder", "ContextualParaformer"]

# FunASR's bias-encoder id when no hotwords are given (a literal 1, FunASR's <s> id; with hotwords the
# model's ``sos`` ends the list)
NO_HOTWORD_ID = 1


class ContextualBiasDecoder(nn.Module):
    """Attention from decoder positions to the hotword context: ``dropout(src_attn(norm3(x), context))``."""

    def __init__(self, size: int, attention_heads: int, src_attention_dropout_rate: float, dropout_rate: float):
        super().__init__()
        self.src_attn = MultiHeadedAttentionCrossAtt(attention_heads, size, src_attention_dropout_rate)
        self.norm3 = layer_norm(size)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D), context: (B, K, D) -> (B, N, D)."""
        every = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
        return self.dropout(self.src_attn(self.norm3(x), context, every))


class ContextualParaformerDecoder(nn.Module):
    """Paraformer's SANM decoder with a hotword-biased last source-attention block.

    ``decoders``: ``att_layer_num - 1`` FSMN + cross-attention blocks; ``last_decoder``: one more such block
    whose FSMN output also attends to the context; ``decoders2``: ``num_blocks - att_layer_num`` FSMN-only
    blocks (absent if 0); ``decoders3``: one FFN-only block. Keyword names equal FunASR's ``decoder_conf``;
    ``input_layer="embed"``, ``normalize_before=True`` and ``att_layer_num >= 1`` are required.
    ``positional_dropout_rate`` has no effect (as in FunASR).
    """

    takes_context = True  # forward() needs the hotword context

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
        normalize_before: bool = True,
        att_layer_num: int = 6,
        kernel_size: int = 21,
        sanm_shfit: Optional[int] = 0,
    ):
        super().__init__()
        check_decoder_args(type(self).__name__, vocab_size, input_layer, normalize_before, att_layer_num, num_blocks, 1)
        d = encoder_output_size
        self.embed = nn.Sequential(_embedding(vocab_size, d))
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
        self.decoders = nn.ModuleList(block(sanm_shfit, True) for _ in range(att_layer_num - 1))
        self.last_decoder = block(sanm_shfit, True)
        self.bias_decoder = ContextualBiasDecoder(d, attention_heads, src_attention_dropout_rate, dropout_rate)
        self.bias_output = nn.Conv1d(2 * d, d, 1, bias=False)
        self.dropout = nn.Dropout(dropout_rate)
        n_fsmn_only = num_blocks - att_layer_num
        self.decoders2 = nn.ModuleList(block(0, False) for _ in range(n_fsmn_only)) if n_fsmn_only > 0 else None
        self.decoders3 = nn.ModuleList([block(None, False)])

    def forward(
        self,
        memory: torch.Tensor,
        memory_lengths: torch.Tensor,
        embeds: torch.Tensor,
        embed_lengths: torch.Tensor,
        context: torch.Tensor,
        clas_scale: float = 1.0,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            memory: (B, T, D) encoder output; memory_lengths: (B,).
            embeds: (B, N, D) CIF acoustic (or sampler-mixed) embeddings; embed_lengths: (B,).
            context: (B, K, D) hotword context (the last row is the "no bias" entry).
            clas_scale: weight of the hotword attention (FunASR's ``clas_scale``, 1.0 by default).
        Returns:
            (B, N, V) logits (or (B, N, D) hidden without an output layer), and ``embed_lengths``.
        """
        mask, memory_mask = decoder_masks(memory, memory_lengths, embeds, embed_lengths)
        x = embeds
        for layer in self.decoders:
            x = layer(x, mask, memory, memory_mask)
        last = self.last_decoder
        fsmn_out = last.self_part(x, mask)
        src_out = last.src_attn(last.norm3(fsmn_out), memory, memory_mask)
        biased = self.bias_decoder(fsmn_out, context)
        mixed = self.bias_output(torch.cat([src_out, biased * clas_scale], dim=2).transpose(1, 2)).transpose(1, 2)
        x = fsmn_out + self.dropout(mixed)
        for layer in [*(self.decoders2 or ()), *self.decoders3]:
            x = layer(x, mask, memory, memory_mask)
        hidden = self.after_norm(x)
        if self.output_layer is None:
            return hidden, embed_lengths
        return self.output_layer(hidden), embed_lengths


class ContextualParaformer(Paraformer):
    """Paraformer + hotword context (see the module docstring).

    Takes Paraformer's arguments plus FunASR's ``model_conf`` keys of this class: ``inner_dim`` (the hotword
    embedding / LSTM width; it must equal the encoder output size, which the bias attention expects),
    ``bias_encoder_type`` (only ``"lstm"``: FunASR's ``"mean"`` builds no encoder and fails when decoding),
    ``use_decoder_embedding`` (embed hotwords with the decoder's embedding instead of ``bias_embed``),
    ``bias_encoder_dropout_rate`` (no effect on a one-layer LSTM, as in torch) and ``crit_attn_weight``,
    ``crit_attn_smooth``, ``target_buffer_length``, which FunASR 1.4.16 accepts and does not use (its attention
    loss is disabled), so they have no effect here either. ``share_embedding`` must be False.

    Its glancing sampler counts a padded batch's padded target positions as targets, as FunASR's does
    (see :attr:`Paraformer.sampler_counts_padding`).
    """

    takes_context = True
    sampler_counts_padding = True

    def __init__(
        self,
        *args: Any,
        decoder: str = "ContextualParaformerDecoder",
        inner_dim: int = 256,
        bias_encoder_type: str = "lstm",
        use_decoder_embedding: bool = False,
        bias_encoder_dropout_rate: float = 0.0,
        crit_attn_weight: float = 0.0,
        crit_attn_smooth: float = 0.0,
        target_buffer_length: int = -1,
        **kwargs: Any,
    ):
        super().__init__(*args, decoder=decoder, **kwargs)  # ValueError unless the decoder takes a context
        if self.share_embedding:
            raise ValueError("ContextualParaformer: share_embedding=True is unsupported")
        if bias_encoder_type != "lstm":
            raise ValueError(f"ContextualParaformer: bias_encoder_type={bias_encoder_type!r} unsupported (only 'lstm')")
        width = self.encoder.output_size()
        if inner_dim != width:
            raise ValueError(f"ContextualParaformer: inner_dim ({inner_dim}) must equal the encoder output ({width})")
        self.bias_encoder = nn.LSTM(inner_dim, inner_dim, 1, batch_first=True, dropout=bias_encoder_dropout_rate)
        self.bias_embed = _embedding(self.decoder.embed[0].num_embeddings, inner_dim)
        self.use_decoder_embedding = use_decoder_embedding

    # ------------------------------------------------------------------ hotword context

    def _embed_hotwords(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder.embed(ids) if self.use_decoder_embedding else self.bias_embed(ids)

    def hotword_context(self, hotwords: Optional[Sequence[Sequence[int]]], device: torch.device) -> torch.Tensor:
        """The (1, K+1, D) context of ``hotwords`` (token-id lists, without the "no bias" entry, which is
        appended here), as FunASR decodes: the LSTM's final state over each hotword (a packed batch).
        ``None`` or ``[]`` gives the context of the "no bias" entry alone."""
        if not hotwords:
            entries: List[Sequence[int]] = [[NO_HOTWORD_ID]]
        else:
            entries = [*hotwords, [self.sos]]
        if any(len(h) == 0 for h in entries):
            raise ValueError("ContextualParaformer: a hotword has no tokens")
        lengths = torch.tensor([len(h) for h in entries], dtype=torch.long)
        pad = torch.zeros(len(entries), int(lengths.max()), dtype=torch.long)
        for i, h in enumerate(entries):
            pad[i, : len(h)] = torch.as_tensor(list(h), dtype=torch.long)
        packed = nn.utils.rnn.pack_padded_sequence(
            self._embed_hotwords(pad.to(device)), lengths, batch_first=True, enforce_sorted=False
        )
        _, (h_n, _) = self.bias_encoder(packed)
        return h_n  # (num_layers=1, K+1, D): one row per entry, in input order

    def training_context(self, hotword_pad: torch.Tensor, hotword_lengths: torch.Tensor) -> torch.Tensor:
        """The (K, D) context of a padded hotword batch as FunASR trains: the LSTM output at each hotword's
        last token. hotword_pad (K, L) ids padded with 0; hotword_lengths (K,) >= 1."""
        out, _ = self.bias_encoder(self._embed_hotwords(hotword_pad))
        return out[torch.arange(out.size(0), device=out.device), hotword_lengths.long().to(out.device) - 1]

    # ------------------------------------------------------------------ inference and training

    def decode_logits(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        acoustic_embeds: torch.Tensor,
        token_lens: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        clas_scale: float = 1.0,
    ) -> torch.Tensor:
        """Decoder log-probabilities (B, N, V) with ``context`` (1 or B, K, D) from :meth:`hotword_context`
        (None: no hotwords)."""
        if context is None:
            context = self.hotword_context(None, enc.device)
        context = context.expand(enc.size(0), -1, -1)
        logits, _ = self.decoder(enc, enc_lens, acoustic_embeds, token_lens, context, clas_scale)
        return torch.log_softmax(logits, dim=-1)

    def run_decoder(self, enc, enc_lens, embeds, lens, context: Optional[torch.Tensor] = None):
        """The decoder call of the training loss, with the batch's hotword context (B, K, D)."""
        return self.decoder(enc, enc_lens, embeds, lens, context)

    def forward(
        self,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        hotword_pad: Optional[torch.Tensor] = None,
        hotword_lengths: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """Paraformer's loss (see :meth:`Paraformer.forward`) with a hotword context.

        ``hotword_pad`` (K, L) / ``hotword_lengths`` (K,): FunASR's collated hotwords, the "no bias" entry
        last; when not given they are sampled from ``text`` with Python's ``random`` as FunASR's
        ``AudioDatasetHotword`` does (:func:`~funasr_lite.models.hotword_sampling.sample_hotwords`).
        """
        if hotword_pad is None:
            hotword_pad, hotword_lengths = sample_hotwords(text, text_lengths)
        context = self.training_context(hotword_pad.to(feats.device), hotword_lengths)
        return self._loss(feats, feats_lengths, text, text_lengths, context[None].expand(text.size(0), -1, -1))
