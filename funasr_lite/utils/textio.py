"""Reading a whole UTF-8 text file, with errors that name the file, the line and what the file is for."""

from typing import Type

from funasr_lite.errors import FunasrLiteError

__all__ = ["read_utf8"]


def read_utf8(path: str, what: str, error: Type[FunasrLiteError]) -> str:
    """The text of ``path`` (a UTF-8 BOM is dropped).

    Raises:
        ``error`` (a FunasrLiteError subclass): the file is missing, a directory, unreadable, or not UTF-8
        (naming the line and the first bad byte); ``what`` says what the file is, e.g. "token list".
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise error(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a {what} file") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what} file: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(f"{path}:{line}: invalid UTF-8 byte 0x{data[e.start]:02x}; the {what} file must be UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text
