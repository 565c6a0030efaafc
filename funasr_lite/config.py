"""Strict configuration: YAML/JSON loading, layered merge with provenance, typed option sections.

One precedence for every recipe script (lowest first; later layers win)::

    1. built-in defaults            builtin_defaults()
    2. the model dir's config.yaml  (plus configuration.json ``file_path_metas``: file_path_metas_layer())
    3. decoding.yaml (inference, via decoding_layer()) or finetune.yaml (finetuning)
    4. the recipe script's defaults (the constants at the top of the script, via flags_layer())
    5. command-line flags           (flags_layer(), apply_conf_flag(), parse_overrides())

Each layer is a ``(source, dict)`` pair in the shape of a FunASR 1.x ``config.yaml`` plus our own
``decoding`` section.  :func:`merge_layers` rewrites FunASR 0.x spellings to 1.x (``sanm`` ->
``SANMEncoder``, top-level ``max_epoch`` -> ``train_conf.max_epoch``, ...), checks every key against the
schema (an unknown key is a :class:`ConfigError` naming the key, the file and line, and the closest valid
key), deep-merges (dicts merge recursively; scalars and lists replace) and records which source set each
leaf.  :meth:`ModelConfig.from_dict` turns the result into typed sections.  Keys that FunASR's real
configs contain but funasr-lite does not use are accepted and kept verbatim (``extra``), so nothing is
dropped and :meth:`ModelConfig.to_dict` writes them back in a config.yaml FunASR 1.4.16 can load.

Usage::

    model, decoding = load_model_config(model_dir, {"beam_size": 5})      # inference, plain dicts
    layers = model_dir_layers(model_dir, "finetune")                       # layers 1-3
    layers += [("recipe defaults", flags_layer(DEFAULTS)), ("command line", flags_layer(given_flags))]
    cfg = ModelConfig.from_dict(merge_layers(layers)); cfg.check_trainable(); print(cfg.describe())
    enc = SANMEncoder(input_size=cfg.encoder_input_size(), **cfg.encoder_conf.kwargs_for(SANMEncoder))
"""

import copy
import dataclasses
import difflib
import functools
import inspect
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Union, get_args, get_origin, get_type_hints

import yaml

from funasr_lite.errors import ConfigError
from funasr_lite.fileio import atomic_write_text

Path_ = Tuple[str, ...]


