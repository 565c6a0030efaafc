"""Atomic file writes: a reader never sees a half-written output or checkpoint.

Each writer writes to a temporary file in the same directory, flushes and
fsyncs it, then renames it over the target (``os.replace`` is atomic on POSIX).
"""

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
from typing import IO, Any, Iterable, Iterator, Optional


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    if os.path.isdir(path):  # else the rename fails naming the temporary file, not the path asked for
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        binary = "b" in mode
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str, obj: Any, indent: int = 4) -> None:
    """Write ``obj`` as JSON (UTF-8, non-ASCII kept) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def atomic_copy(src: str, dst: str) -> None:
    """Copy the file ``src`` to ``dst`` atomically (streamed in 4 MB blocks)."""
    with open(src, "rb") as fin, atomic_open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 22)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` atomically: serialise in memory, then write+rename."""
    import torch  # here, not at module level: the CER scorer imports this module and must not load torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_open(path, "wb") as f:
        f.write(buf.getbuffer())


def same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name the same existing file (through symlinks, ``..`` or hard links)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def output_clobbers_input(out: str, inputs: Iterable[Optional[str]]) -> Optional[str]:
    """The first of ``inputs`` that writing ``out`` would overwrite, else None.

    A tool's output path given as one of its own inputs (``compute-cer REF HYP REF``) would
    otherwise atomically replace that input with the output: the input is lost.
    """
    return next((inp for inp in inputs if inp and same_file(out, inp)), None)
