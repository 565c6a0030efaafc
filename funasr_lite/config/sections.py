"""The typed model, optimizer and scheduler ``*_conf`` sections of a FunASR config.yaml, one dataclass each:
FunASR 1.4.16's constructor kwargs as fields with FunASR's defaults, a comment on each, range checks, and the
keys FunASR's configs carry that funasr-lite does not use (``KNOWN_UNUSED``, kept verbatim). ``dataset_conf``,
``train_conf`` and funasr-lite's ``decoding`` are declared next to the code that uses them.

``optim_conf`` and ``scheduler_conf`` accept the arguments of the optimizer / scheduler the config names
(FUNASR_CLASSES); funasr-lite trains with SUPPORTED_CLASSES only.
"""

import functools
import inspect
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

import yaml

from funasr_lite.config.fields import Section, option
from funasr_lite.config.yaml_io import plain

# Window types torchaudio's Kaldi fbank accepts (here, torch-free, so a config is checked without torch).
WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "blackman")
DROPOUT = dict(lo=0.0, hi=1.0, hi_open=True)  # a dropout rate: [0, 1)

_TF2TORCH = ("tf2torch_tensor_name_prefix_torch", "tf2torch_tensor_name_prefix_tf")
_LORA = ("lora_list", "lora_rank", "lora_alpha", "lora_dropout")