# ----------------------------------------------------------------------------------------------- loading
class YamlDict(dict):
    """A dict loaded from a file; ``lines`` maps a key path (tuple) to its 1-based line, ``path`` the file."""

    def __init__(self, data=(), lines: Optional[Dict[Path_, int]] = None, path: str = ""):
        super().__init__(data)
        self.lines: Dict[Path_, int] = dict(lines or {})
        self.path = path


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8 (byte {raw[e.start]:#04x})") from None


def load_yaml(path: str) -> YamlDict:
    """Load a YAML mapping with ``yaml.safe_load`` semantics; ``{}`` for an empty file.

    Raises ConfigError naming ``file:line`` for a syntax error, a duplicate key (YAML would silently keep
    the last one) or a top level that is not a mapping.
    """
    path = os.fspath(path)
    loader = yaml.SafeLoader(_read_text(path))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        raise ConfigError(f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "")) from None
    finally:
        loader.dispose()
    if data is None:
        return YamlDict(path=path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of keys, got {type(data).__name__}")
    lines: Dict[Path_, int] = {}

    def walk(n, prefix: Path_) -> None:
        if not isinstance(n, yaml.MappingNode):
            return
        seen: Dict[str, int] = {}
        for kn, vn in n.value:
            if not isinstance(kn, yaml.ScalarNode):
                continue
            line = kn.start_mark.line + 1
            if kn.value in seen and kn.value != "<<":
                raise ConfigError(f"{path}:{line}: duplicate key '{'.'.join(prefix + (kn.value,))}' "
                                  f"(first set on line {seen[kn.value]})")
            seen[kn.value] = line
            lines[prefix + (kn.value,)] = line
            walk(vn, prefix + (kn.value,))

    walk(node, ())
    return YamlDict(data, lines, path)


def load_json(path: str) -> dict:
    """Load a JSON object; ``{}`` for an empty file. ConfigError names ``file:line:col`` and the problem."""
    path = os.fspath(path)
    text = _read_text(path)
    if not text.strip():
        return {}

    def no_dupes(pairs):
        out = {}
        for k, v in pairs:
            if k in out:
                raise ConfigError(f"{path}: duplicate key '{k}'")
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=no_dupes)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a JSON object, got {type(data).__name__}")
    return data


def save_yaml(path: str, data: Mapping) -> None:
    """Write ``data`` as block-style UTF-8 YAML, atomically (keys keep their order)."""
    atomic_write_text(path, yaml.safe_dump(_plain(data), allow_unicode=True, sort_keys=False, default_flow_style=False))


def _plain(v):
    """Deep copy into plain dict/list/scalars (tuples become lists) so yaml.safe_dump accepts it."""
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# --------------------------------------------------------------------------------------- error helpers
class _Where:
    """Names where the value at a key path came from: a merge provenance entry, ``file:line``, or the source."""

    def __init__(self, source: str, lines: Optional[Dict[Path_, int]] = None,
                 provenance: Optional[Dict[str, str]] = None):
        self.source, self.lines, self.provenance = source, lines or {}, provenance or {}

    def __call__(self, path: Path_ = ()) -> str:
        for i in range(len(path), 0, -1):
            dotted = ".".join(path[:i])
            if dotted in self.provenance:
                return self.provenance[dotted]
            if path[:i] in self.lines:
                return f"{self.source}:{self.lines[path[:i]]}"
        prefix = ".".join(path) + "."
        for k, v in self.provenance.items():
            if k.startswith(prefix):
                return v
        return self.source


def _suggest(key: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _unknown_key(path: Path_, candidates: Sequence[str], where: _Where, what: str = "") -> ConfigError:
    key, suggestion = path[-1], _suggest(path[-1], candidates)
    msg = f"{where(path)}: unknown key '{'.'.join(map(str, path))}'{what}" + suggestion
    if not suggestion:  # a key of another section, e.g. top-level warmup_steps
        homes = [s for s, c in _SECTIONS.items() if key in c.known_keys() and s != path[0]]
        if homes:
            msg += f"; '{key}' belongs in {' or '.join(homes)}"
    return ConfigError(msg)


def _tname(tp) -> str:
    if tp is Any:
        return "any value"
    if get_origin(tp) is Union:
        return " or ".join(_tname(a) for a in get_args(tp))
    if get_origin(tp) in (list, tuple):
        return f"a list of {_tname(get_args(tp)[0]) if get_args(tp) else 'values'}"
    if get_origin(tp) is dict:
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}.get(tp, str(tp))


def _coerce(value, tp, path: Path_, where: _Where):
    """Check ``value`` against the annotation ``tp``; ints widen to floats, '1e-4' strings parse as floats."""
    bad = ConfigError(f"{where(path)}: {'.'.join(map(str, path))}: expected {_tname(tp)}, got {value!r}")
    origin = get_origin(tp)
    if tp is Any:
        return copy.deepcopy(value)
    if origin is Union:
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise bad
        for a in args:
            if a is not type(None):
                try:
                    return _coerce(value, a, path, where)
                except ConfigError:
                    pass
        raise bad
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        elem = (get_args(tp) or (Any,))[0]
        return [_coerce(v, elem, path + (str(i),), where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        return copy.deepcopy(dict(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise bad


# ----------------------------------------------------------------------------------------- sections
@dataclass
class _Section:
    """Base of a ``*_conf`` section: typed fields (FunASR's constructor kwargs, FunASR's defaults),
    ``KNOWN_UNUSED`` keys accepted and kept verbatim in ``extra``; anything else is a ConfigError."""

    SECTION: ClassVar[str] = ""
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = ()
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)  # known-but-unused keys, kept verbatim
    _given: set = field(default_factory=set, init=False, repr=False, compare=False)  # keys the input set
    _where: Any = field(default=None, init=False, repr=False, compare=False)  # where the values came from

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra" and not f.name.startswith("_")]

    @classmethod
    def known_keys(cls, class_name: Optional[str] = None) -> List[str]:
        """Every key accepted in this section (for ``class_name``, where the section depends on it)."""
        return cls.field_names() + list(cls.KNOWN_UNUSED)

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        return {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(cls) if f.name in cls.field_names()}

    @classmethod
    def from_dict(cls, d: Optional[Mapping], where: Optional[_Where] = None, class_name: Optional[str] = None,
                  prefix: Optional[Path_] = None):
        """Build from a mapping, strictly: wrong types and unknown keys are ConfigErrors naming the source."""
        where = where or _Where("<dict>")
        prefix = prefix if prefix is not None else (cls.SECTION,)
        if d is None:
            d = {}
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where(prefix)}: {'.'.join(prefix)} must be a mapping, got {d!r}")
        hints, names = get_type_hints(cls), cls.field_names()
        allowed = cls.known_keys(class_name)
        kw, extra = {}, {}
        for k, v in d.items():
            if k in names and k in allowed:
                kw[k] = _coerce(v, hints[k], prefix + (k,), where)
            elif k in allowed:
                extra[k] = copy.deepcopy(v)
            else:
                raise _unknown_key(prefix + (k,), allowed, where,
                                   f" (not an argument of {class_name})" if class_name else "")
        obj = cls(extra=extra, **kw)
        obj._given, obj._where = set(kw), (where, prefix)
        obj.validate(where, prefix)
        return obj

    def validate(self, where: _Where, prefix: Path_) -> None:
        """Range checks; subclasses raise ConfigError naming the key and its source."""

    def _fail(self, key: str, problem: str) -> ConfigError:
        where, prefix = self._where or (_Where("<dict>"), (self.SECTION,))
        return ConfigError(f"{where(prefix + (key,))}: {'.'.join(prefix + (key,))}={getattr(self, key)!r}: {problem}")

    def to_dict(self, full: bool = False) -> Dict[str, Any]:
        """Keys the input set or that differ from the default (all fields with ``full``), plus ``extra``."""
        defaults = self.defaults()
        out = {k: _plain(getattr(self, k)) for k in self.field_names()
               if full or k in self._given or getattr(self, k) != defaults[k]}
        out.update(_plain(self.extra))
        return out

    def kwargs(self) -> Dict[str, Any]:
        """All typed fields as constructor kwargs (FunASR's names); ``extra`` is never included."""
        return {k: _plain(getattr(self, k)) for k in self.field_names()}

    def kwargs_for(self, target: Callable, exclude: Sequence[str] = ()) -> Dict[str, Any]:
        """Kwargs for ``target`` (a class or function): the fields it accepts.  A field it does not accept
        is dropped when it holds FunASR's default, and is a ConfigError ("not supported") otherwise."""
        params = inspect.signature(target).parameters
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        defaults, out = self.defaults(), {}
        for k in self.field_names():
            v = getattr(self, k)
            if k in exclude:
                continue
            if var_kw or k in params:
                out[k] = _plain(v)
            elif v != defaults[k]:
                raise self._fail(k, f"not supported by funasr-lite's {getattr(target, '__name__', target)}")
        return out


_TF2TORCH = ("tf2torch_tensor_name_prefix_torch", "tf2torch_tensor_name_prefix_tf")
_LORA = ("lora_list", "lora_rank", "lora_alpha", "lora_dropout")


@dataclass
class FrontendConf(_Section):
    """``frontend_conf`` of WavFrontend (Kaldi fbank + LFR + CMVN). Defaults are WavFrontend's."""

    SECTION: ClassVar[str] = "frontend_conf"
    cmvn_file: Optional[str] = None  # am.mvn path (Kaldi nnet1 text); 0.x had it top-level
    fs: int = 16000  # sample rate the model expects, Hz
    window: str = "hamming"  # fbank window type
    n_mels: int = 80  # mel bins per frame
    frame_length: int = 25  # fbank window, ms
    frame_shift: int = 10  # fbank hop, ms
    filter_length_min: int = -1  # FunASR: drop inputs shorter than this (frames); -1 = off
    filter_length_max: int = -1  # FunASR: drop inputs longer than this (frames); -1 = off
    lfr_m: int = 1  # LFR: frames stacked per output frame (7 for Paraformer)
    lfr_n: int = 1  # LFR: hop in frames (6 for Paraformer)
    dither: float = 1.0  # fbank dither; FunASR's default 1.0 when absent; funasr-lite inference uses 0
    snip_edges: bool = True  # Kaldi snip_edges
    upsacle_samples: bool = True  # (sic, FunASR's spelling) scale [-1,1] audio to int16 range first

    def validate(self, where, prefix):
        for k in ("fs", "n_mels", "frame_length", "frame_shift", "lfr_m", "lfr_n"):
            if getattr(self, k) <= 0:
                raise self._fail(k, "must be > 0")
        if self.dither < 0:
            raise self._fail("dither", "must be >= 0")


@dataclass
class EncoderConf(_Section):
    """``encoder_conf`` of SANMEncoder. Defaults are FunASR 1.4.16's SANMEncoder defaults."""

    SECTION: ClassVar[str] = "encoder_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = _LORA + _TF2TORCH
    output_size: int = 256  # model dimension d (512 in paraformer-large)
    attention_heads: int = 4  # attention heads
    linear_units: int = 2048  # feed-forward hidden units
    num_blocks: int = 6  # encoder blocks (50 in paraformer-large)
    dropout_rate: float = 0.1  # dropout after attention / FFN
    positional_dropout_rate: float = 0.1  # dropout after positional encoding
    attention_dropout_rate: float = 0.0  # dropout on attention weights
    input_layer: Optional[str] = "conv2d"  # input embedding; Paraformer uses "pe" (sinusoidal, no subsampling)
    pos_enc_class: str = "SinusoidalPositionEncoder"  # positional encoding class name
    normalize_before: bool = True  # pre-LayerNorm blocks
    concat_after: bool = False  # concat attention input and output instead of adding
    positionwise_layer_type: str = "linear"  # FFN type: linear, conv1d, conv1d-linear
    positionwise_conv_kernel_size: int = 1  # kernel of a conv1d FFN
    padding_idx: int = -1  # padding index for an "embed" input layer
    interctc_layer_idx: List[int] = field(default_factory=list)  # blocks that emit intermediate CTC
    interctc_use_conditioning: bool = False  # feed intermediate CTC posteriors back
    kernel_size: int = 11  # FSMN memory kernel of SANM attention
    sanm_shfit: int = 0  # (sic) FSMN kernel shift; 0 = centred
    selfattention_layer_type: str = "sanm"  # "sanm" or "selfattn"

    def validate(self, where, prefix):
        for k in ("output_size", "attention_heads", "linear_units", "num_blocks", "kernel_size"):
            if getattr(self, k) <= 0:
                raise self._fail(k, "must be > 0")
        if self.output_size % self.attention_heads:
            raise self._fail("output_size", f"must be divisible by attention_heads={self.attention_heads}")


@dataclass
class DecoderConf(_Section):
    """``decoder_conf`` of ParaformerSANMDecoder (vocab_size and encoder_output_size are passed separately)."""

    SECTION: ClassVar[str] = "decoder_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = _LORA + _TF2TORCH
    attention_heads: int = 4  # attention heads of the source attention
    linear_units: int = 2048  # feed-forward hidden units
    num_blocks: int = 6  # decoder blocks (16 in paraformer-large)
    dropout_rate: float = 0.1  # dropout after attention / FFN
    positional_dropout_rate: float = 0.1  # dropout after positional encoding
    self_attention_dropout_rate: float = 0.0  # dropout in the FSMN self-attention
    src_attention_dropout_rate: float = 0.0  # dropout on source attention weights
    input_layer: str = "embed"  # token embedding type
    use_output_layer: bool = True  # final projection to the vocabulary
    wo_input_layer: bool = False  # build no input layer
    pos_enc_class: str = "PositionalEncoding"  # positional encoding class name
    normalize_before: bool = True  # pre-LayerNorm blocks
    concat_after: bool = False  # concat attention input and output instead of adding
    att_layer_num: int = 6  # blocks with source attention (the rest are FSMN-only)
    kernel_size: int = 21  # FSMN memory kernel (11 in paraformer-large)
    sanm_shfit: int = 0  # (sic) FSMN kernel shift
    chunk_multiply_factor: List[int] = field(default_factory=lambda: [1])  # streaming only

    def validate(self, where, prefix):
        for k in ("attention_heads", "linear_units", "num_blocks", "kernel_size"):
            if getattr(self, k) <= 0:
                raise self._fail(k, "must be > 0")
        if not 0 <= self.att_layer_num <= self.num_blocks:
            raise self._fail("att_layer_num", f"must be in 0..num_blocks={self.num_blocks}")


@dataclass
class PredictorConf(_Section):
    """``predictor_conf`` of CifPredictorV2; idim, l_order and r_order have no default and are required."""

    SECTION: ClassVar[str] = "predictor_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = _TF2TORCH
    idim: Optional[int] = None  # input dim = encoder output_size (required)
    l_order: Optional[int] = None  # left context of the CIF conv (required; 1 in paraformer-large)
    r_order: Optional[int] = None  # right context of the CIF conv (required; 1 in paraformer-large)
    threshold: float = 1.0  # CIF firing threshold
    dropout: float = 0.1  # dropout before the weight projection
    smooth_factor: float = 1.0  # scale of the CIF weights
    noise_threshold: float = 0.0  # weights below this are zeroed
    tail_threshold: float = 0.0  # weight added at the end to fire a last token (0.45 in paraformer-large)
    tail_mask: bool = True  # mask the tail weight by the padding mask

    def validate(self, where, prefix):
        for k in ("idim", "l_order", "r_order"):
            if getattr(self, k) is not None and getattr(self, k) < 0:
                raise self._fail(k, "must be >= 0")
        if self.threshold <= 0:
            raise self._fail("threshold", "must be > 0")


@dataclass
class CTCConf(_Section):
    """``ctc_conf`` of FunASR's CTC head (built only when model_conf.ctc_weight > 0)."""

    SECTION: ClassVar[str] = "ctc_conf"
    dropout_rate: float = 0.0  # dropout before the CTC projection
    ctc_type: str = "builtin"  # loss implementation; only "builtin" (torch CTCLoss)
    reduce: bool = True  # sum the loss over the batch
    ignore_nan_grad: bool = True  # FunASR flag (kept for compatibility)
    extra_linear: bool = True  # have the ctc_lo projection layer


@dataclass
class SpecAugConf(_Section):
    """``specaug_conf`` of SpecAugLFR (training only). Defaults are FunASR's SpecAugLFR defaults."""

    SECTION: ClassVar[str] = "specaug_conf"
    apply_time_warp: bool = True  # time warping (paraformer-large: false)
    time_warp_window: int = 5  # time warp window, frames
    time_warp_mode: str = "bicubic"  # time warp interpolation
    apply_freq_mask: bool = True  # frequency masking
    freq_mask_width_range: Union[int, List[int]] = field(default_factory=lambda: [0, 20])  # mask width range, bins
    num_freq_mask: int = 2  # frequency masks per utterance
    lfr_rate: int = 0  # LFR stacking - 1 (6 for lfr_m=7): one band is masked in every stacked sub-frame
    apply_time_mask: bool = True  # time masking
    time_mask_width_range: Union[int, List[int], None] = None  # mask width range, frames
    time_mask_width_ratio_range: Union[float, List[float], None] = None  # ... or as a ratio of the length
    num_time_mask: int = 2  # time masks per utterance


@dataclass
class ModelConf(_Section):
    """``model_conf`` of Paraformer (the loss and special ids). Defaults are FunASR's Paraformer defaults."""

    SECTION: ClassVar[str] = "model_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = ("interctc_weight", "report_cer", "report_wer", "sym_space",
                                               "sym_blank", "extract_feats_in_collect_stats", "vocab_size")
    ctc_weight: float = 0.5  # CTC loss weight; > 0 builds the CTC head (paraformer-large: 0.0)
    ignore_id: int = -1  # padding id of targets
    blank_id: int = 0  # CTC blank id
    sos: Optional[int] = 1  # start-of-sentence id (null: vocab_size - 1)
    eos: Optional[int] = 2  # end-of-sentence id, appended to targets when predictor_bias=1
    lsm_weight: float = 0.0  # label smoothing of the decoder CE (paraformer-large: 0.1)
    length_normalized_loss: bool = False  # divide the CE by tokens instead of utterances
    predictor_weight: float = 0.0  # weight of the token-count (MAE) loss (paraformer-large: 1.0)
    predictor_bias: int = 0  # 1: count </s> as a target token (paraformer-large: 1)
    sampling_ratio: float = 0.2  # glancing sampler ratio (paraformer-large: 0.75)
    share_embedding: bool = False  # tie decoder embedding and output layer
    use_1st_decoder_loss: bool = False  # add the first-pass decoder loss

    def validate(self, where, prefix):
        for k in ("ctc_weight", "lsm_weight", "sampling_ratio"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise self._fail(k, "must be in [0, 1]")
        if self.predictor_bias not in (0, 1):
            raise self._fail("predictor_bias", "must be 0 or 1")


@dataclass
class TokenizerConf(_Section):
    """``tokenizer_conf`` of CharTokenizer."""

    SECTION: ClassVar[str] = "tokenizer_conf"
    token_list: Union[str, List[str], None] = None  # tokens.json / tokens.txt path, or the list itself
    seg_dict: Optional[str] = None  # seg_dict path (word -> pieces ending in @@)
    seg_dict_file: Optional[str] = None  # same, the name file_path_metas and 0.x use
    unk_symbol: str = "<unk>"  # unknown token
    split_with_space: bool = False  # text is space-separated words (paraformer-large: true)
    space_symbol: str = "<space>"  # token for a space when not splitting on spaces
    non_linguistic_symbols: Union[str, List[str], None] = None  # file or list of symbols like [noise]
    remove_non_linguistic_symbols: bool = False  # drop those symbols from the text


@dataclass
class DecodingConf(_Section):
    """Decoding options (decoding.yaml, recipe defaults, --beam_size/--ctc_weight/--batch_size)."""

    SECTION: ClassVar[str] = "decoding"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = ("ngram_weight", "token_num_relax", "decoding_ind", "decoding_mode",
                                               "lm_file", "lm_train_config", "streaming", "hotword", "dtype")
    beam_size: int = 1  # 1 = greedy; > 1 beam search over the decoder outputs
    penalty: float = 0.0  # insertion bonus per token in beam search
    maxlenratio: float = 0.0  # ESPnet length bound (Paraformer's length comes from CIF; accepted, unused)
    minlenratio: float = 0.0  # ESPnet length bound (accepted, unused)
    ctc_weight: float = 0.0  # weight of CTC prefix scores in beam search (needs a CTC head)
    lm_weight: float = 0.0  # LM weight (no LM support: accepted, unused)
    nbest: int = 1  # hypotheses kept per utterance (the first is written)
    batch_size: int = 1  # utterances per decoding batch
    batch_seconds: Optional[float] = None  # optional bound on the audio seconds per batch

    def validate(self, where, prefix):
        for k in ("beam_size", "nbest", "batch_size"):
            if getattr(self, k) < 1:
                raise self._fail(k, "must be >= 1")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise self._fail("ctc_weight", "must be in [0, 1]")
        if self.batch_seconds is not None and self.batch_seconds <= 0:
            raise self._fail("batch_seconds", "must be > 0")


@dataclass
class TrainConf(_Section):
    """``train_conf``: the training loop. 0.x top-level trainer keys are moved here."""

    SECTION: ClassVar[str] = "train_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = (
        "avg_nbest_model", "avg_keep_nbest_models_type", "validate_interval", "save_checkpoint_interval",
        "early_stopping_patience", "reset_gpu_cache", "use_wandb", "wandb_token", "wandb_project", "wandb_team",
        "wandb_exp_name", "use_deepspeed", "deepspeed_config", "use_fsdp", "effective_save_name_excludes",
        "excludes", "resume", "val_scheduler_criterion", "best_model_criterion", "patience",
        "early_stopping_criterion", "max_update", "nbest_averaging_interval", "train_dtype", "use_amp",
        "use_tensorboard", "detect_anomaly", "grad_noise", "no_forward_run", "num_iters_per_epoch")
    max_epoch: int = 40  # epochs (0.x argparse default)
    accum_grad: int = 1  # gradient accumulation steps
    grad_clip: float = 5.0  # gradient-norm clip threshold (<= 0: off)
    grad_clip_type: float = 2.0  # p of the clipped norm
    keep_nbest_models: Union[int, List[int]] = field(default_factory=lambda: [10])  # n of valid.acc.ave_{n}best.pb
    log_interval: int = 50  # log every N steps
    use_fp16: bool = False  # AMP with float16 (GPU only)
    use_bf16: bool = False  # AMP with bfloat16 (GPU only)
    seed: int = 0  # random seed
    find_unused_parameters: bool = False  # DDP find_unused_parameters (0.x: unused_parameters)
    max_nan_steps: int = 10  # consecutive non-finite-loss steps (each skipped) before the run stops

    def nbest_list(self) -> List[int]:
        """keep_nbest_models as a list (FunASR 1.x writes an int, 0.x a list)."""
        return [self.keep_nbest_models] if isinstance(self.keep_nbest_models, int) else list(self.keep_nbest_models)

    def validate(self, where, prefix):
        for k in ("max_epoch", "accum_grad", "log_interval", "max_nan_steps"):
            if getattr(self, k) < 1:
                raise self._fail(k, "must be >= 1")
        if any(n < 1 for n in self.nbest_list()):
            raise self._fail("keep_nbest_models", "every n must be >= 1")
        if self.use_fp16 and self.use_bf16:
            raise self._fail("use_fp16", "use_fp16 and use_bf16 are exclusive")


@dataclass
class DatasetConf(_Section):
    """``dataset_conf``: data loading and batching. 0.x top-level dataset keys are moved here."""

    SECTION: ClassVar[str] = "dataset_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = (
        "index_ds", "batch_sampler", "batch_type", "batch_size", "max_token_length", "min_token_length",
        "min_source_length", "max_source_length", "min_target_length", "max_target_length", "data_split_num",
        "dataloader", "preprocessor_speech", "preprocessor_speech_conf", "preprocessor_text",
        "preprocessor_text_conf", "batch_size_sample_max", "length_scale_source", "pin_memory",
        "persistent_workers", "prefetch_factor", "rank_split", "drop_last", "int_pad_value", "float_pad_value",
        "sort_in_batch", "sort_batch", "filter_conf", "shuffle_conf", "batch_conf", "data_types", "data_names",
        "speed_perturb", "split_with_space", "seg_dict_file", "bpemodel", "retry")
    dataset_type: str = "small"  # "small" (map-style) or "large" (streamed shards)
    batch_bins: int = 2000  # small: padded LFR frames (60 ms) per batch; large: milliseconds
    num_workers: int = 0  # DataLoader workers (feature extraction runs there)
    shuffle: bool = True  # shuffle batches (small) / samples in a buffer (large)
    buffer_size: int = 500  # large: shuffle buffer, utterances
    sort_size: int = 500  # large: utterances sorted by length before batching
    speech_length_min: int = -1  # drop utterances shorter than this, ms (-1: off)
    speech_length_max: int = -1  # drop utterances longer than this, ms (-1: off)
    token_length_min: int = -1  # drop texts with fewer tokens (-1: off; empty texts always dropped)
    token_length_max: int = -1  # drop texts with more tokens (-1: off)
    max_unk_ratio: float = 0.5  # drop texts whose share of <unk> tokens is above this

    def validate(self, where, prefix):
        if self.dataset_type not in ("small", "large"):
            raise self._fail("dataset_type", "must be 'small' or 'large'")
        if self.batch_bins < 1:
            raise self._fail("batch_bins", "must be >= 1")
        if self.num_workers < 0:
            raise self._fail("num_workers", "must be >= 0")
        if not 0.0 <= self.max_unk_ratio <= 1.0:
            raise self._fail("max_unk_ratio", "must be in [0, 1]")


# Optimizers / schedulers FunASR 1.4.16 registers (funasr/optimizers, funasr/schedulers); names match
# case-insensitively.  funasr-lite trains with SUPPORTED_* only; the others load (inference) but not train.
FUNASR_OPTIMS = ("adam", "fairseq_adam", "adamw", "sgd", "adadelta", "adagrad", "adamax", "asgd", "lbfgs",
                 "rmsprop", "rprop")
SUPPORTED_OPTIMS = ("adam", "adamw", "sgd")
FUNASR_SCHEDULERS = ("reducelronplateau", "lambdalr", "steplr", "multisteplr", "exponentiallr",
                     "cosineannealinglr", "noamlr", "warmuplr", "tri_stage", "cycliclr", "onecyclelr",
                     "cosineannealingwarmrestarts", "custom_lambdalr")
SUPPORTED_SCHEDULERS = ("warmuplr",)
_OWN_ARGS = {  # FunASR's own classes (signatures read from 1.4.16)
    "sgd": ("lr", "momentum", "dampening", "weight_decay", "nesterov"),
    "fairseq_adam": ("lr", "adam_betas", "adam_eps", "weight_decay", "amsgrad"),
    "warmuplr": ("warmup_steps", "last_epoch"), "noamlr": ("model_size", "warmup_steps", "last_epoch"),
    "tri_stage": ("last_epoch", "phase_ratio", "init_lr_scale", "final_lr_scale"),
    "custom_lambdalr": ("warmup_steps", "total_steps", "last_epoch", "verbose"),
}


@functools.lru_cache(maxsize=None)
def _class_args(kind: str, name: Optional[str]) -> Tuple[str, ...]:
    """Constructor argument names of optimizer/scheduler ``name`` (all known ones together for None)."""
    if name is None:
        names = FUNASR_OPTIMS if kind == "optim" else FUNASR_SCHEDULERS
        return tuple(sorted({a for n in names for a in _class_args(kind, n)}))
    if name in _OWN_ARGS:
        return _OWN_ARGS[name]
    import torch  # only for the signature of a torch optimizer / scheduler

    module = torch.optim if kind == "optim" else torch.optim.lr_scheduler
    cls = next(getattr(module, a) for a in dir(module) if a.lower() == name and isinstance(getattr(module, a), type))
    return tuple(p for p in inspect.signature(cls).parameters if p not in ("params", "optimizer"))


@dataclass
class OptimConf(_Section):
    """``optim_conf``: keyword arguments of the optimizer named by ``optim`` (None = its own default)."""

    SECTION: ClassVar[str] = "optim_conf"
    lr: Optional[float] = None  # learning rate (peak lr with warmuplr)
    betas: Optional[List[float]] = None  # adam/adamw betas
    eps: Optional[float] = None  # adam/adamw epsilon
    weight_decay: Optional[float] = None  # L2 (adam, sgd) or decoupled (adamw) weight decay
    amsgrad: Optional[bool] = None  # adam/adamw AMSGrad
    momentum: Optional[float] = None  # sgd momentum
    dampening: Optional[float] = None  # sgd dampening
    nesterov: Optional[bool] = None  # sgd Nesterov momentum

    @classmethod
    def known_keys(cls, class_name=None):
        return list(_class_args("optim", class_name))

    def kwargs(self):
        """The set arguments only (each optimizer has its own defaults)."""
        out = {k: v for k, v in super().kwargs().items() if v is not None}
        out.update(_plain(self.extra))
        return out


@dataclass
class SchedulerConf(_Section):
    """``scheduler_conf``: keyword arguments of the scheduler named by ``scheduler``."""

    SECTION: ClassVar[str] = "scheduler_conf"
    warmup_steps: Union[int, float, None] = None  # warmuplr: steps to reach the peak lr (WarmupLR default 25000)

    @classmethod
    def known_keys(cls, class_name=None):
        return list(_class_args("scheduler", class_name))

    def kwargs(self):
        """The set arguments only."""
        out = {k: v for k, v in super().kwargs().items() if v is not None}
        out.update(_plain(self.extra))
        return out


_SECTIONS: Dict[str, type] = {c.SECTION: c for c in (
    FrontendConf, EncoderConf, DecoderConf, PredictorConf, CTCConf, SpecAugConf, ModelConf, TokenizerConf,
    DecodingConf, TrainConf, DatasetConf, OptimConf, SchedulerConf)}
_CLASS_OF_SECTION = {"frontend_conf": "frontend", "encoder_conf": "encoder", "decoder_conf": "decoder",
                     "predictor_conf": "predictor", "specaug_conf": "specaug", "model_conf": "model",
                     "tokenizer_conf": "tokenizer", "optim_conf": "optim", "scheduler_conf": "scheduler"}

# ------------------------------------------------------------------------------- class names, legacy
# The one supported class per slot; None = the slot may be null.  Legacy 0.x names map to 1.x names.
SUPPORTED_CLASSES: Dict[str, Tuple[Optional[str], ...]] = {
    "model": ("Paraformer",), "encoder": ("SANMEncoder",), "decoder": ("ParaformerSANMDecoder",),
    "predictor": ("CifPredictorV2",), "frontend": ("WavFrontend",), "tokenizer": ("CharTokenizer", None),
    "specaug": ("SpecAugLFR", "SpecAug", None), "normalize": (None,), "preencoder": (None,),
    "postencoder": (None,), "ctc": ("CTC", None)}
LEGACY_CLASS_NAMES: Dict[str, Dict[str, str]] = {
    "model": {"paraformer": "Paraformer", "bicif_paraformer": "BiCifParaformer", "uniasr": "UniASR",
              "contextual_paraformer": "ContextualParaformer", "paraformer_online": "ParaformerStreaming",
              "neatcontextual_paraformer": "NeatContextualParaformer", "paraformer_bert": "ParaformerBert",
              "asr": "Transformer", "mfcca": "MFCCA", "timestamp_prediction": "MonotonicAligner",
              "rnnt": "Transducer", "rnnt_unified": "UnifiedTransducer", "sa_asr": "SAASR"},
    "encoder": {"sanm": "SANMEncoder", "sanm_chunk_opt": "SANMEncoderChunkOpt", "conformer": "ConformerEncoder",
                "transformer": "TransformerEncoder", "rnn": "RNNEncoder", "data2vec_encoder": "Data2VecEncoder",
                "chunk_conformer": "ConformerChunkEncoder", "mfcca_enc": "MFCCAEncoder"},
    "decoder": {"paraformer_decoder_sanm": "ParaformerSANMDecoder", "paraformer_decoder_san": "ParaformerDecoderSAN",
                "contextual_paraformer_decoder": "ContextualParaformerDecoder", "transformer": "TransformerDecoder",
                "fsmn_scama_opt": "FsmnDecoderSCAMAOpt", "rnn": "RNNDecoder"},
    "predictor": {"cif_predictor_v2": "CifPredictorV2", "cif_predictor": "CifPredictor",
                  "cif_predictor_v3": "CifPredictorV3"},
    "frontend": {"wav_frontend": "WavFrontend", "default": "DefaultFrontend",
                 "wav_frontend_online": "WavFrontendOnline"},
    "specaug": {"specaug_lfr": "SpecAugLFR", "specaug": "SpecAug"},
    "normalize": {"global_mvn": "GlobalMVN", "utterance_mvn": "UtteranceMVN"},
    "tokenizer": {"char": "CharTokenizer"}}
# Other classes FunASR 1.4.16 registers (funasr.register.tables): named "not supported", never "did you mean".
FUNASR_CLASSES: Dict[str, Tuple[str, ...]] = {
    "model": ("BAT", "BiCifParaformer", "Branchformer", "CAMPPlus", "CTC", "CTTransformer", "CTTransformerStreaming",
              "Conformer", "ContextualParaformer", "EBranchformer", "EParaformer", "ERes2NetV2", "Emotion2vec",
              "FsmnKWS", "FsmnVADStreaming", "FunASRNano", "LCBNet", "LLMASR", "MonotonicAligner",
              "OpenAIWhisperModel", "ParaformerStreaming", "Paraformer_v2_community", "SANM", "SCAMA",
              "SeacoParaformer", "SenseVoiceSmall", "Transducer", "Transformer", "UniASR"),
    "encoder": ("BranchformerEncoder", "ChunkConformerEncoder", "ConformerEncoder", "EBranchformerEncoder", "FSMN",
                "SANMEncoderChunkOpt", "SANMVadEncoder", "SenseVoiceEncoderSmall", "TransformerEncoder"),
    "decoder": ("ContextualParaformerDecoder", "FsmnDecoder", "FsmnDecoderSCAMAOpt", "ParaformerDecoderSAN",
                "ParaformerSANDecoder", "ParaformerSANMDecoder_v2_community", "TransformerDecoder"),
    "predictor": ("CifPredictor", "CifPredictorV3", "PifPredictor"),
    "frontend": ("WavFrontendOnline", "WhisperFrontend"), "normalize": ("GlobalMVN", "UtteranceMVN"),
    "tokenizer": ("HuggingfaceTokenizer", "SenseVoiceTokenizer", "SentencepiecesTokenizer", "WhisperTokenizer")}
_OPTIONAL_CLASS_KEYS = ("specaug", "normalize", "preencoder", "postencoder", "ctc", "tokenizer", "scheduler")
# 0.x top-level keys that 1.x keeps in a section: old -> (section, new). Moved only where the section does
# not set the key in the same file (then the top-level value is kept as a known-but-unused key).
LEGACY_MOVES: Dict[str, Tuple[str, str]] = {
    **{k: ("train_conf", k) for k in ("max_epoch", "accum_grad", "grad_clip", "grad_clip_type",
                                      "keep_nbest_models", "log_interval")},
    "unused_parameters": ("train_conf", "find_unused_parameters"),
    **{k: ("dataset_conf", k) for k in ("dataset_type", "batch_bins", "num_workers", "speech_length_min",
                                        "speech_length_max")},
    "token_list": ("tokenizer_conf", "token_list"), "split_with_space": ("tokenizer_conf", "split_with_space"),
    "seg_dict_file": ("tokenizer_conf", "seg_dict_file"), "cmvn_file": ("frontend_conf", "cmvn_file")}

# Top-level keys real FunASR configs contain that funasr-lite does not use: accepted and kept verbatim.
TOP_LEVEL_UNUSED: Tuple[str, ...] = tuple(LEGACY_MOVES) + (
    # class slots that must be null (checked), or that we ignore
    "normalize", "normalize_conf", "preencoder", "preencoder_conf", "postencoder", "postencoder_conf", "ctc",
    "dataset", "encoder2", "encoder2_conf", "decoder2", "decoder2_conf", "predictor2", "predictor2_conf",
    "stride_conv", "stride_conv_conf", "rnnt_decoder", "rnnt_decoder_conf", "joint_network",
    "joint_network_conf", "joint_net_conf", "asr_encoder", "asr_encoder_conf", "spk_encoder", "spk_encoder_conf",
    # 0.x ESPnet-style argparse dump (funasr/tasks/abs_task.py, tasks/asr.py)
    "config", "print_config", "log_level", "dry_run", "iterator_type", "output_dir", "ngpu", "seed",
    "num_att_plot", "dist_backend", "dist_init_method", "dist_world_size", "dist_rank", "local_rank",
    "dist_master_addr", "dist_master_port", "dist_launcher", "multiprocessing_distributed", "distributed",
    "sharded_ddp", "cudnn_enabled", "cudnn_benchmark", "cudnn_deterministic", "collect_stats",
    "write_collected_feats", "max_update", "patience", "val_scheduler_criterion", "early_stopping_criterion",
    "best_model_criterion", "nbest_averaging_interval", "grad_noise", "no_forward_run", "resume", "train_dtype",
    "use_amp", "use_tensorboard", "use_wandb", "wandb_project", "wandb_id", "wandb_entity", "wandb_name",
    "wandb_model_log_interval", "detect_anomaly", "pretrain_path", "ignore_init_mismatch", "freeze_param",
    "num_iters_per_epoch", "batch_size", "valid_batch_size", "valid_batch_bins", "train_shape_file",
    "valid_shape_file", "batch_type", "valid_batch_type", "fold_length", "sort_in_batch", "sort_batch",
    "multiple_iterator", "chunk_length", "chunk_shift_ratio", "num_cache_chunks", "train_data_file",
    "valid_data_file", "train_data_path_and_name_and_type", "valid_data_path_and_name_and_type",
    "allow_variable_data_keys", "max_cache_size", "max_cache_fd", "valid_max_cache_size", "use_pai",
    "simple_ddp", "num_worker_count", "access_key_id", "access_key_secret", "endpoint", "bucket_name",
    "oss_bucket", "max_spk_num", "init", "use_preprocessor", "token_type", "bpemodel", "non_linguistic_symbols",
    "cleaner", "g2p", "speech_volume_normalize", "rir_scp", "rir_apply_prob", "noise_scp", "noise_apply_prob",
    "noise_db_range", "feature_transform", "required", "version", "data_dir", "train_set", "dev_set",
    "mate_params",
    # 1.x AutoModel / train.py keyword arguments (dumped into a finetuned dir's config.yaml)
    "model_path", "model_revision", "hub", "device", "ncpu", "disable_update", "disable_pbar", "disable_log",
    "batch_size_s", "batch_size_threshold_s", "train_data_set_list", "valid_data_set_list", "is_training",
    "trust_remote_code", "remote_code", "check_latest", "vad_model", "vad_kwargs", "vad_model_revision",
    "punc_model", "punc_kwargs", "punc_model_revision", "spk_model", "spk_kwargs", "spk_mode", "fp16", "bf16",
    "use_fsdp", "use_deepspeed", "deepspeed_config", "backend", "enable_tf32", "lora_only", "lora_bias", "debug",
    "scope_map", "excludes", "jieba_usr_dict", "data_type", "vocab_size", "token_lists", "seg_dicts")


def _is_null_name(v) -> bool:
    return v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", ""))


def normalize_legacy(d: Mapping) -> dict:
    """Rewrite FunASR 0.x spellings to 1.x, without dropping anything: class names (``sanm`` ->
    ``SANMEncoder``), "none" -> null for optional slots, LEGACY_MOVES, a one-element ``init_param`` list ->
    its string.  Idempotent; a YamlDict keeps its line numbers (moved keys keep their old line)."""
    lines = dict(getattr(d, "lines", {}))
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()}
    for slot, table in LEGACY_CLASS_NAMES.items():
        if isinstance(out.get(slot), str):
            out[slot] = None if slot in _OPTIONAL_CLASS_KEYS and _is_null_name(out[slot]) else table.get(out[slot], out[slot])
    for slot in ("scheduler", "ctc", "preencoder", "postencoder"):
        if slot in out and _is_null_name(out[slot]):
            out[slot] = None
    if isinstance(out.get("optim"), str):
        out["optim"] = out["optim"].lower()
    if isinstance(out.get("scheduler"), str):
        out["scheduler"] = out["scheduler"].lower()
    for old, (section, new) in LEGACY_MOVES.items():
        sec = out.get(section)
        if old in out and (sec is None or isinstance(sec, dict)) and new not in (sec or {}):
            out[section] = dict(sec or {}, **{new: out.pop(old)})
            if (old,) in lines:
                lines[(section, new)] = lines.pop((old,))
    ip = out.get("init_param")
    if isinstance(ip, (list, tuple)) and len(ip) <= 1:
        out["init_param"] = ip[0] if ip else None
    return YamlDict(out, lines, getattr(d, "path", ""))


