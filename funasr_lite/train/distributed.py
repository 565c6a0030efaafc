"""Device selection and torchrun-style DDP setup.

A single process (``python finetune.py``) never touches ``torch.distributed``. Under
``torchrun --nproc_per_node N`` the environment carries ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; each process then joins the default process group with ``init_method="env://"``
(``nccl`` on GPU, ``gloo`` on CPU) and uses ``cuda:LOCAL_RANK`` via ``torch.cuda.set_device``,
never by rewriting ``CUDA_VISIBLE_DEVICES``. There is no ``--local_rank`` flag to parse.
"""

import logging
import os
from dataclasses import dataclass
from typing import List, Sequence

import torch

from funasr_lite.errors import ConfigError
from funasr_lite.utils.device import resolve_device as check_device

__all__ = ["DistInfo", "resolve_device", "setup_distributed", "cleanup_distributed", "all_reduce_sum", "barrier"]

logger = logging.getLogger(__name__)


@dataclass
class DistInfo:
    """Where this process runs and which part of the job it is."""

    # global rank (0 writes all outputs)
    rank: int = 0
    # number of processes; 1 = plain single process, torch.distributed untouched
    world_size: int = 1
    # the torch device this process trains on
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from e


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` if CUDA is available else ``cpu``; ``cuda`` -> ``cuda:<local_rank>``.

    Raises:
        ConfigError: unknown device string, or CUDA asked for but not available.
    """
    return check_device(device, local_rank)


def setup_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment, pick the device and, when ``WORLD_SIZE > 1``, join the process group."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    dev = resolve_device(device, local_rank if world > 1 else 0)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    info = DistInfo(rank=rank, world_size=world, device=dev)
    if world > 1:
        import torch.distributed as dist

        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
        logger.info("DDP: rank %d/%d (local %d) on %s, backend %s", rank, world, local_rank, dev, backend)
    return info


def cleanup_distributed(info: DistInfo) -> None:
    """Leave the process group (no-op for a single process)."""
    if info.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def all_reduce_sum(values: Sequence[float], info: DistInfo) -> List[float]:
    """Element-wise sum over ranks (identity for one process). Ranks agree on 0/1 flags with it: a flag
    set on any rank sums to > 0."""
    if not info.distributed:
        return [float(v) for v in values]
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def barrier(info: DistInfo) -> None:
    """Wait for all ranks (no-op for one process)."""
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()
