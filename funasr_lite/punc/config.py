"""The config.yaml of a CT-Transformer punctuation model dir, validated strictly.

FunASR 1.4.16 builds ``CTTransformer(**model_conf, **top_level_keys, vocab_size=len(token_list))`` with a
``SANMEncoder(**encoder_conf)`` and a ``CharTokenizer(**tokenizer_conf)``; inference reads ``split_size``
from the same merged keys. :class:`PuncConfig` types exactly those keys. ``encoder_conf`` and
``tokenizer_conf`` reuse the ASR schema's sections; the training sections (``optim_conf``, ``train_conf``,
...) are checked key by key against the same schema and otherwise ignored. Any other key is a ConfigError
naming the file, line and key.
"""

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from funasr_lite.config.fields import Section, Where, coerce, option
from funasr_lite.config.schema import SECTIONS, TOP_LEVEL_UNUSED, unknown_key
from funasr_lite.config.sections import DROPOUT, FUNASR_CLASSES, EncoderConf, TokenizerConf
from funasr_lite.config.yaml_io import YamlDict, load_yaml
from funasr_lite.errors import ConfigError

__all__ = ["PuncModelConf", "PuncConfig", "load_punc_config", "FULL_WIDTH_MARKS"]

# The marks FunASR 1.x's inference compares class names with (full-width comma, period, question mark).
FULL_WIDTH_MARKS = ("，", "。", "？")
# Training-only sections: their keys are checked against the ASR schema, their values are not used.
_TRAINING_SECTIONS = ("optim_conf", "scheduler_conf", "dataset_conf", "train_conf")
# Training-only class keys and other top-level keys FunASR's punctuation configs carry.
_TRAINING_KEYS = ("optim", "scheduler", "dataset", "init_param", "frontend", "frontend_conf", "specaug", "input_size")


@dataclass(frozen=True)
class PuncModelConf(Section):
    """``model_conf`` of CTTransformer. Defaults are FunASR 1.4.16's CTTransformer defaults."""

    SECTION: ClassVar[str] = "model_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = ("vocab_size",)
    punc_list: Optional[List[str]] = option(None, "class id -> mark; '_' = no mark (required)")
    punc_weight: Optional[List[float]] = option(None, "per-class loss weights (training only)")
    embed_unit: int = option(128, "token embedding width = encoder_conf.input_size")
    att_unit: int = option(256, "encoder width = encoder_conf.output_size")
    dropout_rate: float = option(0.5, "dropout (training only)")
    ignore_id: int = option(-1, "padding id of targets (training only)")
    sos: int = option(1, "start-of-sentence id (unused by inference)")
    eos: int = option(2, "end-of-sentence id (unused by inference)")
    sentence_end_id: int = option(3, "class id written where inference closes a sentence (the full stop)")
    jieba_usr_dict: Optional[str] = option(None, "jieba user dictionary: word-level model (also a top-level key)")

    def validate(self):
        self._range(["embed_unit", "att_unit"], 1)
        self._range(["dropout_rate"], **DROPOUT)
        if self.punc_list is not None:
            if not self.punc_list:
                raise self._fail("punc_list", "must list at least one class")
            self._range(["sentence_end_id"], 0, len(self.punc_list) - 1)
            if self.punc_weight is not None and len(self.punc_weight) != len(self.punc_list):
                raise self._fail("punc_weight", f"must have one weight per class ({len(self.punc_list)})")


@dataclass(frozen=True)
class PuncConfig:
    """A punctuation model's config.yaml: class names, typed sections and the inference window."""

    model: str = "CTTransformer"  # model class; only CTTransformer
    model_conf: PuncModelConf = field(default_factory=PuncModelConf)  # CTTransformer kwargs
    encoder: str = "SANMEncoder"  # encoder class; only SANMEncoder
    encoder_conf: EncoderConf = field(default_factory=EncoderConf)  # SANMEncoder kwargs
    tokenizer: str = "CharTokenizer"  # tokenizer class; only CharTokenizer
    tokenizer_conf: TokenizerConf = field(default_factory=TokenizerConf)  # CharTokenizer kwargs
    encoder_input_size: Optional[int] = None  # encoder_conf.input_size when given (must equal embed_unit)
    split_size: int = 20  # words per inference window (FunASR's inference kwarg, read from config too)

    @property
    def jieba_usr_dict(self) -> Optional[str]:
        """The jieba user dictionary path as written in the config (model_conf's), or None."""
        return self.model_conf.jieba_usr_dict

    def encoder_kwargs(self) -> Dict[str, Any]:
        """SANMEncoder keyword arguments (FunASR's names) funasr-lite's encoder takes."""
        from funasr_lite.models.sanm import SANMEncoder

        kwargs = self.encoder_conf.kwargs_for(SANMEncoder, exclude=("padding_idx",))
        return dict(kwargs, input_size=self.model_conf.embed_unit)


_CLASSES = {"model": "CTTransformer", "encoder": "SANMEncoder", "tokenizer": "CharTokenizer"}
_SECTIONS = {"model_conf": PuncModelConf, "encoder_conf": EncoderConf, "tokenizer_conf": TokenizerConf}