def _check_class(slot: str, value, where: _Where, training: bool = False) -> None:
    supported = SUPPORTED_CLASSES[slot]
    if training and slot == "specaug":
        supported = ("SpecAugLFR", None)
    if value in supported:
        return
    names = [s for s in supported if s is not None]
    shown = "null" if value is None else repr(value)
    legacy = {v: k for k, v in LEGACY_CLASS_NAMES.get(slot, {}).items()}
    hint = f" ({legacy[value]} in FunASR 0.x)" if value in legacy else ""
    ok = " or ".join([repr(s) for s in names] + (["null"] if None in supported else []))
    raise ConfigError(f"{where((slot,))}: {slot} class {shown}{hint} is not supported by funasr-lite"
                      f"{' for training' if training else ''} (supported: {ok})"
                      + (_suggest(value, names) if isinstance(value, str) and value not in legacy
                         and value not in FUNASR_CLASSES.get(slot, ()) else ""))


def _check_named(kind: str, value, where: _Where, training: bool = False) -> None:
    known = FUNASR_OPTIMS if kind == "optim" else FUNASR_SCHEDULERS
    supported = SUPPORTED_OPTIMS if kind == "optim" else SUPPORTED_SCHEDULERS
    if value is None:
        return
    if not isinstance(value, str) or value not in known:
        raise ConfigError(f"{where((kind,))}: unknown {kind} {value!r}" + _suggest(value, known)
                          + f" (FunASR's: {', '.join(known)})")
    if training and value not in supported:
        raise ConfigError(f"{where((kind,))}: {kind} {value!r} is not supported by funasr-lite for training "
                          f"(supported: {', '.join(supported)}{', none' if kind == 'scheduler' else ''})")


