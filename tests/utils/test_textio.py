"""funasr_lite.utils.textio: every whole-file read names the file and refuses FIFOs before opening them."""

import os

import pytest

from funasr_lite.errors import ConfigError, ModelDirError
from funasr_lite.utils.textio import read_bytes, read_utf8


def test_read_utf8_names_file_line_and_what(tmp_path):
    good = tmp_path / "tokens.txt"
    good.write_bytes("\ufeffa\nb\n".encode("utf-8"))
    assert read_utf8(str(good), "token list", ModelDirError) == "a\nb\n"  # the BOM is dropped
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(ModelDirError, match=r"bad\.txt:2: invalid UTF-8 byte 0xe9; the token list file"):
        read_utf8(str(bad), "token list", ModelDirError)
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file: the config file was not found"):
        read_utf8(str(tmp_path / "nope.yaml"), "config", ConfigError)
    with pytest.raises(ConfigError, match=r"is a directory, expected a config file"):
        read_bytes(str(tmp_path), "config", ConfigError)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(ConfigError, match=r"config\.yaml: is a named pipe \(FIFO\), not a regular file"):
        read_utf8(str(fifo), "config", ConfigError)
