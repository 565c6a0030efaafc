"""Recipe flags generated from the options dataclasses: one declaration per option, help text included.

A field declared with ``option(..., flag=True)`` is a command-line flag of the same name. Two kinds exist:

* run-time options (fields of :class:`~funasr_lite.decode.infer.InferOptions`,
  :class:`~funasr_lite.train.finetune.FinetuneOptions`, ...): flag > recipe default > the field's default;
* config options (flagged fields of :class:`~funasr_lite.config.schema.ModelConfig` and its sections, e.g.
  ``--lr`` is ``optim_conf.lr``): they enter the merged config as two layers above the model dir's files,
  "recipe defaults" then "command line", so the source of every value is recorded.
"""

import argparse
import dataclasses
import difflib
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union, get_args, get_origin, get_type_hints

from funasr_lite.config.fields import MAX_INT, Section, Where, coerce, type_name
from funasr_lite.config.merge import config_flag_paths, flag_fields, flags_layer
from funasr_lite.config.schema import SECTIONS
from funasr_lite.errors import ConfigError

__all__ = ["RecipeParser", "add_option_flags", "option_flags", "split_args"]


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "y"):
        return True
    if text.lower() in ("0", "false", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a non-empty value, got {text!r}")
    return text


def _int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if abs(value) > MAX_INT:
        raise argparse.ArgumentTypeError(f"{text} is out of range (|n| <= {MAX_INT})")
    return value


def _float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _argparse_kwargs(tp: Any) -> Dict[str, Any]:
    """argparse ``type``/``nargs`` for a field annotation (a Section is YAML/JSON text)."""
    if isinstance(tp, type) and issubclass(tp, Section):
        return {"type": _text}
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        lists = [a for a in args if get_origin(a) in (list, tuple)]
        if lists:
            return {**_argparse_kwargs(get_args(lists[0])[0]), "nargs": "+"}
        return _argparse_kwargs(args[0])
    if get_origin(tp) in (list, tuple):
        return {**_argparse_kwargs(get_args(tp)[0]), "nargs": "+"}
    if tp is bool:
        return {"type": _bool}
    return {"type": {int: _int, float: _float}.get(tp, _text)}


class RecipeParser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped flag."""

    def error(self, message: str) -> None:
        if "unrecognized arguments" in message:
            known = [o for a in self._actions for o in a.option_strings]
            hints = []
            for given in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(given.split("=")[0].replace("-", "_"), known, n=1, cutoff=0.6)
                if given.startswith("--") and close:
                    hints.append(f"{given} (did you mean {close[0]}?)")
            if hints:
                message = "unrecognized arguments: " + ", ".join(hints)
        super().error(message)


def option_flags(runtime: Sequence[type]) -> Dict[str, Tuple[dataclasses.Field, Any]]:
    """Flag name -> (field, type) of the flagged fields of the ``runtime`` dataclasses and of the config."""
    seen = {name: (f, tp) for cls in runtime for name, f, tp in flag_fields(cls)}
    seen.update({name: (f, tp) for name, (_, f, tp) in config_flag_paths().items() if name not in seen})
    return seen


def add_option_flags(
    parser: argparse.ArgumentParser, runtime: Sequence[type], defaults: Mapping[str, Any], exclude: Sequence[str] = ()
) -> None:
    """Add a flag for each flagged field of the ``runtime`` dataclasses and of the config (but ``exclude``).

    Every flag defaults to None ("not given"); the help shows the recipe default, else the field's own.
    ``defaults`` (the recipe script's editable defaults) must name known flags only."""
    seen = option_flags(runtime)
    unknown = [k for k in defaults if k not in seen or k in exclude]
    if unknown:
        raise ConfigError(
            f"recipe defaults: unknown flag(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(k for k in seen if k not in exclude))})"
        )
    for name, (f, tp) in seen.items():
        if name in exclude:
            continue
        if defaults.get(name) is not None:
            shown = f"recipe default: {defaults[name]}"
        elif name in config_flag_paths():  # not set by the recipe: the model dir's config decides
            own = f", else {f.default}" if f.default is not dataclasses.MISSING and f.default is not None else ""
            shown = f"default: the model dir's config{own}"
        elif f.default is None:  # the help says what "not given" means
            shown = ""
        elif f.default is not dataclasses.MISSING:
            shown = f"default: {f.default}"
        else:
            shown = "required"
        parser.add_argument(
            f"--{name}",
            default=None,
            choices=f.metadata.get("choices"),
            **_argparse_kwargs(tp),
            help=f"{f.metadata.get('help', '')}" + (f" ({shown})" if shown else ""),
        )


def split_args(
    args: argparse.Namespace, runtime: type, defaults: Mapping[str, Any], fixed: Optional[Mapping[str, Any]] = None
) -> Tuple[Any, List[Tuple[str, Dict[str, Any]]]]:
    """``(runtime options, config layers)`` from parsed flags and the recipe defaults.

    Runtime fields take flag > recipe default > the field's default; config flags become the
    "recipe defaults" and "command line" layers (None = not given)."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    fields = [f for f in dataclasses.fields(runtime) if f.init]
    hints = get_type_hints(runtime)
    kw = {}
    for f in fields:
        if f.name in given or defaults.get(f.name) is not None:
            value = given.get(f.name, defaults.get(f.name))
            kw[f.name] = _checked(value, hints[f.name], _label(f.name, f.name in given))
        elif f.name in defaults:
            kw[f.name] = None
    kw.update(fixed or {})
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [f"--{name}" for name in required if kw.get(name) is None]
    if missing:
        raise ConfigError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required (no recipe default)")
    paths = config_flag_paths()
    layers = []
    for source, values in (("recipe defaults", defaults), ("command line", given)):
        conf = {k: v for k, v in values.items() if k in paths and v is not None}
        if conf:
            labels = {paths[k][0]: _label(k, source == "command line") for k in conf}
            layer = _flags_layer(conf, labels)
            _preflight(layer, labels)
            layers.append((source, layer))
    return runtime(**kw), layers


def _label(name: str, from_command_line: bool) -> str:
    """How an error names where a flag's value came from."""
    return f"--{name}" if from_command_line else f"recipe default {name} (--{name})"


def _checked(value: Any, tp: Any, label: str) -> Any:
    """A run-time option's value checked against its field type (the same coercion as the config's); an
    empty string is no value."""
    try:
        out = coerce(value, tp, ("",), Where(label))
    except ConfigError:
        raise ConfigError(f"{label}: expected {type_name(tp)}, got {value!r}") from None
    for v in out if isinstance(out, list) else [out]:
        if isinstance(v, str) and not v.strip():
            raise ConfigError(f"{label}: expected a non-empty value, got {value!r}")
    return tuple(out) if get_origin(tp) is tuple or tuple in map(get_origin, get_args(tp)) else out


def _flags_layer(conf: Mapping[str, Any], labels: Mapping[str, str]) -> Dict[str, Any]:
    """flags_layer(), its errors naming the flag (the label) instead of the bare flag name."""
    try:
        return flags_layer(conf)
    except ConfigError as e:
        msg = str(e)
        for name in conf:
            if msg.startswith(f"--{name}:") and labels[config_flag_paths()[name][0]] != f"--{name}":
                msg = labels[config_flag_paths()[name][0]] + msg[len(name) + 2 :]
        raise ConfigError(msg) from None


def _preflight(layer: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    """Check the config flags' values before any file is read: each section they set is built alone (type and
    range checks; the other keys at their defaults), so an error names the flag."""
    where = Where("command line", provenance=dict(labels))
    for key, value in layer.items():
        if key in SECTIONS:
            SECTIONS[key].from_dict(value, where)
