"""Config files: strict YAML loading (with each key's line number), atomic YAML writing, and the provenance
listing of a final config."""

import os
from typing import Dict, List, Mapping, Optional, Tuple

import yaml

from funasr_lite.errors import ConfigError
from funasr_lite.utils.fileio import atomic_write_text
from funasr_lite.utils.textio import read_utf8

KeyPath = Tuple[str, ...]  # a key path into a nested config, e.g. ("train_conf", "max_epoch")


class YamlDict(dict):
    """A dict loaded from a file; ``lines`` maps a key path (tuple) to its 1-based line, ``path`` the file."""

    def __init__(self, data=(), lines: Optional[Dict[KeyPath, int]] = None, path: str = ""):
        super().__init__(data)
        self.lines: Dict[KeyPath, int] = dict(lines or {})
        self.path = path


def load_yaml(path: str) -> YamlDict:
    """Load a YAML mapping with ``yaml.safe_load`` semantics; ``{}`` for an empty file.

    Raises ConfigError naming ``file:line`` for a syntax error, a character YAML does not allow, a duplicate
    key (YAML would silently keep the last one) or a top level that is not a mapping, and naming the file for
    a value YAML cannot construct (``!!int abc``) or nesting too deep to load (or a recursive alias).
    """
    path = os.fspath(path)
    text = read_utf8(path, "config", ConfigError)
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader checks every character here
        node = loader.get_single_node()
        lines = _key_lines(node, path) if node is not None else {}  # before merge keys are flattened into it
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - text.rfind("\n", 0, e.position)
        raise ConfigError(f"{path}:{line}:{column}: invalid YAML: character #x{e.character:04x}: {e.reason}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        raise ConfigError(f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "")) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply to load, or an alias inside itself") from None
    except ValueError as e:  # a value its constructor cannot build: a 5000-digit int, !!int abc
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return YamlDict(path=path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of keys, got {type(data).__name__}")
    return YamlDict(data, lines, path)


def _key_lines(root: yaml.Node, path: str) -> Dict[KeyPath, int]:
    """Each key path of the composed document -> the 1-based line that sets it; ConfigError for a key set
    twice in one mapping. A merge (``<<: *anchor``) brings in the keys the mapping does not set itself, at the
    anchor's lines (an earlier merge source first, as YAML merges)."""
    lines: Dict[KeyPath, int] = {}

    def walk(n: yaml.Node, prefix: KeyPath, merged: bool) -> None:
        if not isinstance(n, yaml.MappingNode):
            return
        seen: Dict[str, int] = {}
        sources = []
        for kn, vn in n.value:
            if not isinstance(kn, yaml.ScalarNode):
                continue
            if kn.tag == "tag:yaml.org,2002:merge":
                sources += vn.value if isinstance(vn, yaml.SequenceNode) else [vn]
                continue
            line = kn.start_mark.line + 1
            if kn.value in seen and not merged:  # (a merge source was checked where it was written)
                raise ConfigError(
                    f"{path}:{line}: duplicate key '{'.'.join(prefix + (kn.value,))}' "
                    f"(first set on line {seen[kn.value]})"
                )
            seen[kn.value] = line
            lines.setdefault(prefix + (kn.value,), line)
            walk(vn, prefix + (kn.value,), merged)
        for source in sources:
            walk(source, prefix, True)

    walk(root, (), False)
    return lines


def plain(v):
    """Deep copy into plain dict/list/scalars (tuples become lists) so yaml.safe_dump accepts it."""
    if isinstance(v, Mapping):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def save_yaml(path: str, data: Mapping) -> None:
    """Write ``data`` as block-style UTF-8 YAML, atomically (keys keep their order)."""
    atomic_write_text(path, yaml.safe_dump(plain(data), allow_unicode=True, sort_keys=False, default_flow_style=False))


def format_provenance(d: Mapping, provenance: Mapping[str, str]) -> str:
    """Render ``d`` as YAML-like lines ``key: value  # source`` (or "default"); long lists by their length."""
    lines: List[str] = []

    def walk(m: Mapping, prefix: KeyPath, indent: str) -> None:
        for k, v in m.items():
            p = prefix + (str(k),)
            if isinstance(v, Mapping) and v:
                lines.append(f"{indent}{k}:")
                walk(v, p, indent + "  ")
                continue
            shown = (
                f"[{len(v)} items]"
                if isinstance(v, (list, tuple)) and len(v) > 8
                else yaml.safe_dump(plain(v), default_flow_style=True, allow_unicode=True).replace("\n...", "").strip()
            )
            lines.append(f"{indent}{k}: {shown}  # {provenance.get('.'.join(p), 'default')}")

    walk(d, (), "")
    return "\n".join(lines)
