"""The ranks' environment: torchrun's variables, the --nj command line, log lines naming the rank."""

import logging
import sys

import pytest

from funasr_lite.decode.launch import TorchrunEnv, rank_log_prefix, script_command, torchrun_env, under_torchrun
from funasr_lite.errors import ConfigError


def test_torchrun_env_reads_and_checks_the_variables(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    assert torchrun_env() == TorchrunEnv(1, 0, 0) and not under_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert torchrun_env() == TorchrunEnv(3, 2, 0) and under_torchrun()
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ConfigError, match="RANK=3 WORLD_SIZE=3"):
        torchrun_env()
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ConfigError, match="RANK='two' is not an integer"):
        torchrun_env()


def test_nj_runs_only_this_process_own_command_line(monkeypatch, tmp_path):
    script = tmp_path / "infer.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script), "--nj", "2", "--data_dir", "d"])
    assert script_command(None) == [str(script), "--nj", "2", "--data_dir", "d"]
    assert script_command(["--data_dir", "d"]) == [str(script), "--nj", "2", "--data_dir", "d"]  # a subcommand's
    with pytest.raises(ConfigError, match="call it from the command line, or use torchrun"):
        script_command(["--nj", "2", "--data_dir", "other"])  # called from Python with other arguments
    monkeypatch.setattr(sys, "argv", ["-c", "--nj", "2"])
    with pytest.raises(ConfigError, match="needs a script file"):
        script_command(None)


def test_log_lines_name_the_rank():
    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    root = logging.getLogger()
    handler = Keep()
    root.addHandler(handler)
    try:
        with rank_log_prefix(TorchrunEnv(4, 3, 1)):
            logging.getLogger("funasr_lite.test").warning("shard %s done", "4-3")
        logging.getLogger("funasr_lite.test").warning("after")
    finally:
        root.removeHandler(handler)
    assert lines == ["[rank 3/4] shard 4-3 done", "after"]
