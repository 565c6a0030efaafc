"""Starting a decoding job's ranks: torchrun's environment (:func:`torchrun_env`), log lines that name
the rank (:func:`rank_log_prefix`) and ``--nj N``
(:func:`launch_local`), which runs the same command as N local ranks with torchrun's own elastic launcher,
as FunASR 0.x's ``njob`` ran N jobs. What each rank does is :mod:`funasr_lite.decode.sharding`.

This module imports no torch until :func:`launch_local` runs.
"""

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence

from funasr_lite.errors import ConfigError

__all__ = ["TorchrunEnv", "torchrun_env", "under_torchrun", "rank_log_prefix", "script_command", "launch_local"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TorchrunEnv:
    """Which process of a torchrun job this is (world 1: not under torchrun)."""

    # number of processes (WORLD_SIZE)
    world: int = 1
    # global rank (RANK); rank 0 merges the parts
    rank: int = 0
    # rank on this machine (LOCAL_RANK): the GPU index on a GPU machine
    local_rank: int = 0


def torchrun_env() -> TorchrunEnv:
    """Read ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (set by torchrun; absent: one process).

    Raises:
        ConfigError: a value is not an integer, or the rank is outside the world.
    """
    values = {}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        text = os.environ.get(name, "")
        try:
            values[name] = int(text) if text.strip() else (1 if name == "WORLD_SIZE" else 0)
        except ValueError:
            raise ConfigError(f"environment variable {name}={text!r} is not an integer") from None
    env = TorchrunEnv(values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"])
    if env.world < 1 or not 0 <= env.rank < env.world or env.local_rank < 0:
        raise ConfigError(f"bad torchrun environment: RANK={env.rank} WORLD_SIZE={env.world}")
    return env


def under_torchrun() -> bool:
    """True in a process that torchrun started (even with one rank)."""
    return torchrun_env().world > 1 or "TORCHELASTIC_RUN_ID" in os.environ


class _Prefix(logging.Filter):
    """Prefix every log message with the rank (once per record)."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "funasr_lite_rank", False):
            record.msg = f"{self.prefix}{record.msg}"
            record.funasr_lite_rank = True
        return True


@contextlib.contextmanager
def rank_log_prefix(env: TorchrunEnv) -> Iterator[None]:
    """Prefix the messages of the root logger's handlers with ``[rank r/world] `` for the block."""
    handlers = list(logging.getLogger().handlers)
    prefix_filter = _Prefix(f"[rank {env.rank}/{env.world}] ")
    for handler in handlers:
        handler.addFilter(prefix_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(prefix_filter)


def script_command(argv: Optional[Sequence[str]]) -> List[str]:
    """The command line (script and arguments) that started this process, for :func:`launch_local`.

    ``argv`` is what the command-line parser was given (None: ``sys.argv[1:]``).

    Raises:
        ConfigError: the parser was not given this process's own arguments (a call from Python), or there
            is no script file to run again.
    """
    own = list(sys.argv[1:])
    if argv is not None and (len(argv) > len(own) or own[len(own) - len(argv) :] != list(argv)):
        raise ConfigError(
            "--nj starts this command again in N processes; call it from the command line, or use torchrun"
        )
    if not sys.argv or not os.path.isfile(sys.argv[0]):
        raise ConfigError("--nj needs a script file to run again (python infer.py ...); use torchrun instead")
    return [sys.argv[0], *own]


def launch_local(nproc: int, command: Sequence[str], ncpu: int) -> int:
    """Run ``command`` (a Python script and its arguments) as ``nproc`` local ranks with torchrun's elastic
    launcher (``torchrun --standalone --nproc_per_node nproc``), each with ``OMP_NUM_THREADS=ncpu``.

    Returns rank 0's exit status when it failed with one, 128 + the signal when this launcher was stopped
    (Ctrl-C: torchrun stops the ranks, rank 0 merges what is complete), else 1 when a rank failed.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    os.environ.setdefault("OMP_NUM_THREADS", str(ncpu))
    args = parse_args(["--standalone", "--nproc_per_node", str(nproc), "--max_restarts", "0", *command])
    quiet = logging.getLogger("torch.distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # torchrun's banner and failure lines: the ranks and this function report
    try:
        torchrun(args)
    except ChildFailedError as e:
        failures = getattr(e, "failures", {}) or {}
        code = getattr(failures.get(0), "exitcode", -1)
        if code > 0:
            return code
        logger.error(
            "rank(s) %s failed (exit status %s)",
            ", ".join(map(str, sorted(failures))),
            {r: getattr(f, "exitcode", "?") for r, f in sorted(failures.items())},
        )
        return 1
    except SignalException as e:
        print(f"stopped by signal {int(e.sigval)}", file=sys.stderr)
        return 128 + int(e.sigval)
    finally:
        quiet.setLevel(level)
    return 0