@dataclass(frozen=True)
class FrontendConf(Section):
    """``frontend_conf`` of WavFrontend (Kaldi fbank + LFR + CMVN). Defaults are WavFrontend's."""

    SECTION: ClassVar[str] = "frontend_conf"
    cmvn_file: Optional[str] = option(None, "am.mvn path (Kaldi nnet1 text); 0.x had it top-level")
    fs: int = option(16000, "sample rate the model expects, Hz")
    window: str = option("hamming", "fbank window type")
    n_mels: int = option(80, "mel bins per frame")
    frame_length: int = option(25, "fbank window, ms")
    frame_shift: int = option(10, "fbank hop, ms")
    filter_length_min: int = option(-1, "FunASR: drop inputs shorter than this (frames); -1 = off")
    filter_length_max: int = option(-1, "FunASR: drop inputs longer than this (frames); -1 = off")
    lfr_m: int = option(1, "LFR: frames stacked per output frame (7 for Paraformer)")
    lfr_n: int = option(1, "LFR: hop in frames (6 for Paraformer)")
    dither: float = option(1.0, "fbank dither; FunASR's default 1.0 when absent; funasr-lite inference uses 0")
    snip_edges: bool = option(True, "Kaldi snip_edges")
    upsacle_samples: bool = option(True, "(sic, FunASR's spelling) scale [-1,1] audio to int16 range first")

    @property
    def frame_ms(self) -> float:
        """Milliseconds per output frame (an encoder frame): frame_shift x lfr_n (60 for Paraformer)."""
        return float(self.frame_shift * self.lfr_n)

    def validate(self):
        if self.window not in WINDOW_TYPES:
            raise self._fail("window", f"unknown window type; use one of {', '.join(WINDOW_TYPES)}")
        self._range(["fs"], 1000, 192000)  # Hz
        self._range(["frame_length"], 1, 200)  # ms (Kaldi/FunASR: 25)
        self._range(["frame_shift"], 1, self.frame_length)  # ms, at most the window (FunASR: 10)
        fft_bins = 2 ** max(0, math.ceil(math.log2(max(1, self.fs * self.frame_length // 1000)))) // 2
        self._range(["n_mels"], 1, fft_bins)  # each mel bin needs an FFT bin of the padded window
        self._range(["lfr_m"], 1, 32)
        self._range(["lfr_n"], 1, self.lfr_m)  # a hop over more frames than are stacked drops audio
        self._range(["filter_length_min", "filter_length_max"], 0, also=(-1,))
        self._range(["dither"], 0.0)


@dataclass(frozen=True)
class EncoderConf(Section):
    """``encoder_conf`` of SANMEncoder. Defaults are FunASR 1.4.16's SANMEncoder defaults."""

    SECTION: ClassVar[str] = "encoder_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = _LORA + _TF2TORCH
    output_size: int = option(256, "model dimension d (512 in paraformer-large)")
    attention_heads: int = option(4, "attention heads")
    linear_units: int = option(2048, "feed-forward hidden units")
    num_blocks: int = option(6, "encoder blocks (50 in paraformer-large)")
    dropout_rate: float = option(0.1, "dropout after attention / FFN")
    positional_dropout_rate: float = option(0.1, "dropout after positional encoding")
    attention_dropout_rate: float = option(0.0, "dropout on attention weights")
    input_layer: Optional[str] = option("conv2d", 'input embedding; Paraformer uses "pe" (sinusoidal, no subsampling)')
    pos_enc_class: str = option("SinusoidalPositionEncoder", "positional encoding class name")
    normalize_before: bool = option(True, "pre-LayerNorm blocks")
    concat_after: bool = option(False, "concat attention input and output instead of adding")
    positionwise_layer_type: str = option("linear", "FFN type: linear, conv1d, conv1d-linear")
    positionwise_conv_kernel_size: int = option(1, "kernel of a conv1d FFN")
    padding_idx: int = option(-1, 'padding index for an "embed" input layer')
    interctc_layer_idx: List[int] = option(factory=list, help="blocks that emit intermediate CTC")
    interctc_use_conditioning: bool = option(False, "feed intermediate CTC posteriors back")
    kernel_size: int = option(11, "FSMN memory kernel of SANM attention")
    sanm_shfit: int = option(0, "(sic) FSMN kernel shift; 0 = centred")
    selfattention_layer_type: str = option("sanm", '"sanm" or "selfattn"')

    def validate(self):
        for k in ("output_size", "attention_heads", "linear_units", "num_blocks", "kernel_size"):
            if getattr(self, k) <= 0:
                raise self._fail(k, "must be > 0")
        self._range(["dropout_rate", "positional_dropout_rate", "attention_dropout_rate"], **DROPOUT)
        self._range(["positionwise_conv_kernel_size"], 1)
        self._range(["sanm_shfit"], 0, self.kernel_size - 1)
        self._range(["padding_idx"], -1)
        if any(not 1 <= i <= self.num_blocks for i in self.interctc_layer_idx):
            raise self._fail("interctc_layer_idx", f"every block index must be in 1..num_blocks={self.num_blocks}")
        if self.output_size % self.attention_heads:
            raise self._fail("output_size", f"must be divisible by attention_heads={self.attention_heads}")


@dataclass(frozen=True)
class DecoderConf(Section):
    """``decoder_conf`` of ParaformerSANMDecoder (vocab_size and encoder_output_size are passed separately)."""

    SECTION: ClassVar[str] = "decoder_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = _LORA + _TF2TORCH
    attention_heads: int = option(4, "attention heads of the source attention")
    linear_units: int = option(2048, "feed-forward hidden units")
    num_blocks: int = option(6, "decoder blocks (16 in paraformer-large)")
    dropout_rate: float = option(0.1, "dropout after attention / FFN")
    positional_dropout_rate: float = option(0.1, "dropout after positional encoding")
    self_attention_dropout_rate: float = option(0.0, "dropout in the FSMN self-attention")
    src_attention_dropout_rate: float = option(0.0, "dropout on source attention weights")
    input_layer: str = option("embed", "token embedding type")
    use_output_layer: bool = option(True, "final projection to the vocabulary")
    wo_input_layer: bool = option(False, "build no input layer")
    pos_enc_class: str = option("PositionalEncoding", "positional encoding class name")
    normalize_before: bool = option(True, "pre-LayerNorm blocks")
    concat_after: bool = option(False, "concat attention input and output instead of adding")
    att_layer_num: int = option(6, "blocks with source attention (the rest are FSMN-only)")
    kernel_size: int = option(21, "FSMN memory kernel (11 in paraformer-large)")
    sanm_shfit: int = option(0, "(sic) FSMN kernel shift")
    chunk_multiply_factor: List[int] = option(factory=lambda: [1], help="streaming only")

    def validate(self):
        for k in ("attention_heads", "linear_units", "num_blocks", "kernel_size"):
            if getattr(self, k) <= 0:
                raise self._fail(k, "must be > 0")
        self._range(["dropout_rate", "positional_dropout_rate", "self_attention_dropout_rate"], **DROPOUT)
        self._range(["src_attention_dropout_rate"], **DROPOUT)
        self._range(["sanm_shfit"], 0, self.kernel_size - 1)
        if not 0 <= self.att_layer_num <= self.num_blocks:
            raise self._fail("att_layer_num", f"must be in 0..num_blocks={self.num_blocks}")


@dataclass(frozen=True)
class SeacoDecoderConf(DecoderConf):
    """``seaco_decoder_conf`` (top level) of SeacoParaformer's hotword decoder, a ParaformerSANMDecoder.

    FunASR builds ``att_layer_num`` (default 6) cross-attention blocks even when ``num_blocks`` is smaller
    (the hub config says 4 and builds 6), so att_layer_num > num_blocks is allowed here."""

    SECTION: ClassVar[str] = "seaco_decoder_conf"

    def validate(self):
        for k in ("attention_heads", "linear_units", "num_blocks", "kernel_size"):
            if getattr(self, k) <= 0:
                raise self._fail(k, "must be > 0")
        self._range(["dropout_rate", "positional_dropout_rate", "self_attention_dropout_rate"], **DROPOUT)
        self._range(["src_attention_dropout_rate"], **DROPOUT)
        self._range(["sanm_shfit"], 0, self.kernel_size - 1)
        self._range(["att_layer_num"], 0)


@dataclass(frozen=True)
class PredictorConf(Section):
    """``predictor_conf`` of CifPredictorV2 / CifPredictorV3; idim, l_order and r_order have no default and are required."""

    SECTION: ClassVar[str] = "predictor_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = _TF2TORCH
    idim: Optional[int] = option(None, "input dim = encoder output_size (required)")
    l_order: Optional[int] = option(None, "left context of the CIF conv (required; 1 in paraformer-large)")
    r_order: Optional[int] = option(None, "right context of the CIF conv (required; 1 in paraformer-large)")
    threshold: float = option(1.0, "CIF firing threshold")
    dropout: float = option(0.1, "dropout before the weight projection")
    smooth_factor: float = option(1.0, "scale of the CIF weights")
    noise_threshold: float = option(0.0, "weights below this are zeroed")
    tail_threshold: float = option(0.0, "weight added at the end to fire a last token (0.45 in paraformer-large)")
    tail_mask: bool = option(True, "mask the tail weight by the padding mask")
    smooth_factor2: float = option(1.0, "CifPredictorV3: scale of the timestamp head's weights")
    noise_threshold2: float = option(0.0, "CifPredictorV3: subtracted from the timestamp head's weights")
    upsample_times: int = option(5, "CifPredictorV3: timestamp sub-frames per encoder frame (3 in the hub models)")
    upsample_type: str = option("cnn", "CifPredictorV3: timestamp head, cnn or cnn_blstm (FunASR's cnn_attn: no)")
    use_cif1_cnn: bool = option(True, "CifPredictorV3: the head reads the CIF conv output (else the encoder's)")

    def validate(self):
        self._range(["upsample_times"], 1)
        for k in ("idim", "l_order", "r_order"):
            if getattr(self, k) is not None and getattr(self, k) < 0:
                raise self._fail(k, "must be >= 0")
        if self.threshold <= 0:
            raise self._fail("threshold", "must be > 0")
        self._range(["dropout"], **DROPOUT)
        self._range(["smooth_factor"], 0.0, lo_open=True)
        self._range(["noise_threshold"], 0.0, self.threshold)
        self._range(["tail_threshold"], 0.0, self.threshold)


@dataclass(frozen=True)
class CTCConf(Section):
    """``ctc_conf`` of FunASR's CTC head (built only when model_conf.ctc_weight > 0)."""

    SECTION: ClassVar[str] = "ctc_conf"
    dropout_rate: float = option(0.0, "dropout before the CTC projection")
    ctc_type: str = option("builtin", 'loss implementation; only "builtin" (torch CTCLoss)')
    reduce: bool = option(True, "sum the loss over the batch")
    ignore_nan_grad: bool = option(True, "FunASR flag (kept for compatibility)")
    extra_linear: bool = option(True, "have the ctc_lo projection layer")

    def validate(self):
        self._range(["dropout_rate"], **DROPOUT)


@dataclass(frozen=True)
class SpecAugConf(Section):
    """``specaug_conf`` of SpecAugLFR (training only). Defaults are FunASR's SpecAugLFR defaults."""

    SECTION: ClassVar[str] = "specaug_conf"
    apply_time_warp: bool = option(True, "time warping (paraformer-large: false)")
    time_warp_window: int = option(5, "time warp window, frames")
    time_warp_mode: str = option("bicubic", "time warp interpolation")
    apply_freq_mask: bool = option(True, "frequency masking")
    freq_mask_width_range: Union[int, List[int]] = option(factory=lambda: [0, 20], help="mask width range, bins")
    num_freq_mask: int = option(2, "frequency masks per utterance")
    lfr_rate: int = option(0, "LFR stacking - 1 (6 for lfr_m=7): one band is masked in every stacked sub-frame")
    apply_time_mask: bool = option(True, "time masking")
    time_mask_width_range: Union[int, List[int], None] = option(None, "mask width range, frames")
    time_mask_width_ratio_range: Union[float, List[float], None] = option(None, "... or as a ratio of the length")
    num_time_mask: int = option(2, "time masks per utterance")

    def validate(self):
        self._range(["time_warp_window", "num_freq_mask", "lfr_rate", "num_time_mask"], 0)
        for k, hi in (("freq_mask_width_range", None), ("time_mask_width_range", None)):
            self._width_range(k, hi)
        self._width_range("time_mask_width_ratio_range", 1.0)

    def _width_range(self, key: str, hi) -> None:
        v = getattr(self, key)
        pair = [0, v] if isinstance(v, (int, float)) else v
        if pair is None:
            return
        if len(pair) != 2 or not 0 <= pair[0] <= pair[1] or (hi is not None and pair[1] > hi):
            top = f"<= {hi}" if hi is not None else ""
            raise self._fail(key, f"must be a width >= 0 or a range [low, high] with 0 <= low <= high {top}".strip())


@dataclass(frozen=True)
class ModelConf(Section):
    """``model_conf`` of Paraformer (the loss and special ids). Defaults are FunASR's Paraformer defaults."""

    SECTION: ClassVar[str] = "model_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = (
        "interctc_weight",
        "report_cer",
        "report_wer",
        "sym_space",
        "sym_blank",
        "extract_feats_in_collect_stats",
        "vocab_size",
    )
    ctc_weight: float = option(0.5, "CTC loss weight; > 0 builds the CTC head (paraformer-large: 0.0)")
    ignore_id: int = option(-1, "padding id of targets")
    blank_id: int = option(0, "CTC blank id")
    sos: Optional[int] = option(1, "start-of-sentence id (null: vocab_size - 1)")
    eos: Optional[int] = option(2, "end-of-sentence id, appended to targets when predictor_bias=1")
    lsm_weight: float = option(0.0, "label smoothing of the decoder CE (paraformer-large: 0.1)")
    length_normalized_loss: bool = option(False, "divide the CE by tokens instead of utterances")
    predictor_weight: float = option(0.0, "weight of the token-count (MAE) loss (paraformer-large: 1.0)")
    predictor_bias: int = option(0, "1: count </s> as a target token (paraformer-large: 1)")
    sampling_ratio: float = option(0.2, "glancing sampler ratio (paraformer-large: 0.75)")
    share_embedding: bool = option(False, "tie decoder embedding and output layer")
    use_1st_decoder_loss: bool = option(False, "add the first-pass decoder loss")
    # hotword models' keys (ContextualParaformer, SeacoParaformer; refused for Paraformer unless they hold
    # these defaults)
    inner_dim: int = option(256, "hotword embedding / bias-encoder width (Contextual: = encoder, SeACo: = decoder)")
    bias_encoder_type: str = option("lstm", "hotword encoder: lstm (FunASR's 'mean' cannot decode)")
    bias_encoder_dropout_rate: float = option(0.0, "dropout of the hotword LSTM (between its layers)")
    # ContextualParaformer only
    use_decoder_embedding: bool = option(False, "embed hotwords with the decoder's embedding, not bias_embed")
    crit_attn_weight: float = option(0.0, "hotword attention loss weight (unused by FunASR 1.4.16: no effect)")
    crit_attn_smooth: float = option(0.0, "its smoothing (unused by FunASR 1.4.16: no effect)")
    target_buffer_length: int = option(-1, "hotword buffer of FunASR's unused streaming path (no effect)")
    # SeacoParaformer only (FunASR reads them from its **kwargs)
    bias_encoder_bid: bool = option(False, "SeacoParaformer: bidirectional hotword LSTM")
    seaco_lsm_weight: float = option(0.0, "SeacoParaformer: label smoothing of the hotword loss")
    seaco_length_normalized_loss: bool = option(True, "SeacoParaformer: divide the hotword loss by tokens")
    train_decoder: bool = option(True, "SeacoParaformer: add seaco_weight x the decoder loss")
    seaco_weight: float = option(0.01, "SeacoParaformer: weight of the decoder loss in training")
    NO_BIAS: int = option(8377, "SeacoParaformer: the token id of 'no hotword here'")

    def validate(self):
        for k in ("ctc_weight", "lsm_weight", "sampling_ratio"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise self._fail(k, "must be in [0, 1]")
        if self.predictor_bias not in (0, 1):
            raise self._fail("predictor_bias", "must be 0 or 1")
        self._range(["predictor_weight"], 0.0)
        self._range(["blank_id", "sos", "eos"], 0)


@dataclass(frozen=True)
class TokenizerConf(Section):
    """``tokenizer_conf`` of CharTokenizer."""

    SECTION: ClassVar[str] = "tokenizer_conf"
    token_list: Union[str, List[str], None] = option(None, "tokens.json / tokens.txt path, or the list itself")
    seg_dict: Optional[str] = option(None, "seg_dict path (word -> pieces ending in @@)")
    seg_dict_file: Optional[str] = option(None, "same, the name file_path_metas and 0.x use")
    unk_symbol: str = option("<unk>", "unknown token")
    split_with_space: bool = option(False, "text is space-separated words (paraformer-large: true)")
    space_symbol: str = option("<space>", "token for a space when not splitting on spaces")
    non_linguistic_symbols: Union[str, List[str], None] = option(None, "file or list of symbols like [noise]")
    remove_non_linguistic_symbols: bool = option(False, "drop those symbols from the text")


# Optimizers / schedulers FunASR 1.4.16 registers (config/funasr_names.yaml; names match case-insensitively), by
# the key naming them. funasr-lite trains with SUPPORTED_CLASSES only; the others load (inference) but do not train.
with open(os.path.join(os.path.dirname(__file__), "funasr_names.yaml"), encoding="utf-8") as _f:
    FUNASR_NAMES: Dict[str, Any] = yaml.safe_load(_f)
FUNASR_CLASSES = {"optim": tuple(FUNASR_NAMES["optimizers"]), "scheduler": tuple(FUNASR_NAMES["schedulers"])}
SUPPORTED_CLASSES = {"optim": ("adam", "adamw", "sgd"), "scheduler": ("warmuplr",)}


@functools.lru_cache(maxsize=None)
def class_args(kind: str, name: Optional[str]) -> Tuple[str, ...]:
    """Constructor argument names of optimizer (``kind="optim"``) or scheduler ``name`` (all known ones
    together for None)."""
    if name is None:
        return tuple(sorted({a for n in FUNASR_CLASSES[kind] for a in class_args(kind, n)}))
    if name in FUNASR_NAMES["own_class_args"]:  # FunASR's own classes (signatures read from 1.4.16)
        return tuple(FUNASR_NAMES["own_class_args"][name])
    import torch  # only for the signature of a torch optimizer / scheduler

    module = torch.optim if kind == "optim" else torch.optim.lr_scheduler
    cls = next(getattr(module, a) for a in dir(module) if a.lower() == name and isinstance(getattr(module, a), type))
    return tuple(p for p in inspect.signature(cls).parameters if p not in ("params", "optimizer"))


@dataclass(frozen=True)
class _ClassArgsSection(Section):
    """A section of keyword arguments for the class named by the top-level key CLASS_KEY: the keys allowed
    are that class's arguments; unset (None) fields are left to the class's own defaults."""

    @classmethod
    def known_keys(cls, class_name=None):
        return list(class_args(cls.CLASS_KEY, class_name))

    def kwargs(self):
        """The set arguments only (each class has its own defaults), plus ``extra``."""
        out = {k: v for k, v in super().kwargs().items() if v is not None}
        out.update(plain(self.extra))
        return out


@dataclass(frozen=True)
class OptimConf(_ClassArgsSection):
    """``optim_conf``: keyword arguments of the optimizer named by ``optim`` (None = its own default)."""

    SECTION: ClassVar[str] = "optim_conf"
    CLASS_KEY: ClassVar[Optional[str]] = "optim"
    lr: Optional[float] = option(None, "learning rate (peak lr with warmuplr)", flag=True)
    betas: Optional[List[float]] = option(None, "adam/adamw betas")
    eps: Optional[float] = option(None, "adam/adamw epsilon")
    weight_decay: Optional[float] = option(None, "L2 (adam, sgd) or decoupled (adamw) weight decay")
    amsgrad: Optional[bool] = option(None, "adam/adamw AMSGrad")
    momentum: Optional[float] = option(None, "sgd momentum")
    dampening: Optional[float] = option(None, "sgd dampening")
    nesterov: Optional[bool] = option(None, "sgd Nesterov momentum")

    def validate(self):
        self._range(["lr"], 0.0, lo_open=True)
        self._range(["eps", "weight_decay", "momentum", "dampening"], 0.0)
        if self.betas is not None and (len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas)):
            raise self._fail("betas", "must be two numbers in [0, 1), e.g. [0.9, 0.98]")


@dataclass(frozen=True)
class SchedulerConf(_ClassArgsSection):
    """``scheduler_conf``: keyword arguments of the scheduler named by ``scheduler``."""

    SECTION: ClassVar[str] = "scheduler_conf"
    CLASS_KEY: ClassVar[Optional[str]] = "scheduler"
    warmup_steps: Union[int, float, None] = option(
        None, "warmuplr: steps to reach the peak lr (WarmupLR default 25000)"
    )

    def validate(self):
        self._range(["warmup_steps"], 0, lo_open=True)
