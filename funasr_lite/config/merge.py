"""Strict configuration: layered merge with provenance, recipe flags and overrides, model-dir layers.

One precedence for every recipe script (lowest first; later layers win)::

    1. built-in defaults            builtin_defaults()
    2. the model dir's config.yaml  (plus configuration.json ``file_path_metas``: file_path_metas_layer())
    3. decoding.yaml (inference, via decoding_layer()) or finetune.yaml (finetuning)
    4. the recipe script's defaults (the constants at the top of the script, via flags_layer())
    5. command-line flags           (flags_layer(), parse_overrides())

Each layer is a ``(source, dict)`` pair in the shape of a FunASR 1.x ``config.yaml`` plus our own
``decoding`` section.  :func:`merge_layers` rewrites FunASR 0.x spellings to 1.x (``sanm`` ->
``SANMEncoder``, top-level ``max_epoch`` -> ``train_conf.max_epoch``, ...), checks every key against the
schema (an unknown key is a :class:`ConfigError` naming the key, the file and line, and the closest valid
key), deep-merges (dicts merge recursively; scalars and lists replace) and records which source set each
leaf.  :meth:`ModelConfig.from_dict` turns the result into typed sections.

Usage (``md``: a :class:`~funasr_lite.hub.model_dir.ModelDir`)::

    layers = model_dir_layers(md, "infer")       # layers 1-3, decoding.yaml on top
    layers = model_dir_layers(md, "finetune")    # layers 1-3, finetune.yaml on top
    layers += [("recipe defaults", flags_layer(DEFAULTS)), ("command line", flags_layer(given_flags))]
    cfg = ModelConfig.from_dict(merge_layers(layers)); cfg.check_trainable(); print(cfg.describe())
    enc = SANMEncoder(input_size=cfg.encoder_input_size(), **cfg.encoder_conf.kwargs_for(SANMEncoder))
"""

import copy
import dataclasses
import functools
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, get_type_hints

import yaml

from funasr_lite.config.fields import Where
from funasr_lite.config.schema import (
    SECTIONS,
    TOP_LEVEL_KEYS,
    TOP_LEVEL_UNUSED,
    ModelConfig,
    is_null_name,
    normalize_legacy,
    unknown_key,
    validate_layer,
)
from funasr_lite.config.yaml_io import KeyPath, YamlDict, load_yaml
from funasr_lite.data.options import DatasetConf
from funasr_lite.decode.options import DecodingOptions
from funasr_lite.errors import ConfigError
from funasr_lite.train.options import TrainConf

__all__ = [
    "MergedConfig",
    "merge_layers",
    "builtin_defaults",
    "decoding_layer",
    "file_path_metas_layer",
    "flag_fields",
    "config_flag_paths",
    "set_path",
    "flags_layer",
    "parse_overrides",
    "model_dir_layers",
]


# ------------------------------------------------------------------------------------------- merging
class MergedConfig(dict):
    """The merged layers; ``provenance`` maps each dotted leaf path to the source (``file:line``) that set it."""

    def __init__(self):
        super().__init__()
        self.provenance: Dict[str, str] = {}


def _merge_into(dst: dict, src: Mapping, prov: Dict[str, str], where: Where, prefix: KeyPath) -> None:
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


def merge_layers(layers: Sequence[Tuple[str, Mapping]]) -> MergedConfig:
    """Merge ``(source, dict)`` layers, lowest precedence first, as the module docstring describes: each layer
    is normalised and validated on its own (so an error names its file and line), then deep-merged."""
    out = MergedConfig()
    for source, d in layers:
        layer = normalize_legacy(d)
        where = Where(source, lines=layer.lines)
        validate_layer(layer, where)
        _merge_into(out, layer, out.provenance, where, ())
    return out


def builtin_defaults() -> Dict[str, Any]:
    """The lowest layer: funasr-lite's decoding, training and data-loading defaults (not the architecture)."""
    return {s.SECTION: s().to_dict(full=True) for s in (DecodingOptions, TrainConf, DatasetConf)}


def decoding_layer(d: Mapping) -> YamlDict:
    """Lift a flat decoding.yaml (beam_size, penalty, ..., optionally frontend_conf) into the config tree:
    config.yaml keys stay at the top, everything else goes under ``decoding`` (so typos are caught there)."""
    lines, out = getattr(d, "lines", {}), YamlDict(path=getattr(d, "path", ""))
    dec_keys = DecodingOptions.known_keys()
    for k, v in d.items():
        if k not in dec_keys and (k in TOP_LEVEL_KEYS or k in TOP_LEVEL_UNUSED):
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

    def found(x) -> Optional[str]:
        p = os.path.join(model_dir, x) if isinstance(x, str) else None
        return p if p and os.path.exists(p) else None

    def walk(m: Mapping) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for k, v in m.items():
            if isinstance(v, Mapping):
                v = walk(v)
            elif isinstance(v, (list, tuple)):
                v = [found(x) for x in v if found(x)]
            else:
                v = found(v)
            if v:
                out[k] = v
        return out

    layer = walk(metas)
    return layer, layer.pop("config", None)


# ------------------------------------------------------------------------------- command-line helpers
def flag_fields(cls: type) -> List[Tuple[str, dataclasses.Field, Any]]:
    """``(flag name, field, type)`` of the fields of dataclass ``cls`` declared with ``option(flag=...)``."""
    hints = get_type_hints(cls)
    return [
        (f.name if f.metadata.get("flag") is True else f.metadata["flag"], f, hints[f.name])
        for f in dataclasses.fields(cls)
        if f.metadata.get("flag")
    ]


