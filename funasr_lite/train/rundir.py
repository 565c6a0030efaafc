"""The finetune output dir as a resource: one writer at a time, and a resume only with the config it was trained with.

* :func:`locked_output_dir`: rank 0 holds :func:`funasr_lite.utils.lock.dir_lock` for the whole run; under
  torchrun the other ranks learn of a refusal through an all-reduce (no rank waits forever). A dir created for a
  start that then failed (a wrong ``--data_path``, a bad config) is removed again, so no half model dir stays.
* :func:`training_config` / :func:`check_resume_config`: ``checkpoint.pb`` keeps the merged config it was trained
  with; a resume may change only the keys in :data:`RUNTIME_KEYS` (applied for real, and logged). Any other
  change (lr, scheduler, optimizer, model, data) would be silently overridden by the restored optimizer/scheduler
  state or would break the exact resume, so it is refused with every differing key named.
"""

import contextlib
import logging
import os
from typing import Any, Dict, Iterator, Mapping, Optional

from funasr_lite.config.schema import SECTIONS, ModelConfig
from funasr_lite.errors import ConfigError
from funasr_lite.train.distributed import DistInfo, all_reduce_sum
from funasr_lite.utils.lock import LOCK_NAME, DirLockedError, dir_lock

__all__ = ["RUNTIME_KEYS", "locked_output_dir", "training_config", "check_resume_config"]

logger = logging.getLogger(__name__)

# keys a resume may change: read afresh by every step of the loop, never restored from checkpoint.pb
RUNTIME_KEYS = frozenset(
    {
        "train_conf.max_epoch",
        "train_conf.keep_nbest_models",
        "train_conf.log_interval",
        "train_conf.max_nan_steps",
        "train_conf.use_fp16",
        "train_conf.use_bf16",
        "train_conf.find_unused_parameters",
        "train_conf.grad_clip",
        "train_conf.grad_clip_type",
        "dataset_conf.num_workers",
    }
)


@contextlib.contextmanager
def locked_output_dir(out: str, dist: DistInfo, what: str = "finetune") -> Iterator[None]:
    """Hold ``out`` for the ``with`` block (rank 0 locks; every rank raises DirLockedError if that failed)."""
    created = not os.path.exists(out)
    with contextlib.ExitStack() as stack:
        error: Optional[Exception] = None
        if dist.is_main:
            try:
                stack.enter_context(dir_lock(out, what))
            except DirLockedError as e:
                error = e
            except OSError as e:  # a file in the way, no permission, read-only file system
                error = ConfigError(f"--output_dir {out}: cannot create or lock it: {e.strerror or e}")
        if all_reduce_sum([error is not None], dist)[0] > 0:
            raise error or DirLockedError(f"{out}: rank 0 could not lock the output dir; see its log")
        try:
            yield
        except BaseException:
            if dist.is_main and created:
                _remove_if_only_lock(out)
            raise


def _remove_if_only_lock(out: str) -> None:
    """Remove ``out`` if it holds nothing but the lock file (a start that failed before writing anything)."""
    try:
        if os.listdir(out) == [LOCK_NAME]:
            os.unlink(os.path.join(out, LOCK_NAME))
            os.rmdir(out)
    except OSError:
        pass  # something else appeared there: leave it


def training_config(cfg: ModelConfig) -> Dict[str, Any]:
    """The merged config as ``{"optim_conf.lr": 0.0002, ...}`` (every field, defaults included; the FunASR keys
    funasr-lite keeps but does not use are left out: changing them changes nothing)."""
    conf = cfg.to_dict(full=True)
    ignored = set(cfg.extra) | {f"{s}.{k}" for s in SECTIONS for k in getattr(cfg, s).extra}
    flat: Dict[str, Any] = {}
    for key, value in conf.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return {k: v for k, v in flat.items() if k not in ignored}


class _Missing:
    def __repr__(self) -> str:
        return "(not set)"


_MISSING = _Missing()


def check_resume_config(saved: Optional[Mapping[str, Any]], current: Mapping[str, Any], path: str) -> None:
    """Compare the config ``path`` (checkpoint.pb) was trained with to this run's.

    Raises:
        ConfigError: a key outside RUNTIME_KEYS differs; names every such key, its old and new value and the way out.
    """
    if saved is None:
        logger.warning("%s does not record its config (an older funasr-lite wrote it): changes are not checked", path)
        return
    diff = {k: (saved.get(k, _MISSING), current.get(k, _MISSING)) for k in sorted(set(saved) | set(current))}
    diff = {k: v for k, v in diff.items() if v[0] != v[1]}
    refused = {k: v for k, v in diff.items() if k not in RUNTIME_KEYS}
    if refused:
        changes = "; ".join(f"{k} changed from {old!r} to {new!r}" for k, (old, new) in refused.items())
        raise ConfigError(
            f"{changes} since the run in {os.path.dirname(path)} started (its optimizer/scheduler/data state would "
            f"not follow). Resume with the old value{'s' if len(refused) > 1 else ''}, or start a new --output_dir"
        )
    for k, (old, new) in diff.items():
        logger.info("resume: %s changed from %r to %r; this run uses %r", k, old, new, new)
