"""Handing freed heap memory back to the operating system between the stages of a long job.

glibc's malloc keeps the memory a freed tensor leaves in the middle of its heap (only the top of the heap is
returned on its own). In a long-audio job the VAD's 60 s chunks and the ASR forward passes free tens of MB
each, interleaved with small long-lived allocations, so the process's RSS ratchets up by what the largest
stage once freed. ``malloc_trim(0)`` returns those free pages (``MADV_DONTNEED``); the next allocation maps
them again. Measured on the 5 + 8 minute ``tools/bench_long.py`` job: peak RSS -25 MiB, RSS between
recordings -100 MiB, no measurable time (a trim takes well under a millisecond).
"""

import ctypes
import ctypes.util
import sys
from typing import Callable, Optional

__all__ = ["release_free_memory"]


def _load_trim() -> Optional[Callable[[int], int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS where the C library can (glibc); True when it could."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