def _top_level_keys() -> List[str]:
    return [f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("extra", "provenance", "_given")]


def validate_layer(layer: Mapping, where: _Where) -> None:
    """Check a (normalised) layer: architecture class names, then every key against the schema.

    A ``*_conf`` whose class the layer names is checked against that class (``optim_conf`` against the
    named optimizer's arguments); otherwise against the supported class.  Sections of a class we do not
    use (e.g. ``specaug_conf`` of SpecAug) get the same field check, being FunASR's same keys."""
    for slot in ("model", "encoder", "decoder", "predictor", "frontend", "normalize", "preencoder", "postencoder", "ctc"):
        if slot in layer:
            _check_class(slot, layer[slot], where)
    top = _top_level_keys()
    for k, v in layer.items():
        if k in _SECTIONS:
            if v is None:
                continue
            if not isinstance(v, Mapping):
                raise ConfigError(f"{where((k,))}: {k} must be a mapping, got {v!r}")
            cls, slot = _SECTIONS[k], _CLASS_OF_SECTION.get(k)
            class_name = layer.get(slot) if slot in ("optim", "scheduler") else None
            if slot in ("optim", "scheduler") and class_name is not None:
                _check_named(slot, class_name, where)
            allowed = cls.known_keys(class_name)
            for sk in v:
                if sk not in allowed:
                    raise _unknown_key((k, sk), allowed, where,
                                       f" (not an argument of {class_name})" if class_name else "")
        elif k not in top and k not in TOP_LEVEL_UNUSED:
            raise _unknown_key((k,), top + list(TOP_LEVEL_UNUSED), where)


