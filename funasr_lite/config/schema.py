"""The whole-config schema: which classes funasr-lite supports, FunASR 0.x -> 1.x normalisation, checking a
layer's keys, and :class:`ModelConfig`, a whole config.yaml (class names + typed ``*_conf`` sections +
funasr-lite's ``decoding``) validated strictly.

Keys that FunASR's real configs contain but funasr-lite does not use are accepted and kept verbatim
(``extra``), so nothing is dropped and :meth:`ModelConfig.to_dict` writes them back in a config.yaml FunASR
1.4.16 can load.  Layering the config files is :mod:`funasr_lite.config.merge`'s job.
"""

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Union, get_type_hints

from funasr_lite.config.fields import Section, Where, coerce, option, suggest
from funasr_lite.config.sections import (
    FUNASR_CLASSES,
    FUNASR_NAMES,
    SUPPORTED_CLASSES,
    CTCConf,
    DecoderConf,
    EncoderConf,
    FrontendConf,
    ModelConf,
    OptimConf,
    PredictorConf,
    SchedulerConf,
    SeacoDecoderConf,
    SpecAugConf,
    TokenizerConf,
)
from funasr_lite.config.yaml_io import KeyPath, YamlDict, format_provenance, plain
from funasr_lite.data.options import DatasetConf
from funasr_lite.decode.options import DecodingOptions
from funasr_lite.errors import ConfigError
from funasr_lite.models.registry import OPTIONAL_SLOTS, REGISTRY, legacy_names, required_predictor
from funasr_lite.models.registry import supported as registry_supported
from funasr_lite.train.options import TrainConf

# config.yaml keys naming a class: the registered slots, then those that must be null
_CLASS_SLOTS = tuple(dict.fromkeys([r.slot for r in REGISTRY] + list(OPTIONAL_SLOTS)))


def _legacy_table(slot: str) -> Dict[str, str]:
    """0.x name -> 1.x name in ``slot``, for the classes we implement and those we only name."""
    other = FUNASR_NAMES["unsupported_classes"].get(slot, {})
    return {**{old: new for new, olds in other.items() for old in olds or ()}, **legacy_names(slot)}


# 0.x top-level keys that 1.x keeps in a section: old -> (section, new). Moved only where the section does
# not set the key in the same file (then the top-level value is kept as a known-but-unused key).
LEGACY_MOVES: Dict[str, Tuple[str, str]] = {
    **{
        k: ("train_conf", k)
        for k in ("max_epoch", "accum_grad", "grad_clip", "grad_clip_type", "keep_nbest_models", "log_interval")
    },
    "unused_parameters": ("train_conf", "find_unused_parameters"),
    **{
        k: ("dataset_conf", k)
        for k in ("dataset_type", "batch_bins", "num_workers", "speech_length_min", "speech_length_max")
    },
    **{k: ("tokenizer_conf", k) for k in ("token_list", "split_with_space", "seg_dict_file")},
    "cmvn_file": ("frontend_conf", "cmvn_file"),
}

# Top-level keys real FunASR configs contain that funasr-lite does not use: accepted and kept verbatim.
TOP_LEVEL_UNUSED: Tuple[str, ...] = tuple(LEGACY_MOVES) + tuple(FUNASR_NAMES["top_level_unused"])


def is_null_name(v) -> bool:
    """True for None and the strings "none" / "null" / "" (0.x configs and flags spell a null class so)."""
    return v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", ""))


def normalize_legacy(d: Mapping) -> YamlDict:
    """Rewrite FunASR 0.x spellings to 1.x, without dropping anything: class names (``sanm`` ->
    ``SANMEncoder``), "none" -> null for optional slots, LEGACY_MOVES, a one-element ``init_param`` list ->
    its string.  Idempotent; a YamlDict keeps its line numbers (moved keys keep their old line)."""
    lines = dict(getattr(d, "lines", {}))
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()}
    for slot in OPTIONAL_SLOTS + ("scheduler",):
        if slot in out and is_null_name(out[slot]):
            out[slot] = None
    for slot in _CLASS_SLOTS:
        if isinstance(out.get(slot), str):
            out[slot] = _legacy_table(slot).get(out[slot], out[slot])
    for slot in ("optim", "scheduler"):
        if isinstance(out.get(slot), str):
            out[slot] = out[slot].lower()
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


