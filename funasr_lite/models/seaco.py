"""SeacoParaformer: BiCifParaformer plus hotword biasing (FunASR ``SeacoParaformer``, ``paraformer-zh``).

Parameters, named as FunASR's:

- ``bias_encoder``: a 2-layer LSTM (``bias_encoder_type: lstm``; ``lstm_proj`` maps a bidirectional one back
  to ``inner_dim``) over each hotword's token embeddings (the main decoder's ``embed``); a hotword is the
  output at its last token. ``inner_dim`` must equal the decoder width.
- ``seaco_decoder``: a ParaformerSANMDecoder without input and output layers whose "encoder output" is the
  hotword vectors. Its blocks are counted as FunASR counts them: ``att_layer_num`` (default 6) blocks with
  cross-attention, plus ``num_blocks - att_layer_num`` FSMN-only blocks when positive; so the hub config's
  ``num_blocks: 4`` builds 6 blocks.
- ``hotword_output_layer``: Linear(inner_dim, vocab).

Decoding with hotwords (FunASR's ASF, :meth:`SeacoParaformer.biased_log_probs`), given the hotwords'
token ids plus a last "no bias" entry ``[sos]``:

1. With more than ``nfilter`` (50) + 1 entries, each utterance keeps the ``nfilter`` entries its tokens attend
   to most (the seaco decoder's 6th cross-attention block, weights summed over heads and tokens, from the
   main decoder's hidden states), plus the no-bias entry (which may then appear twice, as in FunASR).
2. The seaco decoder reads the CIF embeddings and, separately, the main decoder's hidden states; the sum
   goes through ``hotword_output_layer`` and a log-softmax.
3. Where that argmax is ``NO_BIAS`` the decoder's log-probabilities are used, elsewhere the hotword
   head's (``seaco_weight`` 1 at inference, as FunASR decodes).

Training (:meth:`SeacoParaformer.forward`), as FunASR 1.4.16 with ``train_decoder`` (the default):
``loss = loss_seaco + seaco_weight * loss_att``; ``loss_att`` is Paraformer's attention loss (sampler
included; no CIF length losses), ``loss_seaco`` the label-smoothed loss of the hotword head on the targets'
hotword labels (the hotword's tokens at its positions, ``NO_BIAS`` elsewhere; see :func:`hotword_batch`).
Hotwords are sampled from the targets as FunASR's hotword dataset does (:func:`sample_hotword_span`).
"""

import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.bicif import BiCifParaformer
from funasr_lite.models.decoder import ParaformerSANMDecoder
from funasr_lite.models.hotword_sampling import hotword_spans
from funasr_lite.models.paraformer import label_smoothing_loss

__all__ = ["sample_hotword_span", "hotword_batch", "SeacoParaformer"]

ASF_BLOCK = 5  # the seaco decoder block whose attention filters hotwords (FunASR's forward_asf6)


def sample_hotword_span(length: int, rng: Any) -> Tuple[int, ...]:
    """Hotword positions sampled from a target of ``length`` tokens, as FunASR's hotword dataset samples
    them: :func:`~funasr_lite.models.hotword_sampling.hotword_spans` (the same ``rng.random()``/``rng.randint()``
    draws in the same order, so one seed gives FunASR's spans) flattened to ``()``, ``(start, end)`` or
    ``(start1, end1, start2, end2)`` (inclusive); ``rng``: a :class:`random.Random` or the ``random`` module.
    """
    return tuple(i for span in hotword_spans(length, rng) for i in span)


def hotword_batch(
    text: torch.Tensor, text_lengths: torch.Tensor, spans: Sequence[Tuple[int, ...]], no_bias: int, sos: int
) -> Tuple[List[List[int]], torch.Tensor]:
    """The hotword list and hotword labels of a batch, as FunASR's hotword collator makes them.

    text (B, L) ids, text_lengths (B,), spans: per utterance ``()``, ``(s, e)`` or ``(s1, e1, s2, e2)``
    (inclusive) -> (hotwords: every span's ids in batch order, then ``[sos]``; labels (B, L): ``no_bias`` on
    each utterance's tokens, the token itself inside a span, -1 on padding).
    """
    labels = torch.full_like(text, -1)
    hotwords: List[List[int]] = []
    for b, span in enumerate(spans):
        n = int(text_lengths[b])
        labels[b, :n] = no_bias
        for start, end in zip(span[0::2], span[1::2]):
            hotwords.append([int(t) for t in text[b, start : end + 1]])
            labels[b, start : end + 1] = text[b, start : end + 1]
    return hotwords + [[sos]], labels