# ------------------------------------------------------------------------------------------- merging
class MergedConfig(dict):
    """The merged layers; ``provenance`` maps each dotted leaf path to the source (``file:line``) that set it."""

    def __init__(self, data=(), provenance: Optional[Dict[str, str]] = None):
        super().__init__(data)
        self.provenance: Dict[str, str] = dict(provenance or {})


def _merge_into(dst: dict, src: Mapping, prov: Dict[str, str], where: _Where, prefix: Path_) -> None:
    for k, v in src.items():
        p = prefix + (k,)
        dotted = ".".join(map(str, p))
        if isinstance(v, Mapping):
            if not isinstance(dst.get(k), dict):
                for stale in [s for s in prov if s == dotted or s.startswith(dotted + ".")]:
                    del prov[stale]
                dst[k] = {}
            if not v:
                prov.setdefault(dotted, where(p))
            _merge_into(dst[k], v, prov, where, p)
        else:
            for stale in [s for s in prov if s.startswith(dotted + ".")]:
                del prov[stale]
            dst[k] = copy.deepcopy(v)
            prov[dotted] = where(p)


def merge_strict(base: Mapping, override: Mapping, *, source: str) -> MergedConfig:
    """``base`` with ``override`` (named ``source``) normalised, validated and deep-merged on top."""
    layer = normalize_legacy(override)
    where = _Where(source, lines=layer.lines)
    validate_layer(layer, where)
    out = MergedConfig(copy.deepcopy(dict(base)), getattr(base, "provenance", None))
    _merge_into(out, layer, out.provenance, where, ())
    return out


