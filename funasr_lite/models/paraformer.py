"""Paraformer = SANMEncoder + CifPredictorV2 + ParaformerSANMDecoder (+ optional CTC).

The constructor mirrors FunASR's ``Paraformer`` keyword arguments (class names,
``*_conf`` dicts and the ``model_conf`` keys), and ``state_dict()`` keys are
identical to FunASR's, so a FunASR ``model.pt`` loads with ``strict=True``.
The specaug module has no parameters and there is no frontend inside the model.

Training loss (``forward``), exactly as FunASR 1.4.16 computes it:

- targets: with ``predictor_bias == 1`` an ``eos`` is appended to each target
  (padding ``ignore_id``) and target lengths grow by 1;
- predictor with the target lengths (alphas rescaled to them);
- glancing sampler (``sampling_ratio > 0``): a first decoder pass without
  gradient; per utterance ``floor((L - correct) * sampling_ratio)`` random target
  positions (``torch.randperm``) take the target token embedding instead of the
  acoustic one; the main pass runs on that mix;
- ``loss_att``: label-smoothed KL to the targets (``lsm_weight``), divided by
  the number of target tokens (``length_normalized_loss``) or the batch size;
- ``loss_pre``: L1 between target lengths and ``sum(alphas)``, divided likewise;
- ``loss = loss_att + predictor_weight * loss_pre`` or, with ``ctc_weight > 0``,
  ``ctc_weight * loss_ctc + (1 - ctc_weight) * loss_att + predictor_weight * loss_pre``;
- ``acc``: token accuracy of the first (sampler) pass, or the main pass without sampler.

One deliberate difference: FunASR's predictor also sees padded encoder frames,
so in a padded batch its loss depends on the padding; ours does not (the
encoder output is zero on padded frames). With equal lengths they are equal.
"""

import inspect
import math
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.ctc import CTC
from funasr_lite.models.registry import resolve
from funasr_lite.models.sanm import lengths_to_mask

if TYPE_CHECKING:
    from funasr_lite.config.schema import ModelConfig


def _build(slot: str, cls: Union[type, str, None], conf: Optional[Dict[str, Any]], **fixed: Any) -> nn.Module:
    """``cls(**fixed, **conf)``, ``cls`` a class or the registered name of one in ``slot``; an unknown class,
    or an unknown or duplicated key (naming ``<slot>_conf``), raises ValueError."""
    if not isinstance(cls, type):
        try:
            cls = resolve(slot, cls)
        except ValueError as e:
            raise ValueError(f"Paraformer: {e}") from None
    conf = dict(conf or {})
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted((set(conf) - accepted) | (set(conf) & set(fixed)))
    if unknown:
        raise ValueError(f"{slot}_conf: unknown or reserved key(s) {unknown} for {cls.__name__}")
    return cls(**fixed, **conf)


def label_smoothing_loss(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float, ignore_id: int, normalize_length: bool
) -> torch.Tensor:
    """FunASR's LabelSmoothingLoss: KL(q || softmax(logits)) summed over tokens.

    ``q`` puts ``1 - smoothing`` on the target and ``smoothing / (V - 1)`` on every other id.
    logits (B, N, V), target (B, N) ids with ``ignore_id`` on padding -> scalar: the sum over
    non-ignored positions / (their count if normalize_length else B).
    """
    batch, _, vocab = logits.shape
    logp = F.log_softmax(logits.reshape(-1, vocab).float(), dim=-1)
    target = target.reshape(-1)
    valid = target != ignore_id
    conf, eps = 1.0 - smoothing, smoothing / (vocab - 1)
    xlogx = lambda v: v * math.log(v) if v > 0 else 0.0  # noqa: E731  (0 log 0 = 0, as KLDivLoss)
    entropy = xlogx(conf) + (vocab - 1) * xlogx(eps)
    logp_target = logp.gather(1, target.masked_fill(~valid, 0)[:, None])[:, 0]
    cross = conf * logp_target + eps * (logp.sum(dim=-1) - logp_target)
    total = ((entropy - cross) * valid).sum()
    denom = int(valid.sum()) if normalize_length else batch
    return total / denom