class SeacoParaformer(BiCifParaformer):
    """FunASR's SeacoParaformer (see the module docstring).

    Args (beyond :class:`~funasr_lite.models.paraformer.Paraformer`'s; ``model_conf`` keys unless noted):
        seaco_decoder, seaco_decoder_conf: top-level config keys: the hotword decoder's class
            (ParaformerSANMDecoder) and its arguments.
        inner_dim: hotword vector width (= decoder width).
        bias_encoder_type: ``lstm`` (FunASR's ``mean`` builds a model its own decoding cannot run).
        bias_encoder_dropout_rate, bias_encoder_bid: the LSTM's dropout and direction.
        seaco_lsm_weight, seaco_length_normalized_loss: label smoothing / normalisation of ``loss_seaco``.
        train_decoder: add ``seaco_weight * loss_att`` to the loss.
        seaco_weight: that weight (training only; decoding merges with weight 1, as FunASR does).
        NO_BIAS: the token id the hotword head predicts where no hotword applies.
    """

    def __init__(
        self,
        *args: Any,
        seaco_decoder: Optional[str] = "ParaformerSANMDecoder",
        seaco_decoder_conf: Optional[Dict[str, Any]] = None,
        inner_dim: int = 256,
        bias_encoder_type: str = "lstm",
        bias_encoder_dropout_rate: float = 0.0,
        bias_encoder_bid: bool = False,
        seaco_lsm_weight: float = 0.0,
        seaco_length_normalized_loss: bool = True,
        train_decoder: bool = True,
        seaco_weight: float = 0.01,
        NO_BIAS: int = 8377,  # noqa: N803  (FunASR's key)
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        vocab = self.decoder.output_layer.out_features
        if bias_encoder_type != "lstm":
            raise ValueError(
                f"SeacoParaformer: bias_encoder_type {bias_encoder_type!r} is not supported (only 'lstm'; "
                "FunASR 1.4.16 cannot decode with 'mean' either)"
            )
        if seaco_decoder != "ParaformerSANMDecoder":
            raise ValueError(f"SeacoParaformer: seaco_decoder must be ParaformerSANMDecoder, got {seaco_decoder!r}")
        if self.decoder.embed is None:
            raise ValueError("SeacoParaformer: hotwords are embedded with the decoder's embed (share_embedding off)")
        if inner_dim != self.decoder.after_norm.normalized_shape[0]:
            raise ValueError(f"SeacoParaformer: inner_dim {inner_dim} must equal the decoder width")
        if not 0 <= NO_BIAS < vocab:
            raise ValueError(f"SeacoParaformer: NO_BIAS={NO_BIAS} outside the vocabulary (size {vocab})")
        self.bias_encoder = nn.LSTM(
            inner_dim, inner_dim, 2, batch_first=True, dropout=bias_encoder_dropout_rate, bidirectional=bias_encoder_bid
        )
        self.lstm_proj = nn.Linear(inner_dim * 2, inner_dim) if bias_encoder_bid else None
        conf = dict(seaco_decoder_conf or {})
        att_layers = conf.get("att_layer_num", 6)
        conf["num_blocks"] = max(conf.get("num_blocks", 6), att_layers)  # FunASR builds att_layer_num at least
        self.seaco_decoder = ParaformerSANMDecoder(vocab_size=vocab, encoder_output_size=inner_dim, **conf)
        self.hotword_output_layer = nn.Linear(inner_dim, vocab)
        self.seaco_lsm_weight = seaco_lsm_weight
        self.seaco_length_normalized_loss = seaco_length_normalized_loss
        self.train_decoder = train_decoder
        self.seaco_weight = seaco_weight
        self.no_bias = NO_BIAS

    @classmethod
    def from_config(cls, config, vocab_size: int, **extra: Any) -> "SeacoParaformer":
        """:meth:`Paraformer.from_config` plus the config's top-level ``seaco_decoder``/``seaco_decoder_conf``."""
        from funasr_lite.config.schema import ModelConfig

        cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        conf = cfg.seaco_decoder_conf.kwargs_for(ParaformerSANMDecoder, exclude=("vocab_size", "encoder_output_size"))
        return super().from_config(cfg, vocab_size, seaco_decoder=cfg.seaco_decoder, seaco_decoder_conf=conf, **extra)

    # ------------------------------------------------------------------ hotwords

    def hotword_vectors(self, hotwords: Sequence[Sequence[int]]) -> torch.Tensor:
        """(K,) non-empty token-id lists -> (K, inner_dim): the bias encoder's output at each hotword's last
        token, each hotword read on its own (packed sequences). ValueError for an empty list."""
        if any(len(h) == 0 for h in hotwords):
            raise ValueError("a hotword has no tokens")
        device = self.hotword_output_layer.weight.device
        seqs = [torch.as_tensor(list(h), dtype=torch.long, device=device) for h in hotwords]
        lengths = torch.tensor([len(h) for h in hotwords])
        embeds = self.decoder.embed(nn.utils.rnn.pad_sequence(seqs, batch_first=True))
        packed = nn.utils.rnn.pack_padded_sequence(embeds, lengths, batch_first=True, enforce_sorted=False)
        out, _ = nn.utils.rnn.pad_packed_sequence(self.bias_encoder(packed)[0], batch_first=True)
        if self.lstm_proj is not None:
            out = self.lstm_proj(out)
        return out[torch.arange(len(hotwords), device=device), (lengths - 1).to(device)]

    def _attend(
        self, context: torch.Tensor, embeds: torch.Tensor, hidden: torch.Tensor, token_lens: torch.Tensor
    ) -> torch.Tensor:
        """Hotword head logits: context (B, K, D) hotword vectors, embeds (B, N, D) CIF embeddings,
        hidden (B, N, D) decoder hidden states -> (B, N, V)."""
        k = torch.full((context.size(0),), context.size(1), dtype=torch.long, device=context.device)
        cif_attended, _ = self.seaco_decoder(context, k, embeds, token_lens)
        dec_attended, _ = self.seaco_decoder(context, k, hidden, token_lens)
        return self.hotword_output_layer(cif_attended + dec_attended)

    def biased_log_probs(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        embeds: torch.Tensor,
        token_lens: torch.Tensor,
        hotwords: Optional[Sequence[Sequence[int]]],
        nfilter: int = 50,
        seaco_weight: float = 1.0,
    ) -> torch.Tensor:
        """Decoder log-probabilities merged with the hotword head's (see the module docstring).

        enc (B, T, D), enc_lens (B,), embeds (B, N, D) CIF embeddings, token_lens (B,) long; ``hotwords``:
        token-id lists without the no-bias entry (appended here), None for no biasing -> (B, N, V).
        """
        hidden = self.decoder.hidden(enc, enc_lens, embeds, token_lens)
        dec_logp = F.log_softmax(self.decoder.output_layer(hidden), dim=-1)
        if hotwords is None:
            return dec_logp
        entries = [list(h) for h in hotwords] + [[self.sos]]
        vectors = self.hotword_vectors(entries)  # (K, D)
        batch, count = enc.size(0), len(entries)
        context = vectors[None].expand(batch, -1, -1)
        if 0 < nfilter < count:
            k = torch.full((batch,), count, dtype=torch.long, device=enc.device)
            weights = self.seaco_decoder.source_weights(context, k, hidden, token_lens, ASF_BLOCK)
            rows = []
            for b in range(batch):
                scores = weights[b, :, : int(token_lens[b])].sum(0).sum(0)  # (K,)
                keep = torch.topk(scores, min(nfilter, count - 1))[1].tolist() + [count - 1]
                rows.append(vectors[keep])
            context = torch.stack(rows)
        hot_logp = F.log_softmax(self._attend(context, embeds, hidden, token_lens), dim=-1)
        no_bias = (hot_logp.argmax(-1) == self.no_bias).to(hot_logp.dtype)[:, :, None]
        lam = torch.tensor(seaco_weight, dtype=hot_logp.dtype)
        use_dec = (no_bias + (1 - lam) / lam) / (1 / lam)
        return dec_logp * use_dec + hot_logp * (1 - use_dec)

    # ------------------------------------------------------------------ training

    def forward(
        self,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        hotword_spans: Optional[Sequence[Tuple[int, ...]]] = None,
    ) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """SeACo training loss (see the module docstring).

        feats (B, T, input_size), feats_lengths (B,), text (B, L) ids, text_lengths (B,); ``hotword_spans``:
        per utterance ``()``, ``(s, e)`` or ``(s1, e1, s2, e2)``; default: sampled with
        :func:`sample_hotword_span` from Python's ``random``. Returns loss and stats (``loss``,
        ``loss_seaco``, ``loss_att`` and ``acc`` with ``train_decoder`` (without it ``acc`` is 0: FunASR reports
        none), ``batch_size``, ``weight``).
        """
        width = int(text_lengths.max()) if text_lengths.numel() else 0
        text = text[:, :width]
        if hotword_spans is None:
            # Python's global generator, as FunASR's dataset draws
            hotword_spans = [sample_hotword_span(int(n), random) for n in text_lengths]
        hotwords, labels = hotword_batch(text, text_lengths, hotword_spans, self.no_bias, self.sos)
        enc, enc_lens = self.encode(feats, feats_lengths)
        ys, ys_lens = self._targets(text, text_lengths)

        embeds = self.predictor(enc, enc_lens, target_lengths=ys_lens)[0]
        hidden = self.decoder.hidden(enc, enc_lens, embeds, ys_lens)
        context = self.hotword_vectors(hotwords)[None].expand(enc.size(0), -1, -1)
        logits = self._attend(context, embeds, hidden, ys_lens)[:, :-1]  # the last position has no label
        loss_seaco = label_smoothing_loss(
            logits, labels, self.seaco_lsm_weight, self.ignore_id, self.seaco_length_normalized_loss
        )
        stats: Dict[str, Any] = {"loss_seaco": loss_seaco.detach()}
        loss = loss_seaco
        if self.train_decoder:
            loss_att, acc, _ = self._attention_loss(enc, enc_lens, ys, ys_lens)
            loss = loss_seaco + loss_att * self.seaco_weight
            stats.update(loss_att=loss_att.detach(), acc=acc)
        batch = feats.size(0)
        stats.update(
            loss=loss.detach(),
            batch_size=batch,
            weight=int(ys_lens.sum()) if self.length_normalized_loss else batch,
        )
        stats.setdefault("acc", 0.0)
        return loss, stats