def merge_layers(layers: Sequence[Tuple[str, Mapping]]) -> MergedConfig:
    """Merge ``(source, dict)`` layers, lowest precedence first (see the module docstring for the order).

    Every layer is normalised (FunASR 0.x -> 1.x) and validated on its own, so an unknown key is reported
    with the file (and line) it is in and the closest valid key.  Dicts merge recursively, anything else
    replaces; ``result.provenance`` records which source set each leaf."""
    out = MergedConfig()
    for source, layer in layers:
        out = merge_strict(out, layer, source=source)
    return out


def builtin_defaults() -> Dict[str, Any]:
    """The lowest layer: funasr-lite's decoding, training and data-loading defaults (not the architecture)."""
    return {"decoding": DecodingConf().to_dict(full=True), "train_conf": TrainConf().to_dict(full=True),
            "dataset_conf": DatasetConf().to_dict(full=True)}


def decoding_layer(d: Mapping) -> YamlDict:
    """Lift a flat decoding.yaml (beam_size, penalty, ..., optionally frontend_conf) into the config tree:
    config.yaml keys stay at the top, everything else goes under ``decoding`` (so typos are caught there)."""
    top, lines, out = _top_level_keys(), getattr(d, "lines", {}), YamlDict(path=getattr(d, "path", ""))
    dec_keys = DecodingConf.known_keys()
    for k, v in d.items():
        if k not in dec_keys and (k in top or k in TOP_LEVEL_UNUSED):
            out[k] = v
        else:
            out.setdefault("decoding", {})[k] = v
    for p, line in lines.items():
        lifted = p if (p[0] in out and p[0] != "decoding") else ("decoding",) + p
        out.lines[lifted] = line
    return out


def file_path_metas_layer(model_dir: str, metas: Mapping) -> Tuple[Dict[str, Any], Optional[str]]:
    """configuration.json ``file_path_metas`` as a layer of absolute paths (those that exist), plus the
    config file it names.  E.g. ``{init_param: model.pt, tokenizer_conf: {token_list: tokens.json}}``."""

    def walk(m: Mapping) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for k, v in m.items():
            if isinstance(v, str):
                p = os.path.join(model_dir, v)
                if os.path.exists(p):
                    out[k] = p
            elif isinstance(v, Mapping):
                sub = walk(v)
                if sub:
                    out[k] = sub
            elif isinstance(v, (list, tuple)):
                found = [os.path.join(model_dir, x) for x in v if isinstance(x, str) and os.path.exists(os.path.join(model_dir, x))]
                if found:
                    out[k] = found
        return out

    layer = walk(metas)
    return layer, layer.pop("config", None)


