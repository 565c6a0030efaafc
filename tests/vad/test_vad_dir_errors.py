"""Odd FSMN-VAD dirs, configs and detector options found by an outside pass: each is a typed error naming the
file and key (or, where FunASR crashes on arithmetic, its limit), never a crash further on or a silent change.

The dir has a small encoder with funasr-lite's own random weights (FunASR's parameter names; no output is
compared here, and the errors do not depend on the size), so the module does not import funasr."""

import copy
import json
import os

import pytest
import torch
import yaml

from funasr_lite.errors import CheckpointError, ConfigError, HubError, ModelDirError
from funasr_lite.vad import load_vad
from funasr_lite.vad.config import VadModelConf
from funasr_lite.vad.detector import SegmentDetector

SMALL_ENCODER = dict(input_affine_dim=16, linear_dim=16, proj_dim=8, output_affine_dim=16, output_dim=4)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    from vad_dirs import VAD_CONFIG, write_vad_dir

    from funasr_lite.vad.config import VadConfig
    from funasr_lite.vad.model import VadModel

    config = copy.deepcopy(VAD_CONFIG)
    config["encoder_conf"].update(SMALL_ENCODER)
    torch.manual_seed(0)
    model = VadModel(VadConfig.from_dict(config, "<small>"), None)
    return write_vad_dir(str(tmp_path_factory.mktemp("vad_small")), model, torch.zeros(400), torch.ones(400), config)


@pytest.fixture()
def vad_dir(small_dir, tmp_path):
    out = tmp_path / "vad"
    out.mkdir()
    for name in os.listdir(small_dir):
        (out / name).write_bytes((open(os.path.join(small_dir, name), "rb")).read())
    return out


def test_small_dir_loads(vad_dir):
    assert isinstance(load_vad(str(vad_dir), device="cpu").segments(0.1 * torch.randn(16000)), list)


@pytest.mark.parametrize(
    "metas, key",
    [
        ([1], r"file_path_metas must be a JSON object, got \[1\]"),
        ({"config": 5}, r"file_path_metas.config must be a file name .*got 5"),
        ({"init_param": ""}, r"file_path_metas.init_param must be a file name"),
        ({"frontend_conf": "am.mvn"}, r"file_path_metas.frontend_conf must be a JSON object"),
    ],
)
def test_bad_file_path_metas_names_configuration_json_and_key(vad_dir, metas, key):
    path = vad_dir / "configuration.json"
    path.write_text(json.dumps({"framework": "pytorch", "file_path_metas": metas}))
    with pytest.raises(ModelDirError, match=rf"^{path}: {key}"):
        load_vad(str(vad_dir), device="cpu")


@pytest.mark.parametrize("kind", ["fifo", "directory", "dangling"])
def test_am_mvn_that_is_not_a_file_is_an_error_not_missing(vad_dir, kind):
    """A FIFO / directory / dangling link am.mvn used to be taken as "no am.mvn": features silently unnormalised."""
    path = vad_dir / "am.mvn"
    path.unlink()
    {"fifo": os.mkfifo, "directory": os.mkdir, "dangling": lambda p: os.symlink("/nonexistent/am.mvn", p)}[kind](path)
    with pytest.raises(ModelDirError, match=rf"^{path}: is a .*(FIFO|directory|dangling).*am.mvn"):
        load_vad(str(vad_dir), device="cpu")


def test_configuration_json_fifo_is_an_error_not_ignored(vad_dir):
    os.mkfifo(vad_dir / "configuration.json")
    with pytest.raises(ModelDirError, match=r"configuration.json: is a named pipe"):
        load_vad(str(vad_dir), device="cpu")


@pytest.mark.parametrize("value", [0, False, "", []])
def test_section_that_is_not_a_mapping_is_an_error_even_when_falsy(vad_dir, value):
    path = vad_dir / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["model_conf"] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError, match=r"model_conf must be a mapping"):
        load_vad(str(vad_dir), device="cpu")


def test_negative_speech_2_noise_ratio_gives_the_limit_not_overflow():
    """With a large negative ratio the silence term exp(ratio * log p) overflows (FunASR raises
    OverflowError); its limit +inf makes every frame silence."""
    frames = 300
    p_sil, db = [0.01] * frames, [0.0] * frames
    assert SegmentDetector(VadModelConf()).detect(p_sil, db, final=True) == [[0, frames * 10]]
    assert SegmentDetector(VadModelConf(speech_2_noise_ratio=-1e6)).detect(p_sil, db, final=True) == []


@pytest.mark.parametrize("model", [b"/tmp", None, 5, ["fsmn-vad"]])
def test_model_that_is_not_a_str_or_path_is_a_hub_error(model):
    with pytest.raises(HubError, match=r"expected a model dir or a ModelScope id \(a str\), got"):
        load_vad(model, device="cpu")


def test_model_as_path(vad_dir, tmp_path):
    assert load_vad(vad_dir, device="cpu").sample_rate == 16000
    with pytest.raises(HubError, match="no such directory"):  # was AttributeError: 'PosixPath' has no 'count'
        load_vad(tmp_path / "nonexistent", device="cpu")


def test_state_dict_with_a_non_str_key_is_a_checkpoint_error(vad_dir):
    path = vad_dir / "model.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, 5: torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=rf"^{path}: does not hold a state_dict of tensors"):
        load_vad(str(vad_dir), device="cpu")


def test_numpy_scalar_overrides_count_as_their_value(vad_dir):
    """FunASR takes np.int64(500) as 500; the strict check refused it as "expected an integer"."""
    import numpy as np

    vad = load_vad(str(vad_dir), device="cpu", max_end_silence_time=np.int64(500), speech_noise_thres=np.float32(0.5))
    mc = vad.config.model_conf
    assert (mc.max_end_silence_time, mc.speech_noise_thres) == (500, 0.5) and type(mc.max_end_silence_time) is int
    with pytest.raises(ConfigError, match="must be a finite number"):
        load_vad(str(vad_dir), device="cpu", speech_noise_thres=np.float32("nan"))
    with pytest.raises(ConfigError, match="expected an integer"):
        load_vad(str(vad_dir), device="cpu", max_end_silence_time=np.bool_(True))
