"""Strict typed config sections: the :class:`Section` base of every ``*_conf`` dataclass, value coercion
against the field annotations, and error messages that name where a bad value came from.

A ``Section`` subclass lists FunASR's constructor kwargs as typed fields (with FunASR's defaults) and the
keys FunASR's configs contain that funasr-lite does not use (``KNOWN_UNUSED``, kept verbatim in ``extra``);
any other key is a :class:`ConfigError` naming the file (and line), the key and the closest valid key.
The concrete sections are in :mod:`funasr_lite.config.sections`.
"""

import copy
import dataclasses
import difflib
import inspect
import math
import numbers
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from funasr_lite.config.yaml_io import KeyPath, plain
from funasr_lite.errors import ConfigError


@dataclass
class Where:
    """Names where the value at a key path came from: a merge provenance entry, ``file:line``, or the source."""

    source: str
    lines: Mapping[KeyPath, int] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, path: KeyPath = ()) -> str:
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


def suggest(key: str, candidates: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(str(key), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


# The largest integer any int field or flag accepts (a C int: thread counts, seeds, sizes all fit in it).
MAX_INT = 2**31 - 1


def type_name(tp) -> str:
    """How an error message names the type ``tp`` ("an integer", "a number or null", ...)."""
    if tp is Any:
        return "any value"
    if get_origin(tp) is Union:
        return " or ".join(type_name(a) for a in get_args(tp))
    if get_origin(tp) in (list, tuple):
        return f"a list of {type_name(get_args(tp)[0]) if get_args(tp) else 'values'}"
    if get_origin(tp) is dict:
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}.get(
        tp, str(tp)
    )


def coerce(value, tp, path: KeyPath, where: Where):
    """Check ``value`` against the annotation ``tp``; ints widen to floats, '1e-4' strings parse as floats,
    numpy scalars count as their Python value.
    Every number must be finite (no NaN/inf) and every integer within +-MAX_INT."""
    bad = ConfigError(f"{where(path)}: {'.'.join(map(str, path))}: expected {type_name(tp)}, got {value!r}")
    origin = get_origin(tp)
    if tp is Any:
        return copy.deepcopy(value)
    if origin is Union:
        for a in get_args(tp):
            try:
                return coerce(value, a, path, where)
            except ConfigError:
                pass
        raise bad
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        elem = (get_args(tp) or (Any,))[0]
        return [coerce(v, elem, path + (str(i),), where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        return copy.deepcopy(dict(value))
    if (tp is type(None) and value is None) or (tp in (bool, str) and isinstance(value, tp)):
        return value
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, int, float, complex)):
        # a numpy scalar from a Python caller (np.int64(500), np.float32(0.5)): its plain Python value
        value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if tp is int and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                raise ConfigError(f"{where(path)}: {'.'.join(map(str, path))}={value}: out of range (|n| <= {MAX_INT})")
            return value
    elif tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise bad from None
        if not math.isfinite(number):
            raise ConfigError(f"{where(path)}: {'.'.join(map(str, path))}={value!r}: must be a finite number")
        return number
    raise bad


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    factory: Optional[Callable[[], Any]] = None,
    flag: Union[bool, str] = False,
    choices: Optional[Sequence[Any]] = None,
) -> Any:
    """A field of an options dataclass, with its help text.

    ``flag=True`` makes it a recipe flag of the same name (a string: another flag name); ``choices`` limits
    the flag's values. The help text is what ``--help`` shows, so it is the one description of the field."""
    meta = {"help": help, "flag": flag, "choices": tuple(choices) if choices else None}
    return field(default=default, default_factory=factory or dataclasses.MISSING, metadata=meta)


