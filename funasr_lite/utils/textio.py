"""Reading whole files, with errors that name the file, the line and what the file is for; a FIFO, device or
socket is refused before it is opened (opening a FIFO blocks until a writer comes)."""

import os
import stat
from typing import Optional, Type

from funasr_lite.errors import FunasrLiteError

__all__ = ["special_file_kind", "read_bytes", "read_utf8"]

_FILE_KINDS = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def special_file_kind(path: str) -> Optional[str]:
    """What ``path`` is when it exists but is neither a regular file nor a directory
    (e.g. ``"named pipe (FIFO)"``), else None."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((name for test, name in _FILE_KINDS if test(mode)), "special file")


def read_bytes(path: str, what: str, error: Type[FunasrLiteError]) -> bytes:
    """The bytes of ``path``; ``error`` (naming the file and ``what`` it is) when it is missing, a directory,
    a FIFO/device/socket or unreadable."""
    kind = special_file_kind(path)
    if kind is not None:
        raise error(f"{path}: is a {kind}, not a regular file; expected a {what} file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise error(f"{path}: no such file: the {what} file was not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a {what} file") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what} file: {e.strerror or e}") from None


def read_utf8(path: str, what: str, error: Type[FunasrLiteError]) -> str:
    """The text of ``path`` (a UTF-8 BOM is dropped).

    Raises:
        ``error`` (a FunasrLiteError subclass): as :func:`read_bytes`, or the file is not UTF-8 (naming the line
        and the first bad byte); ``what`` says what the file is, e.g. "token list".
    """
    data = read_bytes(path, what, error)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(f"{path}:{line}: invalid UTF-8 byte 0x{data[e.start]:02x}; the {what} file must be UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text
