"""Optimizers and learning-rate schedules for finetuning, with FunASR's names and formulas.

``optim``: ``adam`` | ``adamw`` | ``sgd`` (``optim_conf`` holds the optimizer's keyword
arguments, e.g. ``lr``, ``weight_decay``, ``betas``).

``scheduler``: ``warmuplr`` | ``none``. WarmupLR is FunASR's schedule, stepped once per
optimizer update::

    lr(step) = base_lr * warmup_steps**0.5 * min(step**-0.5, step * warmup_steps**-1.5)

with ``step`` counted from 1 for the first update. During warmup this is
``base_lr * step / warmup_steps``; the peak ``base_lr`` is reached at
``step == warmup_steps``, after which it decays as ``step**-0.5``.

Both schedulers are ``torch.optim.lr_scheduler.LRScheduler`` subclasses, so their
``state_dict()`` / ``load_state_dict()`` (plain ints and floats) resume exactly.
"""

from typing import Any, Dict, Iterable, List, Optional

import torch
from torch.optim.lr_scheduler import LRScheduler

from funasr_lite.errors import ConfigError

__all__ = ["WarmupLR", "ConstantLR", "build_optimizer", "build_scheduler", "warmup_lr_value", "OPTIMIZERS"]

# name -> optimizer class; keys of ``optim_conf`` are passed to it unchanged
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


def warmup_lr_value(base_lr: float, step: int, warmup_steps: float) -> float:
    """The WarmupLR learning rate at update ``step`` (1-based)."""
    return base_lr * warmup_steps**0.5 * min(step**-0.5, step * warmup_steps**-1.5)


class _ResumableLR(LRScheduler):
    """An LRScheduler whose ``load_state_dict`` also puts the restored lr into the optimizer."""

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group, lr in zip(self.optimizer.param_groups, self.get_last_lr()):
            group["lr"] = lr


class WarmupLR(_ResumableLR):
    """FunASR's WarmupLR: linear warmup to the optimizer's lr, then inverse square-root decay.

    Like FunASR's class, constructing it already sets the lr of update 1
    (``base_lr / warmup_steps``); each ``step()`` after an optimizer update moves
    to the next update's lr.

    Args:
        optimizer: the wrapped optimizer; its param groups' ``lr`` are the peak values.
        warmup_steps: number of updates to reach the peak (> 0).
        last_epoch: index of the last update done (-1 = fresh start).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: float = 25000, last_epoch: int = -1):
        if not warmup_steps or warmup_steps <= 0:
            raise ValueError(f"warmup_steps must be > 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        """The lr of update ``last_epoch + 1`` for every param group."""
        step = self.last_epoch + 1
        return [warmup_lr_value(base, step, self.warmup_steps) for base in self.base_lrs]


class ConstantLR(_ResumableLR):
    """``scheduler: none``: the optimizer's lr, unchanged (kept as a scheduler for one code path)."""

    def get_lr(self) -> List[float]:
        return list(self.base_lrs)


# optimizers built with fused=True (one kernel over all parameters) unless optim_conf sets fused or foreach: the
# same update; on CPU torch's default is a per-parameter loop (~3% of a tiny Paraformer's training step)
FUSED = ("adam", "adamw")


def _fusable(params: List[Any]) -> bool:
    """True when torch's fused Adam takes these parameters: float32/16 tensors, all on the CPU or all on CUDA."""
    tensors = [p["params"] if isinstance(p, dict) else p for p in params]
    flat = [t for p in tensors for t in (p if isinstance(p, (list, tuple)) else [p])]
    devices = {t.device.type for t in flat}
    return bool(flat) and len(devices) == 1 and devices <= {"cpu", "cuda"} and all(t.is_floating_point() for t in flat)


def build_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], conf: Optional[Dict[str, Any]] = None
) -> torch.optim.Optimizer:
    """Build the optimizer ``name`` (``adam``, ``adamw`` or ``sgd``, case-insensitive) over ``params``, with
    ``conf`` (FunASR's ``optim_conf``) as its keyword arguments; adam/adamw are fused (see ``FUSED``).

    Raises:
        ConfigError: unknown optimizer name, unknown or invalid ``optim_conf`` key.
    """
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ConfigError(f"optim: unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    kwargs = dict(conf or {})
    if "lr" not in kwargs:
        raise ConfigError("optim_conf: lr is not set (give --lr or optim_conf.lr)")
    if "betas" in kwargs and isinstance(kwargs["betas"], list):
        kwargs["betas"] = tuple(kwargs["betas"])
    params = list(params)
    if key in FUSED and "fused" not in kwargs and "foreach" not in kwargs and _fusable(params):
        kwargs["fused"] = True
    try:
        return OPTIMIZERS[key](params, **kwargs)
    except TypeError as e:
        raise ConfigError(f"optim_conf for {key}: {e}") from e
    except ValueError as e:
        raise ConfigError(f"optim_conf for {key}: invalid value: {e}") from e


def build_scheduler(
    name: Optional[str], optimizer: torch.optim.Optimizer, conf: Optional[Dict[str, Any]] = None
) -> LRScheduler:
    """Build the scheduler ``name`` (``warmuplr``, or ``none`` = None = ``""``; case-insensitive) of ``optimizer``;
    ``conf`` (``scheduler_conf``) is ``{"warmup_steps": N}`` for warmuplr and must be empty for none.

    Raises:
        ConfigError: unknown scheduler or ``scheduler_conf`` key, bad warmup_steps.
    """
    key = "none" if name in (None, "") else str(name).lower()
    allowed = {"warmuplr": ["warmup_steps"], "none": []}.get(key)
    if allowed is None:
        raise ConfigError(f"scheduler: unknown scheduler {name!r}; choose one of warmuplr, none")
    unknown = sorted(set(conf or {}) - set(allowed))
    if unknown:
        raise ConfigError(f"scheduler_conf ({key}): unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    if key == "none":
        return ConstantLR(optimizer)
    warmup = (conf or {}).get("warmup_steps", 25000)
    if not isinstance(warmup, (int, float)) or isinstance(warmup, bool) or warmup <= 0:
        raise ConfigError(f"scheduler_conf.warmup_steps must be a positive number, got {warmup!r}")
    return WarmupLR(optimizer, warmup_steps=warmup)
