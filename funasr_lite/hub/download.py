"""Resolve ``--model``: a local model dir, or a ModelScope hub id.

A hub id is looked up in the local ModelScope cache first
(``snapshot_download(..., local_files_only=True)``).  Only when it is not cached
do we go online, and before that we check in a few seconds that the hub can be
reached at all, so an offline machine gets a clear error at once instead of
modelscope's long retry loop.
"""

import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Optional
from urllib.parse import urlparse

from funasr_lite.errors import HubError
from funasr_lite.hub.aliases import resolve_alias

logger = logging.getLogger(__name__)

# Seconds allowed for the reachability check of the hub before giving up.
PROBE_TIMEOUT_S = 4.0


def _hub_endpoint() -> str:
    """The ModelScope endpoint modelscope itself would use."""
    endpoint = os.environ.get("MODELSCOPE_ENDPOINT")
    if endpoint:
        return endpoint
    return "https://" + os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn")


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to the hub's host opens within ``timeout`` s.

    DNS resolution runs in a worker thread, since ``getaddrinfo`` ignores socket
    timeouts and can hang for much longer on a machine without network.
    """
    url = urlparse(_hub_endpoint())
    host, port = url.hostname or "www.modelscope.cn", url.port or (443 if url.scheme != "http" else 80)

    def connect() -> bool:
        with socket.create_connection((host, port), timeout=timeout):
            return True

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=timeout)
    except (OSError, FutureTimeout):
        return False
    finally:
        pool.shutdown(wait=False)


def resolve_model(model: str, revision: Optional[str] = None) -> str:
    """Return a local directory for ``model`` (a local dir, a hub id, or an alias such as ``fsmn-vad``:
    :data:`~funasr_lite.hub.aliases.MODEL_ALIASES`).

    Raises:
        HubError: ``model`` is neither an existing dir (a str or path) nor a usable hub id, or
            the hub cannot be reached and the model is not cached.
    """
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str):
        raise HubError(
            f"--model {model!r}: expected a model dir or a ModelScope id (a str), got {type(model).__name__}"
        )
    if os.path.isdir(model):
        return os.path.abspath(model)
    model = resolve_alias(model)
    if os.path.exists(model):
        raise HubError(f"--model {model}: is a file, expected a model dir or a ModelScope model id")
    # a hub id is owner/name: exactly one slash, no path syntax (no leading ./ or /, no ~)
    if model.count("/") != 1 or model.startswith((".", "/", "~")) or not all(p.strip() for p in model.split("/")):
        raise HubError(f"--model {model}: no such directory, and not a ModelScope id of the form owner/name")

    from modelscope import snapshot_download  # imported lazily: slow, and only the hub path needs it

    try:
        path = snapshot_download(model, revision=revision, local_files_only=True)
        logger.info("model %s found in the ModelScope cache: %s", model, path)
        return path
    except Exception as e:  # modelscope raises several cache-miss types
        logger.info("model %s is not in the local ModelScope cache (%s)", model, type(e).__name__)

    if not hub_reachable():
        raise HubError(
            f"--model {model}: not in the local ModelScope cache, and the hub ({_hub_endpoint()}) cannot be "
            "reached from this machine. Download the model dir elsewhere (e.g. `modelscope download "
            f"--model {model} --local_dir DIR`), copy it here, and pass --model DIR."
        )
    try:
        return snapshot_download(model, revision=revision)
    except Exception as e:
        raise HubError(
            f"--model {model}: download from ModelScope failed: {e}. Pass a local model dir with --model DIR instead."
        ) from e