@functools.lru_cache(maxsize=None)
def config_flag_paths() -> Dict[str, Tuple[str, dataclasses.Field, Any]]:
    """Recipe flag -> (dotted config path, field, type) for every flagged field of ModelConfig and its sections
    (``--lr`` -> ``optim_conf.lr``; ``--scheduler_conf`` -> the whole section, as YAML/JSON text)."""
    out = {name: (f.name, f, tp) for name, f, tp in flag_fields(ModelConfig)}
    for key, section in SECTIONS.items():
        out.update({name: (f"{key}.{f.name}", f, tp) for name, f, tp in flag_fields(section)})
    return out


def set_path(d: dict, dotted: str, value) -> None:
    """``d[a][b] = value`` for ``dotted='a.b'``, creating dicts on the way."""
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value


def _conf_flag(section: str, text, flag: str, values: Mapping[str, Any]) -> dict:
    """Parse a ``--*_conf`` value, YAML/JSON text of a mapping (``'{"warmup_steps": 300}'``); check its keys against
    ``section`` for the class the flag ``values`` name (the error names the flag and the closest valid key)."""
    try:
        conf = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as e:
        raise ConfigError(f"{flag}: not valid YAML/JSON: {getattr(e, 'problem', None) or e}: {text!r}") from None
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise ConfigError(f"{flag}: expected a mapping like '{{\"key\": value}}', got {text!r}")
    slot = SECTIONS[section].CLASS_KEY
    class_name = values.get(slot) if slot else None
    allowed = SECTIONS[section].known_keys(None if is_null_name(class_name) else class_name.lower())
    for k in conf:
        if k not in allowed:
            raise unknown_key((section, k), allowed, Where(flag))
    return dict(conf)


def flags_layer(values: Mapping[str, Any]) -> Dict[str, Any]:
    """A layer from recipe flags/defaults ``{flag: value}`` (flags of :func:`config_flag_paths`); None means "not
    given" and is skipped.  ``*_conf`` values may be YAML/JSON text; "none" for specaug/scheduler means null."""
    layer: Dict[str, Any] = {}
    paths = config_flag_paths()
    for name, v in values.items():
        if v is None:
            continue
        if name not in paths:
            raise ConfigError(f"--{name}: no config key for this flag (known: {', '.join(sorted(paths))})")
        path = paths[name][0]
        if path in SECTIONS:
            layer.setdefault(path, {}).update(_conf_flag(path, v, f"--{name}", values))
        else:
            set_path(layer, path, None if path in ("specaug", "scheduler") and is_null_name(v) else v)
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
            raise ConfigError(
                f"{source}: override {item!r}: value is not valid YAML: {getattr(e, 'problem', e)}"
            ) from None
        set_path(out, key.strip(), value)
    return out


# ----------------------------------------------------------------------------------- model dir layers
def _model_config(path: str) -> YamlDict:
    """A model dir's config.yaml: it must name the model's classes (the other layers only tune them)."""
    d = load_yaml(path)
    example = "model: Paraformer, encoder: SANMEncoder, decoder: ParaformerSANMDecoder, ... and their *_conf sections"
    if not d:
        raise ConfigError(
            f"{path}: the config is empty; a model dir's config.yaml names the model's classes and their "
            f"settings ({example}): copy the config.yaml of the model the weights came from"
        )
    if d.get("model") == "FsmnVADStreaming":
        raise ConfigError(
            f"{path}: model FsmnVADStreaming is a voice activity detector, not a speech recognizer: load it with "
            "funasr_lite.vad.load_vad"
        )
    missing = [k for k in ModelConfig._REQUIRED if normalize_legacy(d).get(k) is None]
    if missing:
        raise ConfigError(
            f"{path}: missing required key{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(a model dir's config.yaml names the model's classes: {example})"
        )
    return d


def model_dir_layers(md, purpose: str = "infer") -> List[Tuple[str, Mapping]]:
    """Layers 1-3 for a :class:`~funasr_lite.hub.model_dir.ModelDir`: built-in defaults, config.yaml, the files
    the dir has (configuration.json ``file_path_metas``, else am.mvn / tokens / seg_dict, as FunASR injects
    them), then decoding.yaml (``purpose="infer"``) or finetune.yaml (``purpose="finetune"``).  Append the
    recipe defaults and command-line layers, then merge_layers()."""
    if purpose not in ("infer", "finetune"):
        raise ValueError(f"purpose must be 'infer' or 'finetune', got {purpose!r}")
    layers: List[Tuple[str, Mapping]] = [
        ("built-in defaults", builtin_defaults()),
        (md.config, _model_config(md.config)),
    ]
    metas = md.configuration.get("file_path_metas")
    if isinstance(metas, Mapping):
        layers.append((os.path.join(md.root, "configuration.json"), file_path_metas_layer(md.root, metas)[0]))
    else:
        found: Dict[str, Any] = {}
        for f, path in (
            (md.cmvn, "frontend_conf.cmvn_file"),
            (md.tokens, "tokenizer_conf.token_list"),
            (md.seg_dict, "tokenizer_conf.seg_dict_file"),
        ):
            if f:
                set_path(found, path, f)
        if found:
            layers.append((f"files in {md.root}", found))
    if purpose == "infer" and md.decoding_yaml:
        layers.append((md.decoding_yaml, decoding_layer(load_yaml(md.decoding_yaml))))
    if purpose == "finetune" and md.finetune_yaml:
        layers.append((md.finetune_yaml, load_yaml(md.finetune_yaml)))
    return layers