def _check_class(slot: str, value, where: Where, training: bool = False) -> None:
    supported = registry_supported(slot, training)
    if value in supported:
        return
    names = [s for s in supported if s is not None]
    legacy = {v: k for k, v in _legacy_table(slot).items()}
    hint = f" ({legacy[value]} in FunASR 0.x)" if value in legacy else ""
    ok = " or ".join([repr(s) for s in names] + (["null"] if None in supported else []))
    other = FUNASR_NAMES["unsupported_classes"].get(slot, {})
    typo = isinstance(value, str) and value not in legacy and value not in other  # no FunASR class name
    raise ConfigError(
        f"{where((slot,))}: {slot} class {'null' if value is None else repr(value)}{hint} is not supported by "
        f"funasr-lite{' for training' if training else ''} (supported: {ok})" + (suggest(value, names) if typo else "")
    )


def _check_named(kind: str, value, where: Where, training: bool = False) -> None:
    """Check an optimizer (``kind="optim"``) or scheduler name; None passes."""
    known, supported = FUNASR_CLASSES[kind], SUPPORTED_CLASSES[kind]
    if value is None:
        return
    if not isinstance(value, str) or value not in known:
        raise ConfigError(
            f"{where((kind,))}: unknown {kind} {value!r}" + suggest(value, known) + f" (FunASR's: {', '.join(known)})"
        )
    if training and value not in supported:
        raise ConfigError(
            f"{where((kind,))}: {kind} {value!r} is not supported by funasr-lite for training "
            f"(supported: {', '.join(supported)}{', none' if kind == 'scheduler' else ''})"
        )