@dataclass(frozen=True)
class Section:
    """Base of a ``*_conf`` section, as the module docstring describes."""

    SECTION: ClassVar[str] = ""  # the config key of this section; "" for an abstract base
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = ()  # keys FunASR accepts that funasr-lite ignores
    # top-level key naming the class whose arguments the allowed keys depend on ("optim"), if any
    CLASS_KEY: ClassVar[Optional[str]] = None
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)  # known-but-unused keys, kept verbatim
    # keys the input set (kept by dataclasses.replace, so to_dict() still writes them)
    _given: frozenset = field(default=frozenset(), repr=False, compare=False)
    _where: Optional[Where] = field(default=None, repr=False, compare=False)  # where from_dict's input came from

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra" and not f.name.startswith("_")]

    @classmethod
    def known_keys(cls, class_name: Optional[str] = None) -> List[str]:
        """Every key accepted in this section (for ``class_name``, where the section depends on it)."""
        return cls.field_names() + list(cls.KNOWN_UNUSED)

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        """The typed fields of a default instance (FunASR's defaults)."""
        return {k: v for k, v in vars(cls()).items() if k in cls.field_names()}

    @classmethod
    def from_dict(cls, d: Optional[Mapping], where: Where):
        """Build from a mapping whose keys :func:`~funasr_lite.config.schema.validate_layer` has checked: the
        fields are type-checked (a ConfigError names the source), the other keys are kept verbatim in ``extra``."""
        hints, names, d = get_type_hints(cls), cls.field_names(), d or {}
        kw = {k: coerce(v, hints[k], (cls.SECTION, k), where) for k, v in d.items() if k in names}
        extra = {k: copy.deepcopy(v) for k, v in d.items() if k not in names}
        return cls(extra=extra, _given=frozenset(kw), _where=where, **kw)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Range checks; subclasses raise ``self._fail(key, problem)``."""

    def _range(self, keys: Sequence[str], lo=None, hi=None, lo_open=False, hi_open=False, also=()) -> None:
        """Raise ``_fail`` for the first of ``keys`` outside ``lo..hi`` (open ends as given); None and the
        values in ``also`` (e.g. -1 = off) pass."""
        for k in keys:
            v = getattr(self, k)
            if v is None or isinstance(v, bool) or v in also:
                continue
            if (lo is not None and (v <= lo if lo_open else v < lo)) or (
                hi is not None and (v >= hi if hi_open else v > hi)
            ):
                if hi is None:
                    want = f"must be {'>' if lo_open else '>='} {lo}"
                else:
                    want = f"must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
                raise self._fail(k, want + (f" (or {' or '.join(map(str, also))})" if also else ""))

    def _fail(self, key: str, problem: str) -> ConfigError:
        where = (self._where or Where("<dict>"))((self.SECTION, key))
        return ConfigError(f"{where}: {self.SECTION}.{key}={getattr(self, key)!r}: {problem}")

    def to_dict(self, full: bool = False) -> Dict[str, Any]:
        """Keys the input set or that differ from the default (all fields with ``full``), plus ``extra``."""
        defaults = self.defaults()
        out = {
            k: plain(getattr(self, k))
            for k in self.field_names()
            if full or k in self._given or getattr(self, k) != defaults[k]
        }
        out.update(plain(self.extra))
        return out

    def kwargs(self) -> Dict[str, Any]:
        """All typed fields as constructor kwargs (FunASR's names); ``extra`` is never included."""
        return {k: plain(getattr(self, k)) for k in self.field_names()}

    def kwargs_for(self, target: Callable, exclude: Sequence[str] = ()) -> Dict[str, Any]:
        """Kwargs for ``target`` (a class or function): the fields it accepts.  A field it does not accept
        is dropped when it holds FunASR's default, and is a ConfigError ("not supported") otherwise."""
        params = _parameters(target)
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        defaults, out = self.defaults(), {}
        for k in self.field_names():
            v = getattr(self, k)
            if k in exclude:
                continue
            if var_kw or k in params:
                out[k] = plain(v)
            elif v != defaults[k]:
                raise self._fail(k, f"not supported by funasr-lite's {getattr(target, '__name__', target)}")
        return out


def _parameters(target: Callable) -> Mapping[str, inspect.Parameter]:
    """``target``'s parameters. For a class whose ``__init__`` passes ``**kwargs`` on to its base (a subclass
    adding arguments or checks), the named parameters of each ``__init__`` up the MRO, until one that takes no
    ``**kwargs``: so a subclass accepts exactly what it and its bases name."""
    if not isinstance(target, type):
        return inspect.signature(target).parameters
    passing = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    named: Dict[str, inspect.Parameter] = {}
    for klass in target.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        for name, p in params.items():
            if name != "self" and p.kind not in passing:
                named.setdefault(name, p)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return named
    return inspect.signature(target).parameters