# ------------------------------------------------------------------------------- command-line helpers
# Recipe flag -> dotted config path (used for both the script's defaults and its parsed flags).
FLAG_PATHS: Dict[str, str] = {
    "beam_size": "decoding.beam_size", "ctc_weight": "decoding.ctc_weight", "batch_size": "decoding.batch_size",
    "batch_seconds": "decoding.batch_seconds", "max_epoch": "train_conf.max_epoch",
    "accum_grad": "train_conf.accum_grad", "keep_nbest_models": "train_conf.keep_nbest_models",
    "seed": "train_conf.seed", "optim": "optim", "lr": "optim_conf.lr", "scheduler": "scheduler",
    "scheduler_conf": "scheduler_conf", "specaug": "specaug", "specaug_conf": "specaug_conf",
    "batch_bins": "dataset_conf.batch_bins", "dataset_type": "dataset_conf.dataset_type",
    "num_workers": "dataset_conf.num_workers"}


def set_path(d: dict, dotted: str, value) -> dict:
    """``d[a][b] = value`` for ``dotted='a.b'``, creating dicts on the way; returns ``d``."""
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value
    return d


def parse_conf_text(text: str, flag: str) -> dict:
    """Parse a ``--*_conf`` value: YAML or JSON text of a mapping (``'{"warmup_steps": 300}'``)."""
    try:
        v = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as e:
        raise ConfigError(f"{flag}: not valid YAML/JSON: {getattr(e, 'problem', None) or e}: {text!r}") from None
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"{flag}: expected a mapping like '{{\"key\": value}}', got {text!r}")
    return dict(v)


def apply_conf_flag(layer: dict, section: str, text: str, flag: Optional[str] = None,
                    class_name: Optional[str] = None) -> dict:
    """Parse ``text`` for ``section`` (e.g. scheduler_conf), check its keys strictly (the error names the
    flag and the closest valid key) and merge it into ``layer[section]``; returns ``layer``."""
    flag = flag or f"--{section}"
    conf = parse_conf_text(text, flag)
    allowed = _SECTIONS[section].known_keys(class_name)
    for k in conf:
        if k not in allowed:
            raise _unknown_key((section, k), allowed, _Where(flag))
    layer.setdefault(section, {}).update(conf)
    return layer


def flags_layer(values: Mapping[str, Any], paths: Mapping[str, str] = FLAG_PATHS) -> Dict[str, Any]:
    """A layer from recipe flags/defaults ``{flag: value}``; None means "not given" and is skipped.
    ``*_conf`` values may be YAML/JSON text; "none" for specaug/scheduler means null."""
    layer: Dict[str, Any] = {}
    for name, v in values.items():
        if v is None:
            continue
        if name not in paths:
            raise ConfigError(f"--{name}: no config key for this flag (known: {', '.join(sorted(paths))})")
        path = paths[name]
        if path.endswith("_conf") and "." not in path:
            slot = _CLASS_OF_SECTION.get(path)
            cn = values.get(slot) if slot in ("optim", "scheduler") else None
            apply_conf_flag(layer, path, v, f"--{name}", None if _is_null_name(cn) else cn.lower())
        else:
            set_path(layer, path, None if path in ("specaug", "scheduler") and _is_null_name(v) else v)
    return layer


def parse_overrides(items: Sequence[str], source: str = "command line") -> YamlDict:
    """Hydra-style overrides ``++train_conf.max_epoch=5`` (also ``+key=v`` / ``key=v``); values are YAML."""
    out = YamlDict(path=source)
    for item in items:
        key, sep, text = item.lstrip("+").partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: override {item!r} must look like ++section.key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}: override {item!r}: value is not valid YAML: {getattr(e, 'problem', e)}") from None
        set_path(out, key.strip(), value)
    return out