class Paraformer(nn.Module):
    """Non-autoregressive Paraformer ASR model (see the module docstring).

    Args mirror FunASR: ``encoder``/``decoder``/``predictor``/``specaug`` are class
    names with their ``*_conf`` dicts; ``ctc_conf`` builds the CTC head when
    ``ctc_weight > 0``; ``input_size`` is the feature width (``n_mels * lfr_m``);
    the rest are FunASR's ``model_conf`` keys. ``normalize`` must be None.
    ``use_1st_decoder_loss`` is accepted and has no effect (as in FunASR);
    ``ctc`` (a class name) is ignored as FunASR ignores it.
    """

    takes_context = False  # True for models whose decoder takes a hotword context (ContextualParaformer)
    # FunASR's ContextualParaformer sampler counts padded target positions (as id 0) as targets: in a padded
    # batch, shorter utterances get glance draws at padded positions (which are then masked out)
    sampler_counts_padding = False

    def __init__(
        self,
        specaug: Optional[str] = None,
        specaug_conf: Optional[Dict[str, Any]] = None,
        normalize: Optional[str] = None,
        normalize_conf: Optional[Dict[str, Any]] = None,
        encoder: str = "SANMEncoder",
        encoder_conf: Optional[Dict[str, Any]] = None,
        decoder: str = "ParaformerSANMDecoder",
        decoder_conf: Optional[Dict[str, Any]] = None,
        ctc: Optional[str] = None,
        ctc_conf: Optional[Dict[str, Any]] = None,
        predictor: str = "CifPredictorV2",
        predictor_conf: Optional[Dict[str, Any]] = None,
        ctc_weight: float = 0.5,
        input_size: int = 80,
        vocab_size: int = -1,
        ignore_id: int = -1,
        blank_id: int = 0,
        sos: Optional[int] = 1,
        eos: Optional[int] = 2,
        lsm_weight: float = 0.0,
        length_normalized_loss: bool = False,
        predictor_weight: float = 0.0,
        predictor_bias: int = 0,
        sampling_ratio: float = 0.2,
        share_embedding: bool = False,
        use_1st_decoder_loss: bool = False,
    ):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"Paraformer: vocab_size must be >= 1, got {vocab_size}")
        if normalize is not None:
            raise ValueError(f"Paraformer: normalize={normalize!r} is not supported (CMVN lives in the frontend)")
        if not 0.0 <= ctc_weight < 1.0:
            raise ValueError(f"Paraformer: ctc_weight must be in [0, 1), got {ctc_weight}")
        if predictor_bias not in (0, 1):
            raise ValueError(f"Paraformer: predictor_bias must be 0 or 1, got {predictor_bias}")
        if not 0.0 <= sampling_ratio <= 1.0:
            raise ValueError(f"Paraformer: sampling_ratio must be in [0, 1], got {sampling_ratio}")
        if not 0.0 <= lsm_weight < 1.0:
            raise ValueError(f"Paraformer: lsm_weight must be in [0, 1), got {lsm_weight}")
        sos = vocab_size - 1 if sos is None else sos  # FunASR's fallback
        eos = vocab_size - 1 if eos is None else eos
        for name, token in (("sos", sos), ("eos", eos), ("blank_id", blank_id)):
            if not 0 <= token < vocab_size:
                raise ValueError(f"Paraformer: {name}={token} outside the vocabulary (size {vocab_size})")

        self.specaug = _build("specaug", specaug, specaug_conf) if specaug else None
        self.encoder = _build("encoder", encoder, encoder_conf, input_size=input_size)
        enc_size = self.encoder.output_size()
        self.decoder = _build("decoder", decoder, decoder_conf, vocab_size=vocab_size, encoder_output_size=enc_size)
        if self.decoder.output_layer is None:
            raise ValueError("Paraformer: the decoder needs use_output_layer=True")
        if getattr(self.decoder, "takes_context", False) != self.takes_context:
            raise ValueError(f"{type(self).__name__}: decoder {type(self.decoder).__name__} does not fit this model")
        self.ctc = (
            _build("ctc", CTC, ctc_conf, odim=vocab_size, encoder_output_size=enc_size) if ctc_weight > 0 else None
        )
        predictor_conf = dict(predictor_conf or {})
        if predictor_conf.get("idim", enc_size) != enc_size:
            raise ValueError(f"Paraformer: predictor idim {predictor_conf['idim']} != encoder output {enc_size}")
        predictor_conf.setdefault("idim", enc_size)
        self.predictor = _build("predictor", predictor, predictor_conf)
        if share_embedding:
            self.decoder.embed = None
        elif self.decoder.embed is None and sampling_ratio > 0:
            raise ValueError("Paraformer: sampling_ratio > 0 needs decoder embeddings (wo_input_layer=False)")

        self.ignore_id = ignore_id
        self.sos = sos
        self.eos = eos
        self.ctc_weight = ctc_weight
        self.lsm_weight = lsm_weight
        self.length_normalized_loss = length_normalized_loss
        self.predictor_weight = predictor_weight
        self.predictor_bias = predictor_bias
        self.sampling_ratio = sampling_ratio
        self.share_embedding = share_embedding

    @classmethod
    def from_config(
        cls, config: Union["ModelConfig", Mapping[str, Any]], vocab_size: int, **extra: Any
    ) -> "Paraformer":
        """Build from a strictly validated config (a :class:`ModelConfig`, or a config.yaml dict, 1.x or 0.x).

        Each block gets the typed fields of its ``*_conf`` that it takes; a field it does not take must hold
        FunASR's default, else it is a ConfigError ("not supported"). ``input_size`` is ``n_mels * lfr_m``.
        ``extra``: more constructor arguments (a subclass's own blocks).
        """
        from funasr_lite.config.schema import ModelConfig

        cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        blocks = {slot: getattr(cfg, slot) for slot in ("encoder", "decoder", "predictor", "specaug")}
        confs = {
            f"{slot}_conf": getattr(cfg, f"{slot}_conf").kwargs_for(
                resolve(slot, name), exclude=("input_size", "vocab_size")
            )
            for slot, name in blocks.items()
            if name is not None
        }
        confs["ctc_conf"] = cfg.ctc_conf.kwargs_for(CTC)
        return cls(
            **blocks,
            **confs,
            **cfg.model_conf.kwargs_for(cls),
            input_size=cfg.encoder_input_size(),
            vocab_size=int(vocab_size),
            **extra,
        )

    # ------------------------------------------------------------------ inference pieces

    def encode(self, feats: torch.Tensor, feats_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """SpecAug (training only) + encoder: feats (B, T, input_size) LFR+CMVN features, feats_lengths (B,)
        -> enc (B, T, D) zero on padded frames, enc_lens (B,)."""
        if self.specaug is not None and self.training:
            with torch.autocast(device_type=feats.device.type, enabled=False):
                feats, feats_lengths = self.specaug(feats.float(), feats_lengths)
        return self.encoder(feats, feats_lengths)

    def calc_predictor(
        self, enc: torch.Tensor, enc_lens: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inference-mode CIF (computed in float32 whatever ``enc``'s dtype).

        Returns:
            acoustic_embeds (B, N, D) in ``enc``'s dtype, token_num (B,) float (use ``round()``),
            alphas (B, T+1) and peaks (B, T+1) (T columns without a tail).
        """
        embeds, token_num, alphas, peaks = self.predictor(enc, enc_lens)
        return embeds.to(enc.dtype), token_num, alphas, peaks

    def decode_logits(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, acoustic_embeds: torch.Tensor, token_lens: torch.Tensor
    ) -> torch.Tensor:
        """Decoder log-probabilities: enc (B, T, D), enc_lens (B,), acoustic_embeds (B, N, D), token_lens (B,) long
        -> (B, N, V) float32 log-softmax; rows at ``n >= token_lens[b]`` are meaningless."""
        logits, _ = self.decoder(enc, enc_lens, acoustic_embeds, token_lens)
        return F.log_softmax(logits.float(), dim=-1)

    def to_decoding_dtype(self, dtype: torch.dtype) -> "Paraformer":
        """Cast for decoding in ``dtype`` (bf16/fp16): all but the CIF predictor, which stays float32 (it sums
        alphas over hundreds of frames; in half precision tokens would be lost or gained). Returns self."""
        self.to(dtype)
        self.predictor.float()
        return self

    # ------------------------------------------------------------------ training

    def _targets(self, text: torch.Tensor, text_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, L) ids + lengths -> targets (B, L') with ``ignore_id`` padding (+eos if predictor_bias)."""
        text_lengths = text_lengths.long()
        if text_lengths.numel() and int(text_lengths.max()) > text.size(1):
            raise ValueError(f"text_lengths max {int(text_lengths.max())} > text width {text.size(1)}")
        lengths = text_lengths + self.predictor_bias
        ys = torch.full((text.size(0), text.size(1) + 1), self.ignore_id, dtype=torch.long, device=text.device)
        valid = lengths_to_mask(text_lengths, text.size(1))
        ys[:, :-1][valid] = text[valid].long()
        if self.predictor_bias == 1:
            ys[torch.arange(ys.size(0), device=ys.device), text_lengths] = self.eos
        width = int(lengths.max()) if lengths.numel() else 0
        return ys[:, :width], lengths

    def run_decoder(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        embeds: torch.Tensor,
        lens: torch.Tensor,
        context: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The decoder call of the training loss: (B, N, V) logits and ``lens``. ``context`` is for subclasses
        whose decoder takes one (a hotword context); Paraformer's must be None."""
        if context is not None:
            raise ValueError(f"{type(self).__name__} takes no hotword context")
        return self.decoder(enc, enc_lens, embeds, lens)

    def _sampler(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        ys: torch.Tensor,
        ys_lens: torch.Tensor,
        embeds: torch.Tensor,
        context: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Glancing sampler; returns (mixed embeddings (B,N,D), first-pass logits (B,N,V)), both masked."""
        tgt_mask = lengths_to_mask(ys_lens, ys.size(1))[:, :, None]
        ys_masked = ys.masked_fill(~tgt_mask[:, :, 0], 0)
        if self.share_embedding:
            ys_embed = self.decoder.output_layer.weight[ys_masked]
        else:
            ys_embed = self.decoder.embed(ys_masked)
        with torch.no_grad():
            logits, _ = self.run_decoder(enc, enc_lens, embeds, ys_lens, context)
            if self.sampler_counts_padding:  # padded positions (as id 0) count as targets
                nonpad, ys_seen = torch.ones_like(ys, dtype=torch.bool), ys_masked
            else:
                nonpad, ys_seen = ys != self.ignore_id, ys
            seq_lens = nonpad.sum(1)
            same = ((logits.argmax(-1) == ys_seen) & nonpad).sum(1)
            keep = torch.ones_like(nonpad)
            for i in range(ys.size(0)):
                n_glance = int(((seq_lens[i] - same[i]).float() * self.sampling_ratio).long())
                if n_glance > 0:
                    keep[i, torch.randperm(int(seq_lens[i]))[:n_glance].to(keep.device)] = False
            keep = (keep & nonpad)[:, :, None]
        mixed = embeds.masked_fill(~keep, 0) + ys_embed.masked_fill(keep, 0)
        return mixed * tgt_mask, logits * tgt_mask

    def _auxiliary_loss(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, ys_lens: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], Dict[str, Any]]:
        """A subclass's extra loss term, added last to the loss, and its stats: enc (B, T, D), enc_lens (B,),
        ys_lens (B,) target lengths (with the eos of ``predictor_bias``) -> (scalar or None, stats)."""
        return None, {}

    def _attention_loss(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        ys: torch.Tensor,
        ys_lens: torch.Tensor,
        context: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, float, torch.Tensor]:
        """Predictor (alphas rescaled to the target lengths), glancing sampler and decoder on targets
        ys (B, L) / ys_lens (B,) -> (loss_att, acc, the predictor's unscaled token counts (B,)); ``context``
        (B, K, D) goes to every decoder call (see :meth:`run_decoder`)."""
        embeds, pre_token_num, _, _ = self.predictor(enc, enc_lens, target_lengths=ys_lens)
        first_logits = None
        if self.sampling_ratio > 0.0:
            embeds, first_logits = self._sampler(enc, enc_lens, ys, ys_lens, embeds, context)
        logits, _ = self.run_decoder(enc, enc_lens, embeds, ys_lens, context)
        if first_logits is None:
            first_logits = logits
        loss_att = label_smoothing_loss(logits, ys, self.lsm_weight, self.ignore_id, self.length_normalized_loss)
        nonpad = ys != self.ignore_id
        acc = float((first_logits.argmax(-1)[nonpad] == ys[nonpad]).sum()) / float(nonpad.sum())
        return loss_att, acc, pre_token_num

    def forward(
        self, feats: torch.Tensor, feats_lengths: torch.Tensor, text: torch.Tensor, text_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """Training loss, as FunASR computes it (see the module docstring).

        Args:
            feats: (B, T, input_size); feats_lengths: (B,);
            text: (B, L) token ids (any padding value); text_lengths: (B,).
        Returns:
            loss (scalar) and stats: ``loss``, ``loss_att``, ``loss_pre``, ``loss_ctc`` (or None),
            ``acc`` (float), ``batch_size`` and ``weight`` (FunASR's reporting weight:
            number of target tokens incl. eos when length-normalised, else the batch size).
        """
        return self._loss(feats, feats_lengths, text, text_lengths)

    def _loss(
        self,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        context: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """:meth:`forward`'s loss; ``context`` (B, K, D) goes to every decoder call (see :meth:`run_decoder`)."""
        enc, enc_lens = self.encode(feats, feats_lengths)
        stats: Dict[str, Any] = {}
        loss_ctc = None
        if self.ctc is not None:
            loss_ctc = self.ctc(enc, enc_lens, text, text_lengths)
            stats["loss_ctc"] = loss_ctc.detach()

        ys, ys_lens = self._targets(text, text_lengths)
        loss_att, acc, pre_token_num = self._attention_loss(enc, enc_lens, ys, ys_lens, context)
        target_num = ys_lens.to(pre_token_num.dtype)
        pre_norm = target_num.sum() if self.length_normalized_loss else target_num.new_tensor(float(ys.size(0)))
        loss_pre = (target_num - pre_token_num).abs().sum() / pre_norm

        if loss_ctc is None:
            loss = loss_att + loss_pre * self.predictor_weight
        else:
            loss = self.ctc_weight * loss_ctc + (1 - self.ctc_weight) * loss_att + loss_pre * self.predictor_weight
        extra, extra_stats = self._auxiliary_loss(enc, enc_lens, ys_lens)
        if extra is not None:
            loss = loss + extra
            stats.update(extra_stats)
        batch = feats.size(0)
        stats.update(
            loss=loss.detach(),
            loss_att=loss_att.detach(),
            loss_pre=loss_pre.detach(),
            acc=acc,
            batch_size=batch,
            weight=int(ys_lens.sum()) if self.length_normalized_loss else batch,
        )
        stats.setdefault("loss_ctc", None)
        return loss, stats
