"""The torch device: one rule and one validation for every entry point (infer, infer_after_finetune, finetune,
:func:`funasr_lite.load_model`)."""

from typing import Optional

__all__ = ["default_device", "resolve_device", "resolve_dtype"]


def default_device() -> str:
    """``"cuda"`` when a GPU is usable, else ``"cpu"`` (torch is imported only when this is called)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _available() -> str:
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = ", ".join(f"cuda:{i}" for i in range(n)) if n else "no GPU (CUDA is not available)"
    return f"available: auto, cpu, {gpus}"


def resolve_device(device: Optional[str] = None, local_rank: int = 0):
    """Check a ``--device`` value and return its ``torch.device``.

    ``None``, ``""`` or ``auto``: ``cuda:<local_rank>`` when a GPU is usable, else ``cpu``; ``cuda`` (or
    ``gpu``): ``cuda:<local_rank>``; ``cpu``; ``cuda:N``.

    Raises:
        ConfigError: not such a string, CUDA asked for but not available, or ``cuda:N`` beyond the visible GPUs;
            the message lists the devices that are available.
    """
    import torch

    from funasr_lite.errors import ConfigError

    if device is not None and not isinstance(device, str):
        raise ConfigError(f"--device {device!r}: not a device name; {_available()}")
    name = (device or "").strip().lower() or "auto"
    if name == "auto":
        name = default_device()
    if name in ("gpu", "cuda"):
        name = f"cuda:{local_rank}"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index not in (None, 0)):
        raise ConfigError(
            f"--device {device!r} is not a device funasr-lite runs on (auto, cpu, cuda or cuda:N); {_available()}"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {device!r}: CUDA is not available on this machine (available: auto, cpu); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device!r}: there is no GPU {dev.index}; {_available()}")
    return dev


def resolve_dtype(name: str, device):
    """The torch dtype of a ``--dtype`` value (``fp32``, ``bf16``, ``fp16``) for decoding on ``device``.

    Raises:
        ConfigError: an unknown name, or fp16 on a CPU (half-precision matmuls and convolutions on CPU are
            slow and partly missing; use bf16 or fp32 there).
    """
    import torch

    from funasr_lite.errors import ConfigError

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in dtypes:
        raise ConfigError(f"--dtype {name!r}: must be one of {', '.join(dtypes)}")
    if name == "fp16" and torch.device(device).type != "cuda":
        raise ConfigError(f"--dtype fp16 needs a GPU (device is {device}); on CPU use --dtype bf16 or fp32")
    return dtypes[name]