# ------------------------------------------------------------------------------------ the whole config
@dataclass
class ModelConfig:
    """A whole config.yaml (FunASR 1.x class names) plus our ``decoding`` section, validated strictly."""

    model: str = "Paraformer"  # model class
    model_conf: ModelConf = field(default_factory=ModelConf)  # Paraformer loss and ids
    encoder: str = "SANMEncoder"  # encoder class (0.x: sanm)
    encoder_conf: EncoderConf = field(default_factory=EncoderConf)  # SANMEncoder kwargs
    decoder: str = "ParaformerSANMDecoder"  # decoder class (0.x: paraformer_decoder_sanm)
    decoder_conf: DecoderConf = field(default_factory=DecoderConf)  # ParaformerSANMDecoder kwargs
    predictor: str = "CifPredictorV2"  # predictor class (0.x: cif_predictor_v2)
    predictor_conf: PredictorConf = field(default_factory=PredictorConf)  # CifPredictorV2 kwargs
    frontend: str = "WavFrontend"  # frontend class (0.x: wav_frontend)
    frontend_conf: FrontendConf = field(default_factory=FrontendConf)  # WavFrontend kwargs
    specaug: Optional[str] = None  # SpecAugLFR (0.x: specaug_lfr) or null; training only
    specaug_conf: SpecAugConf = field(default_factory=SpecAugConf)  # SpecAugLFR kwargs
    tokenizer: Optional[str] = "CharTokenizer"  # tokenizer class (0.x configs have none: char tokens)
    tokenizer_conf: TokenizerConf = field(default_factory=TokenizerConf)  # CharTokenizer kwargs
    ctc_conf: CTCConf = field(default_factory=CTCConf)  # CTC head kwargs
    input_size: Optional[int] = None  # feature dim (FunASR recomputes it from the frontend: n_mels*lfr_m)
    init_param: Optional[Union[str, List[str]]] = None  # checkpoint to initialise from
    optim: Optional[str] = None  # optimizer name (training)
    optim_conf: OptimConf = field(default_factory=OptimConf)  # optimizer kwargs
    scheduler: Optional[str] = None  # lr scheduler name or null (training)
    scheduler_conf: SchedulerConf = field(default_factory=SchedulerConf)  # scheduler kwargs
    dataset_conf: DatasetConf = field(default_factory=DatasetConf)  # data loading and batching
    train_conf: TrainConf = field(default_factory=TrainConf)  # training loop
    decoding: DecodingConf = field(default_factory=DecodingConf)  # decoding (funasr-lite; not in config.yaml)
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)  # known-but-unused top-level keys, verbatim
    provenance: Dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # leaf -> source
    _given: set = field(default_factory=set, init=False, repr=False, compare=False)  # top-level keys the input set

    _REQUIRED: ClassVar[Tuple[str, ...]] = ("model", "encoder", "decoder", "predictor", "frontend")

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "<dict>") -> "ModelConfig":
        """Validate a config.yaml dict (1.x or 0.x) or a MergedConfig strictly and build the typed config.

        Unsupported classes (SeacoParaformer, BiCifParaformer, UniASR, ...) and unknown keys are
        ConfigErrors naming the source; so are missing required keys and inconsistent sizes."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: a config must be a mapping, got {type(d).__name__}")
        where = _Where(getattr(d, "path", "") or source, getattr(d, "lines", None), getattr(d, "provenance", None))
        d = normalize_legacy(d)
        where.lines = d.lines
        validate_layer(d, where)
        for k in cls._REQUIRED:
            if d.get(k) is None:
                raise ConfigError(f"{where()}: missing required key '{k}' (e.g. {k}: {SUPPORTED_CLASSES[k][0]})")
        _check_class("specaug", d.get("specaug"), where)
        _check_class("tokenizer", d.get("tokenizer"), where)
        if "optim" in d:
            _check_named("optim", d["optim"], where)
        if "scheduler" in d:
            _check_named("scheduler", d["scheduler"], where)
        top = {f.name: f for f in dataclasses.fields(cls)}
        hints, kw = get_type_hints(cls), {}
        for k, v in d.items():
            if k in _SECTIONS:
                slot = _CLASS_OF_SECTION.get(k)
                kw[k] = _SECTIONS[k].from_dict(v, where, d.get(slot) if slot in ("optim", "scheduler") else None, (k,))
            elif k in top and k != "extra":
                kw[k] = _coerce(v, hints[k], (k,), where)
        if kw.get("tokenizer") is None:
            kw["tokenizer"] = "CharTokenizer"  # funasr-lite always tokenizes characters (0.x: token_type char)
        cfg = cls(extra={k: copy.deepcopy(v) for k, v in d.items() if k in TOP_LEVEL_UNUSED}, **kw)
        cfg._given = set(kw)
        cfg.provenance = dict(getattr(d, "provenance", {}) or where.provenance)
        cfg._check(where)
        return cfg

    def _check(self, where: _Where) -> None:
        p = self.predictor_conf
        for k in ("idim", "l_order", "r_order"):
            if getattr(p, k) is None:
                raise ConfigError(f"{where(('predictor_conf',))}: predictor_conf.{k} is required (CifPredictorV2 has no default)")
        if p.idim != self.encoder_conf.output_size:
            raise ConfigError(f"{where(('predictor_conf', 'idim'))}: predictor_conf.idim={p.idim} must equal "
                              f"encoder_conf.output_size={self.encoder_conf.output_size}")
        if self.decoding.ctc_weight > 0 and self.model_conf.ctc_weight <= 0:
            raise ConfigError(f"{where(('decoding', 'ctc_weight'))}: decoding ctc_weight={self.decoding.ctc_weight} "
                              "needs a CTC head, but this model has none (model_conf.ctc_weight is 0)")

    def check_trainable(self) -> None:
        """Raise ConfigError unless funasr-lite can train with this optimizer, scheduler and specaug."""
        where = _Where("<config>", provenance=self.provenance)
        if self.optim is None:
            raise ConfigError("no optimizer: set optim (adam, adamw or sgd) and optim_conf.lr")
        _check_named("optim", self.optim, where, training=True)
        _check_named("scheduler", self.scheduler, where, training=True)
        _check_class("specaug", self.specaug, where, training=True)
        if self.optim_conf.lr is None:
            raise ConfigError(f"{where(('optim',))}: optim_conf.lr is not set")
        wrong = [k for k in self.optim_conf.kwargs() if k not in _class_args("optim", self.optim)]
        if wrong:
            raise ConfigError(f"{where(('optim_conf', wrong[0]))}: optim_conf.{wrong[0]} is not an argument of {self.optim}")

    def encoder_input_size(self) -> int:
        """Feature dim entering the encoder: frontend n_mels * lfr_m (560 for paraformer-large)."""
        return self.frontend_conf.n_mels * self.frontend_conf.lfr_m

    def cmvn_file(self) -> Optional[str]:
        """The am.mvn path from frontend_conf (0.x top-level cmvn_file is moved there)."""
        return self.frontend_conf.cmvn_file

    def token_list(self) -> Union[str, List[str], None]:
        """tokenizer_conf.token_list: a tokens.json/tokens.txt path or the list (0.x top-level moved there)."""
        return self.tokenizer_conf.token_list

    def seg_dict(self) -> Optional[str]:
        """The seg_dict path (tokenizer_conf.seg_dict, else seg_dict_file), or None."""
        return self.tokenizer_conf.seg_dict or self.tokenizer_conf.seg_dict_file

    def to_dict(self, full: bool = False, include_decoding: bool = False) -> Dict[str, Any]:
        """A config.yaml dict FunASR 1.4.16's AutoModel loads: class keys always, each section's set keys
        (every field with ``full``), ``extra`` verbatim.  ``decoding`` only with include_decoding."""
        out: Dict[str, Any] = {}
        always = ("model", "model_conf", "encoder", "encoder_conf", "decoder", "decoder_conf", "predictor",
                  "predictor_conf", "frontend", "frontend_conf", "specaug", "tokenizer", "tokenizer_conf")
        for f in dataclasses.fields(self):
            name, value = f.name, getattr(self, f.name)
            if name in ("extra", "provenance", "_given") or (name == "decoding" and not include_decoding):
                continue
            if isinstance(value, _Section):
                d = value.to_dict(full)
                if d or name in always or name in self._given:
                    out[name] = d
            elif name in always or name in self._given or value is not None:
                out[name] = _plain(value)
        for k, v in self.extra.items():
            out.setdefault(k, _plain(v))
        return out

    def model_dict(self) -> Dict[str, Any]:
        """The network/frontend/tokenizer part of ``to_dict()`` (what building the model needs), plus a
        top-level ``token_list`` when tokenizer_conf holds the list itself (0.x configs)."""
        full = self.to_dict()
        out = {k: full[k] for k in _MODEL_KEYS if k in full}
        if isinstance(self.tokenizer_conf.token_list, list):
            out["token_list"] = list(self.tokenizer_conf.token_list)
        return out

    def save(self, path: str) -> None:
        """Write ``to_dict()`` as config.yaml, atomically."""
        save_yaml(path, self.to_dict())

    def describe(self) -> str:
        """The final config, one leaf per line, each with the source that set it (or "default")."""
        return format_provenance(self.to_dict(full=True, include_decoding=True), self.provenance)


_MODEL_KEYS = ("model", "model_conf", "encoder", "encoder_conf", "decoder", "decoder_conf", "predictor",
               "predictor_conf", "frontend", "frontend_conf", "specaug", "specaug_conf", "ctc_conf", "tokenizer",
               "tokenizer_conf", "input_size")


def model_dir_layers(model_dir, purpose: str = "infer",
                     decoding_overrides: Optional[Mapping] = None) -> List[Tuple[str, Mapping]]:
    """Layers 1-3 for a model dir: built-in defaults, config.yaml, the files the dir has (configuration.json
    ``file_path_metas``, else am.mvn / tokens / seg_dict found by name, as FunASR injects them), then
    decoding.yaml (``purpose="infer"``, plus flat ``decoding_overrides``) or finetune.yaml
    (``purpose="finetune"``).  Append the recipe defaults and command-line layers, then merge_layers().

    ``model_dir`` is a funasr_lite.model_dir.ModelDir (root, config, cmvn, tokens, seg_dict, decoding_yaml,
    finetune_yaml, configuration) or a directory path (files found by their standard names)."""
    if purpose not in ("infer", "finetune"):
        raise ValueError(f"purpose must be 'infer' or 'finetune', got {purpose!r}")
    root = os.fspath(getattr(model_dir, "root", model_dir))

    def find(attr: str, *names: str) -> Optional[str]:
        if hasattr(model_dir, attr):
            return getattr(model_dir, attr)
        return next((os.path.join(root, n) for n in names if os.path.isfile(os.path.join(root, n))), None)

    cfg_path = find("config", "config.yaml") or os.path.join(root, "config.yaml")
    layers: List[Tuple[str, Mapping]] = [("built-in defaults", builtin_defaults()), (cfg_path, load_yaml(cfg_path))]
    configuration = getattr(model_dir, "configuration", None)
    if configuration is None and os.path.isfile(os.path.join(root, "configuration.json")):
        configuration = load_json(os.path.join(root, "configuration.json"))
    metas = (configuration or {}).get("file_path_metas")
    if isinstance(metas, Mapping):
        layers.append((os.path.join(root, "configuration.json"), file_path_metas_layer(root, metas)[0]))
    else:
        found: Dict[str, Any] = {}
        for attr, names, path in (("cmvn", ("am.mvn",), "frontend_conf.cmvn_file"),
                                  ("tokens", ("tokens.json", "tokens.txt"), "tokenizer_conf.token_list"),
                                  ("seg_dict", ("seg_dict",), "tokenizer_conf.seg_dict_file")):
            f = find(attr, *names)
            if f:
                set_path(found, path, f)
        if found:
            layers.append((f"files in {root}", found))
    extra = find("decoding_yaml", "decoding.yaml") if purpose == "infer" else find("finetune_yaml", "finetune.yaml")
    if extra:
        layers.append((extra, decoding_layer(load_yaml(extra)) if purpose == "infer" else load_yaml(extra)))
    if decoding_overrides:
        layers.append(("decoding overrides", decoding_layer(dict(decoding_overrides))))
    return layers


def load_model_config(model_dir, decoding_overrides: Optional[Mapping] = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Inference entry point: (model dict, decoding dict) for a model dir, strictly validated.

    The model dict holds only the network/frontend/tokenizer keys of config.yaml in 1.x names, plus
    ``token_list`` when the config carries the list itself; the decoding dict is every DecodingConf field
    after built-in defaults < decoding.yaml < ``decoding_overrides`` (flat decoding.yaml-style keys)."""
    cfg = ModelConfig.from_dict(merge_layers(model_dir_layers(model_dir, "infer", decoding_overrides)))
    return cfg.model_dict(), cfg.decoding.to_dict(full=True)


def format_provenance(d: Mapping, provenance: Mapping[str, str], default: str = "default") -> str:
    """Render ``d`` as YAML-like lines ``key: value  # source``; long lists are shown by their length."""
    lines: List[str] = []

    def walk(m: Mapping, prefix: Path_, indent: str) -> None:
        for k, v in m.items():
            p = prefix + (str(k),)
            if isinstance(v, Mapping) and v:
                lines.append(f"{indent}{k}:")
                walk(v, p, indent + "  ")
                continue
            shown = f"[{len(v)} items]" if isinstance(v, (list, tuple)) and len(v) > 8 else \
                yaml.safe_dump(_plain(v), default_flow_style=True, allow_unicode=True).replace("\n...", "").strip()
            lines.append(f"{indent}{k}: {shown}  # {provenance.get('.'.join(p), default)}")

    walk(d, (), "")
    return "\n".join(lines)
