"""A package's public names imported from their modules on first use (PEP 562), so that importing the
package does not import what those modules import (torch).

    __getattr__, __dir__ = lazy_exports(__name__, {"load_vad": "funasr_lite.vad.model"}, globals())
"""

import importlib
from typing import Any, Callable, Dict, List, Mapping, Tuple

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str], namespace: Dict[str, Any]
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of package ``package``, whose globals are ``namespace``.

    ``names`` maps each exported name to the module that defines it; the first access imports that module and
    stores the value in ``namespace``, so later accesses are plain global lookups. Any other name raises
    AttributeError, as for a module without ``__getattr__``."""

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