def _check_keys(d: Mapping, where: Where) -> None:
    allowed_top = list(_CLASSES) + list(_SECTIONS) + ["split_size", "jieba_usr_dict"]
    allowed_top += list(_TRAINING_SECTIONS) + list(_TRAINING_KEYS) + list(TOP_LEVEL_UNUSED)
    for k, v in d.items():
        if k not in allowed_top:
            raise unknown_key((k,), allowed_top, where)
        if k in _SECTIONS or k in _TRAINING_SECTIONS:
            if v is None:
                continue
            if not isinstance(v, Mapping):
                raise ConfigError(f"{where((k,))}: {k} must be a mapping, got {v!r}")
            if k == "encoder_conf":
                allowed = EncoderConf.known_keys() + ["input_size"]
            elif k in _SECTIONS:
                allowed = _SECTIONS[k].known_keys()
            elif SECTIONS[k].CLASS_KEY:  # optim_conf / scheduler_conf: the arguments of the class named
                kind = SECTIONS[k].CLASS_KEY
                name = d.get(kind)
                allowed = SECTIONS[k].known_keys(name if name in FUNASR_CLASSES[kind] else None)
            else:
                allowed = SECTIONS[k].known_keys()
            for sk in v:
                if sk not in allowed:
                    raise unknown_key((k, sk), allowed, where)


def punc_config_from_dict(d: Mapping, source: str = "<dict>") -> PuncConfig:
    """Validate a punctuation config.yaml dict strictly and type it.

    Raises:
        ConfigError: an unknown key, another model/encoder/tokenizer class, a missing ``punc_list``, a
            tokenizer option FunASR's punctuation inference cannot use, or inconsistent sizes; the message
            names the file and line."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: a config must be a mapping, got {type(d).__name__}")
    where = Where(getattr(d, "path", "") or source, getattr(d, "lines", {}))
    _check_keys(d, where)
    for key, name in _CLASSES.items():
        if d.get(key, name) != name:
            raise ConfigError(
                f"{where((key,))}: {key} class {d[key]!r} is not a punctuation model's; funasr-lite's punctuation "
                f"models need {key}: {name}"
            )
    if "model" not in d:
        raise ConfigError(f"{where()}: missing required key 'model' (model: CTTransformer)")
    model_conf = dict(d.get("model_conf") or {})
    if d.get("jieba_usr_dict") is not None:  # FunASR merges top-level keys over model_conf
        model_conf["jieba_usr_dict"] = d["jieba_usr_dict"]
    encoder_conf = dict(d.get("encoder_conf") or {})
    input_size = encoder_conf.pop("input_size", None)  # FunASR's ASR configs leave it to the frontend
    if input_size is not None:
        input_size = coerce(input_size, int, ("encoder_conf", "input_size"), where)
    sections = {
        "model_conf": PuncModelConf.from_dict(model_conf, where),
        "encoder_conf": EncoderConf.from_dict(encoder_conf, where),
        "tokenizer_conf": TokenizerConf.from_dict(d.get("tokenizer_conf"), where),
    }
    split_size = coerce(d.get("split_size", 20), int, ("split_size",), where)
    if split_size < 2:
        raise ConfigError(f"{where(('split_size',))}: split_size={split_size}: must be >= 2 (FunASR asserts it)")
    cfg = PuncConfig(split_size=split_size, encoder_input_size=input_size, **sections)
    _check_consistent(cfg, where)
    return cfg


def _check_consistent(cfg: PuncConfig, where: Where) -> None:
    mc, ec, tc = cfg.model_conf, cfg.encoder_conf, cfg.tokenizer_conf
    if mc.punc_list is None:
        raise ConfigError(f"{where(('model_conf',))}: model_conf.punc_list is required (CTTransformer has no default)")
    input_size = cfg.encoder_input_size
    if input_size is not None and input_size != mc.embed_unit:
        raise ConfigError(
            f"{where(('encoder_conf', 'input_size'))}: encoder_conf.input_size={input_size} must equal "
            f"model_conf.embed_unit={mc.embed_unit}"
        )
    if ec.output_size != mc.att_unit:
        raise ConfigError(
            f"{where(('encoder_conf', 'output_size'))}: encoder_conf.output_size={ec.output_size} must equal "
            f"model_conf.att_unit={mc.att_unit}"
        )
    if ec.input_layer != "pe" or ec.selfattention_layer_type != "sanm":
        raise ConfigError(
            f"{where(('encoder_conf',))}: CT-Transformer needs encoder_conf.input_layer: pe and "
            f"selfattention_layer_type: sanm (got {ec.input_layer!r}, {ec.selfattention_layer_type!r})"
        )
    # FunASR passes the word list to CharTokenizer.text2tokens, which only works without these options
    for key in ("seg_dict", "seg_dict_file", "non_linguistic_symbols"):
        if getattr(tc, key) is not None:
            raise ConfigError(
                f"{where(('tokenizer_conf', key))}: tokenizer_conf.{key} is set, but FunASR's punctuation "
                "inference cannot use it (it fails on a word list); remove it"
            )


def load_punc_config(path: str) -> PuncConfig:
    """Read and validate a punctuation config.yaml (ConfigError naming file:line on any problem)."""
    data = load_yaml(path)
    return punc_config_from_dict(YamlDict(copy.deepcopy(dict(data)), data.lines, data.path), path)
