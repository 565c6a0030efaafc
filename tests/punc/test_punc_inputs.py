"""Odd punctuation inputs and dirs found by an outside pass: typed errors naming the file and key, or a clear
TypeError/ValueError for a misused API, never a crash further on or a silently different call."""

import json
import os
import shutil

import pytest

from funasr_lite.errors import HubError, ModelDirError
from funasr_lite.punc import load_punc


@pytest.fixture(scope="module")
def punc(punc_dirs):
    return load_punc(punc_dirs["char"], device="cpu")


def test_batch_of_one_str_is_refused(punc):
    """A str is a sequence of characters: it used to be punctuated character by character as many texts."""
    with pytest.raises(TypeError, match="sequence of texts, got one str"):
        punc.punctuate_batch("今天天气")


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, "2", None, True, float("nan")])
def test_bad_batch_size_is_a_clear_error(punc, batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        punc.punctuate_batch(["今天天气", "明天"], batch_size=batch_size)


@pytest.mark.parametrize(
    "metas, key",
    [
        ([1], r"file_path_metas must be a JSON object, got \[1\]"),
        ({"config": 5}, r"file_path_metas.config must be a file name .*got 5"),
        ({"tokenizer_conf": "tokens.json"}, r"file_path_metas.tokenizer_conf must be a JSON object"),
        ({"tokenizer_conf": {"token_list": ["a"]}}, r"file_path_metas.tokenizer_conf.token_list must be a file name"),
    ],
)
def test_bad_file_path_metas_names_configuration_json_and_key(punc_dirs, tmp_path, metas, key):
    d = shutil.copytree(punc_dirs["char"], tmp_path / "punc")
    path = os.path.join(d, "configuration.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"framework": "pytorch", "file_path_metas": metas}, f)
    with pytest.raises(ModelDirError, match=rf"^{path}: {key}"):
        load_punc(str(d), device="cpu")


def test_configuration_json_fifo_is_an_error_not_ignored(punc_dirs, tmp_path):
    d = shutil.copytree(punc_dirs["char"], tmp_path / "punc")
    os.remove(os.path.join(d, "configuration.json"))
    os.mkfifo(os.path.join(d, "configuration.json"))
    with pytest.raises(ModelDirError, match=r"configuration.json: is a named pipe"):
        load_punc(str(d), device="cpu")


def test_jieba_user_dict_not_utf8_names_the_file(punc_dirs, tmp_path):
    d = shutil.copytree(punc_dirs["jieba"], tmp_path / "punc")
    path = os.path.join(d, "jieba_usr_dict")
    with open(path, "wb") as f:
        f.write(b"\xff\xfe abc 3\n")
    with pytest.raises(ModelDirError, match=rf"^{path}: cannot read the jieba user dictionary"):
        load_punc(str(d), device="cpu")


@pytest.mark.parametrize("model", [b"/tmp", None, ["ct-punc"]])
def test_model_that_is_not_a_str_or_path_is_a_hub_error(model):
    with pytest.raises(HubError, match=r"expected a model dir or a ModelScope id \(a str\), got"):
        load_punc(model, device="cpu")


def test_model_as_path(punc_dirs, tmp_path):
    from pathlib import Path

    assert load_punc(Path(punc_dirs["char"]), device="cpu").punctuate("今天").text
    with pytest.raises(HubError, match="no such directory"):
        load_punc(tmp_path / "nonexistent", device="cpu")


@pytest.mark.parametrize("text", ["今天\ud800天气", "\udcff"])
def test_lone_surrogate_is_a_clear_error(punc, text):
    """FunASR raises UnicodeEncodeError from inside its one-byte test, naming the unit's position."""
    with pytest.raises(ValueError, match=r"lone surrogate .* at character \d+"):
        punc.punctuate(text)
    with pytest.raises(ValueError, match="lone surrogate"):
        punc.punctuate_batch(["今天", text])


@pytest.mark.parametrize("split_size", [1, 2.5, "20", True])
def test_bad_split_size_is_a_config_error(punc_dirs, split_size):
    from funasr_lite.errors import ConfigError
    from funasr_lite.punc.api import PuncModel
    from funasr_lite.punc.model_dir import detect_punc_dir

    with pytest.raises(ConfigError, match=r"split_size=.*: must be an integer >= 2"):
        PuncModel(detect_punc_dir(punc_dirs["char"]), device="cpu", split_size=split_size)


def test_integer_weights_load_as_funasr_loads_them(punc_dirs, funasr_punc, tmp_path):
    """An integer-typed checkpoint tensor: FunASR's copying load casts it; the meta-device load (assign) failed
    inside torch with a RuntimeError."""
    import torch

    d = shutil.copytree(punc_dirs["char"], tmp_path / "punc")
    path = os.path.join(d, "model.pt")
    state = torch.load(path, weights_only=True)
    torch.save({k: (v * 4).round().long() if k == "embed.weight" else v for k, v in state.items()}, path)
    text = "今天是二零一三年三月五日hello world下午三点开会"
    got, ref = load_punc(str(d), device="cpu").punctuate(text), funasr_punc(str(d)).generate(input=text)[0]
    assert (got.text, got.punc_ids) == (ref["text"], ref["punc_array"].tolist())