# ------------------------------------------------------------------------------------ the whole config
@dataclass(frozen=True)
class ModelConfig:
    """A whole config.yaml (FunASR 1.x class names) plus our ``decoding`` section, validated strictly."""

    model: str = "Paraformer"  # model class
    model_conf: ModelConf = field(default_factory=ModelConf)  # Paraformer loss and ids
    encoder: str = "SANMEncoder"  # encoder class (0.x: sanm)
    encoder_conf: EncoderConf = field(default_factory=EncoderConf)  # SANMEncoder kwargs
    decoder: str = "ParaformerSANMDecoder"  # decoder class (0.x: paraformer_decoder_sanm)
    decoder_conf: DecoderConf = field(default_factory=DecoderConf)  # ParaformerSANMDecoder kwargs
    seaco_decoder: Optional[str] = None  # SeacoParaformer's hotword decoder class (ParaformerSANMDecoder)
    seaco_decoder_conf: SeacoDecoderConf = field(default_factory=SeacoDecoderConf)  # its kwargs
    predictor: str = "CifPredictorV2"  # predictor class (0.x: cif_predictor_v2)
    predictor_conf: PredictorConf = field(default_factory=PredictorConf)  # CifPredictorV2 kwargs
    frontend: str = "WavFrontend"  # frontend class (0.x: wav_frontend)
    frontend_conf: FrontendConf = field(default_factory=FrontendConf)  # WavFrontend kwargs
    specaug: Optional[str] = option(
        None, "SpecAugLFR (0.x: specaug_lfr) or null; training only", flag=True, choices=("specaug_lfr", "none")
    )
    specaug_conf: SpecAugConf = option(factory=SpecAugConf, flag=True, help="SpecAugLFR arguments as YAML/JSON")
    tokenizer: Optional[str] = "CharTokenizer"  # tokenizer class (0.x configs have none: char tokens)
    tokenizer_conf: TokenizerConf = field(default_factory=TokenizerConf)  # CharTokenizer kwargs
    ctc_conf: CTCConf = field(default_factory=CTCConf)  # CTC head kwargs
    input_size: Optional[int] = None  # feature dim (FunASR recomputes it from the frontend: n_mels*lfr_m)
    init_param: Optional[Union[str, List[str]]] = None  # checkpoint to initialise from
    optim: Optional[str] = option(None, "optimizer", flag=True, choices=("adam", "adamw", "sgd"))
    optim_conf: OptimConf = field(default_factory=OptimConf)  # optimizer kwargs
    scheduler: Optional[str] = option(
        None, "lr schedule: warmuplr (FunASR's formula) or none", flag=True, choices=("warmuplr", "none")
    )
    scheduler_conf: SchedulerConf = option(
        factory=SchedulerConf, flag=True, help="scheduler arguments as YAML/JSON, e.g. '{warmup_steps: 300}'"
    )
    dataset_conf: DatasetConf = field(default_factory=DatasetConf)  # data loading and batching
    train_conf: TrainConf = field(default_factory=TrainConf)  # training loop
    decoding: DecodingOptions = field(default_factory=DecodingOptions)  # decoding (funasr-lite; not in config.yaml)
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)  # known-but-unused top-level keys, verbatim
    provenance: Dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # leaf -> source
    _given: frozenset = field(default=frozenset(), repr=False, compare=False)  # top-level keys the input set

    _REQUIRED: ClassVar[Tuple[str, ...]] = ("model", "encoder", "decoder", "predictor", "frontend")

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "<dict>") -> "ModelConfig":
        """Validate a config.yaml dict (1.x or 0.x) or a MergedConfig strictly and build the typed config.

        Unsupported classes (SeacoParaformer, UniASR, ...) and unknown keys are
        ConfigErrors naming the source; so are missing required keys and inconsistent sizes."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: a config must be a mapping, got {type(d).__name__}")
        n = normalize_legacy(d)
        where = Where(n.path or source, n.lines, getattr(d, "provenance", {}))
        validate_layer(n, where)
        for k in cls._REQUIRED:
            if n.get(k) is None:
                raise ConfigError(f"{where()}: missing required key '{k}' (e.g. {k}: {registry_supported(k)[0]})")
        _check_class("specaug", n.get("specaug"), where)
        _check_class("tokenizer", n.get("tokenizer"), where)
        _check_named("optim", n.get("optim"), where)
        _check_named("scheduler", n.get("scheduler"), where)
        hints, kw = get_type_hints(cls), {}
        for k, v in n.items():
            if k in SECTIONS:
                kw[k] = SECTIONS[k].from_dict(v, where)
            elif k in TOP_LEVEL_KEYS:
                kw[k] = coerce(v, hints[k], (k,), where)
        if kw.get("tokenizer") is None:
            kw["tokenizer"] = "CharTokenizer"  # funasr-lite always tokenizes characters (0.x: token_type char)
        cfg = cls(
            extra={k: copy.deepcopy(v) for k, v in n.items() if k in TOP_LEVEL_UNUSED},
            provenance=dict(where.provenance),
            _given=frozenset(kw),
            **kw,
        )
        if cfg.seaco_decoder not in (None, "ParaformerSANMDecoder"):
            raise ConfigError(
                f"{where(('seaco_decoder',))}: seaco_decoder class {cfg.seaco_decoder!r} is not supported by "
                "funasr-lite (supported: 'ParaformerSANMDecoder')"
            )
        if cfg.model == "SeacoParaformer" and cfg.seaco_decoder is None:
            raise ConfigError(f"{where()}: SeacoParaformer needs seaco_decoder: ParaformerSANMDecoder")
        need = required_predictor(cfg.model)
        if need and cfg.predictor != need:
            raise ConfigError(f"{where(('predictor',))}: model {cfg.model} needs predictor {need}, got {cfg.predictor}")
        p = cfg.predictor_conf
        for k in ("idim", "l_order", "r_order"):
            if getattr(p, k) is None:
                raise ConfigError(
                    f"{where(('predictor_conf',))}: predictor_conf.{k} is required (CifPredictorV2 has no default)"
                )
        if p.idim != cfg.encoder_conf.output_size:
            raise ConfigError(
                f"{where(('predictor_conf', 'idim'))}: predictor_conf.idim={p.idim} must equal "
                f"encoder_conf.output_size={cfg.encoder_conf.output_size}"
            )
        if cfg.decoding.uses_lm:  # FunASR fuses an LM only when lm_file is given; lm_weight alone is ignored
            raise ConfigError(
                f"{where(('decoding', 'lm_file'))}: lm_file={cfg.decoding.extra['lm_file']!r} with lm_weight="
                f"{cfg.decoding.lm_weight:g}, but funasr-lite has no language-model fusion; remove lm_file "
                "(decoding then ignores lm_weight, as FunASR does without an LM) or set lm_weight to 0"
            )
        if cfg.decoding.ctc_weight > 0 and cfg.model_conf.ctc_weight <= 0:
            raise ConfigError(
                f"{where(('decoding', 'ctc_weight'))}: decoding ctc_weight={cfg.decoding.ctc_weight} "
                "needs a CTC head, but this model has none (model_conf.ctc_weight is 0)"
            )
        return cfg

    def check_trainable(self) -> None:
        """Raise ConfigError unless funasr-lite can train with this optimizer, scheduler and specaug."""
        where = Where("<config>", provenance=self.provenance)
        if self.optim is None:
            raise ConfigError("no optimizer: set optim (adam, adamw or sgd) and optim_conf.lr")
        _check_named("optim", self.optim, where, training=True)
        _check_named("scheduler", self.scheduler, where, training=True)
        _check_class("specaug", self.specaug, where, training=True)
        if self.optim_conf.lr is None:
            raise ConfigError(f"{where(('optim',))}: optim_conf.lr is not set")
        sa = self.specaug_conf
        if (
            self.specaug is not None
            and sa.apply_time_mask
            and (sa.time_mask_width_range is None) == (sa.time_mask_width_ratio_range is None)
        ):
            raise ConfigError(
                f"{where(('specaug_conf',))}: specaug {self.specaug} masks time (apply_time_mask) but specaug_conf "
                "gives no time_mask_width_range / time_mask_width_ratio_range (exactly one is needed, there is no "
                "default); set --specaug_conf, e.g. paraformer-large's '{apply_time_warp: false, "
                "freq_mask_width_range: [0, 30], lfr_rate: 6, num_freq_mask: 1, time_mask_width_range: [0, 12], "
                "num_time_mask: 1}', or --specaug none"
            )

    def encoder_input_size(self) -> int:
        """Feature dim entering the encoder: frontend n_mels * lfr_m (560 for paraformer-large)."""
        return self.frontend_conf.n_mels * self.frontend_conf.lfr_m

    def to_dict(self, full: bool = False, include_decoding: bool = False) -> Dict[str, Any]:
        """A config.yaml dict FunASR 1.4.16's AutoModel loads: class keys always, each section's set keys
        (every field with ``full``), ``extra`` verbatim.  ``decoding`` only with include_decoding."""
        out: Dict[str, Any] = {}
        always = {*self._REQUIRED, *(k + "_conf" for k in self._REQUIRED), "specaug", "tokenizer", "tokenizer_conf"}
        for name in TOP_LEVEL_KEYS:
            value = getattr(self, name)
            if name == "decoding" and not include_decoding:
                continue
            if isinstance(value, Section):
                d = value.to_dict(full)
                if d or name in always or name in self._given:
                    out[name] = d
            elif name in always or name in self._given or value is not None:
                out[name] = plain(value)
        for k, v in self.extra.items():
            out.setdefault(k, plain(v))
        return out

    def log_ignored_keys(self, logger: logging.Logger) -> None:
        """Say once, at INFO level, which FunASR keys this config carries that funasr-lite accepts, keeps and
        writes back, but does not use."""
        ignored = sorted(self.extra) + [f"{s}.{k}" for s in SECTIONS for k in sorted(getattr(self, s).extra)]
        if ignored:
            logger.info("FunASR config keys funasr-lite does not use (kept, ignored): %s", ", ".join(ignored))

    def describe(self) -> str:
        """The final config, one leaf per line, each with the source that set it (or "default")."""
        return format_provenance(self.to_dict(full=True, include_decoding=True), self.provenance)


# The top-level keys ModelConfig types (class names and sections), in config.yaml order.
TOP_LEVEL_KEYS: Tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("extra", "provenance", "_given")
)
# Section key (``encoder_conf``, ``decoding``, ...) -> its typed Section class, in config.yaml order.
SECTIONS: Dict[str, type] = {
    f.name: f.type for f in dataclasses.fields(ModelConfig) if isinstance(f.type, type) and issubclass(f.type, Section)
}


def unknown_key(path: KeyPath, candidates: Sequence[str], where: Where, what: str = "") -> ConfigError:
    """The error for an unknown key: where it is, the closest candidate, else the section(s) it belongs in."""
    key, suggestion = path[-1], suggest(path[-1], candidates)
    msg = f"{where(path)}: unknown key '{'.'.join(map(str, path))}'{what}" + suggestion
    if not suggestion:  # a key of another section, e.g. top-level warmup_steps
        homes = [s for s, c in SECTIONS.items() if key in c.known_keys() and s != path[0]]
        if homes:
            msg += f"; '{key}' belongs in {' or '.join(homes)}"
    return ConfigError(msg)


def validate_layer(layer: Mapping, where: Where) -> None:
    """Check a (normalised) layer: class names, then every key against the schema; ``optim_conf`` against the
    arguments of the optimizer the layer names (else of any FunASR optimizer), ``scheduler_conf`` likewise.
    Sections of a class we do not use (e.g. ``specaug_conf`` of SpecAug) get the same field check."""
    for slot in _CLASS_SLOTS:
        if slot in layer and slot not in ("specaug", "tokenizer"):  # those two: on the merged config only
            _check_class(slot, layer[slot], where)
    for k, v in layer.items():
        if k in SECTIONS:
            if v is None:
                continue
            if not isinstance(v, Mapping):
                raise ConfigError(f"{where((k,))}: {k} must be a mapping, got {v!r}")
            sec = SECTIONS[k]
            class_name = layer.get(sec.CLASS_KEY) if sec.CLASS_KEY else None
            if class_name is not None:
                _check_named(sec.CLASS_KEY, class_name, where)
            allowed = sec.known_keys(class_name)
            for sk in v:
                if sk not in allowed:
                    raise unknown_key(
                        (k, sk), allowed, where, f" (not an argument of {class_name})" if class_name else ""
                    )
        elif k not in TOP_LEVEL_KEYS and k not in TOP_LEVEL_UNUSED:
            raise unknown_key((k,), list(TOP_LEVEL_KEYS) + list(TOP_LEVEL_UNUSED), where)
