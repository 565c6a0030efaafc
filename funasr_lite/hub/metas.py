"""A model dir's ``configuration.json`` and the file names its ``file_path_metas`` gives (torch-free).

ModelScope's 1.x dirs name their files there, relative to the dir, e.g.
``{"file_path_metas": {"config": "config.yaml", "init_param": "model.pt", "frontend_conf": {"cmvn_file": "am.mvn"}}}``.
A value of the wrong type is a :class:`ModelDirError` naming the file and the key, not a crash further on.
"""

import json
from typing import Dict, Optional, Sequence

from funasr_lite.errors import ModelDirError
from funasr_lite.utils.textio import read_utf8

__all__ = ["read_configuration", "metas_name"]


def read_configuration(path: str) -> Dict:
    """``configuration.json`` at ``path`` as a dict.

    Raises:
        ModelDirError: naming the file (and line) when it is unreadable, not UTF-8, not JSON or not an object."""
    try:
        obj = json.loads(read_utf8(path, "JSON", ModelDirError))
    except json.JSONDecodeError as e:
        raise ModelDirError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(obj, dict):
        raise ModelDirError(f"{path}: expected a JSON object at the top level, got {type(obj).__name__}")
    return obj


def metas_name(metas, keys: Sequence[str], default: Optional[str], source: str) -> Optional[str]:
    """The file name ``metas`` (a ``file_path_metas`` value) gives under ``keys`` (e.g.
    ``("frontend_conf", "cmvn_file")``), or ``default`` when it names none.

    Raises:
        ModelDirError: naming ``source`` (the configuration.json) and the key, when ``file_path_metas`` or a
            section on the way is not an object, or the entry is not a non-empty string."""
    node, path = metas, "file_path_metas"
    for k in keys:
        if not isinstance(node, dict):
            raise ModelDirError(f"{source}: {path} must be a JSON object, got {node!r}")
        node, path = node.get(k), f"{path}.{k}"
        if node is None:
            return default
    if not isinstance(node, str) or not node:
        raise ModelDirError(f"{source}: {path} must be a file name (a non-empty string), got {node!r}")
    return node
