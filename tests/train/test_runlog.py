"""train.log, the config summary and config.provenance.txt (funasr_lite.train.runlog)."""

import logging
import os

import pytest

from funasr_lite.config.merge import flags_layer, merge_layers, model_dir_layers
from funasr_lite.config.schema import ModelConfig
from funasr_lite.hub.model_dir import detect_model_dir
from funasr_lite.train.runlog import LOG_NAME, PROVENANCE_NAME, RunLog, config_summary, write_provenance

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_MODEL = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo", "model"
)
log = logging.getLogger("funasr_lite.test_runlog")


@pytest.fixture(autouse=True)
def _info(caplog):
    caplog.set_level(logging.INFO, logger="funasr_lite")


def test_lines_before_open_are_kept_and_nothing_is_written_without_open(tmp_path):
    with RunLog(str(tmp_path), is_main=True):
        log.info("checking the data")
    assert os.listdir(tmp_path) == []  # a start that failed its checks writes no train.log
    with RunLog(str(tmp_path), is_main=True) as run_log:
        log.info("first line")
        log.debug("not at INFO")
        run_log.open()
        log.warning("after open")
    log.info("after the run")  # the handler is gone
    text = (tmp_path / LOG_NAME).read_text(encoding="utf-8")
    assert "INFO first line" in text and "WARNING after open" in text
    assert "checking the data" not in text and "not at INFO" not in text and "after the run" not in text
    assert text.index("first line") < text.index("after open")
    with RunLog(str(tmp_path), is_main=True) as run_log:  # a resume appends
        run_log.open()
        log.info("resumed")
    lines = (tmp_path / LOG_NAME).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[-1].endswith("INFO resumed")


def test_only_rank0_writes(tmp_path):
    with RunLog(str(tmp_path), is_main=False) as run_log:
        log.info("rank 1")
        run_log.open()
    assert not (tmp_path / LOG_NAME).exists()


def _cfg(md, *layers):
    return ModelConfig.from_dict(merge_layers(model_dir_layers(md, "finetune") + list(layers)), source="t")


def test_summary_lists_only_the_keys_not_from_the_model_dir(tmp_path):
    md = detect_model_dir(DEMO_MODEL)
    cfg = _cfg(
        md,
        ("recipe defaults", flags_layer({"max_epoch": 3, "lr": 0.002})),
        ("command line", flags_layer({"batch_bins": 1500})),
    )
    text = config_summary(cfg, md.root, md.finetune_yaml)
    lines = text.splitlines()
    assert lines[0].startswith(f"config: the one of {md.root} with these changes")
    assert "  max_epoch: 3  # recipe defaults" in lines and "  lr: 0.002  # recipe defaults" in lines
    assert "  batch_bins: 1500  # command line" in lines
    assert len(lines) <= 10 < len(cfg.describe().splitlines())  # short; the whole config is 100+ lines
    assert "no key changed" in config_summary(_cfg(md), md.root, md.finetune_yaml)
    path = write_provenance(cfg, str(tmp_path))
    assert os.path.basename(path) == PROVENANCE_NAME
    full = open(path, encoding="utf-8").read()
    assert cfg.describe() in full and "max_epoch: 3  # recipe defaults" in full and "config.yaml:" in full
