"""Bad punctuation model dirs and configs: each error names the file (and key/line) and the problem."""

import json
import os
import shutil

import pytest
import torch
import yaml

from funasr_lite.errors import CheckpointError, ConfigError, HubError, ModelDirError
from funasr_lite.punc import load_punc
from funasr_lite.punc.config import load_punc_config


@pytest.fixture()
def model_dir(punc_dirs, tmp_path):
    """A writable copy of the "char" dir."""
    return shutil.copytree(punc_dirs["char"], tmp_path / "punc")


def _edit_config(model_dir, edit):
    path = os.path.join(model_dir, "config.yaml")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    edit(config)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(split_sise=30), r"unknown key 'split_sise'; did you mean 'split_size'\?"),
        (lambda c: c["model_conf"].update(punc_lst=[]), r"unknown key 'model_conf.punc_lst'"),
        (lambda c: c["encoder_conf"].update(kernel=3), r"unknown key 'encoder_conf.kernel'"),
        (lambda c: c["model_conf"].pop("punc_list"), r"model_conf.punc_list is required"),
        (lambda c: c.update(model="Paraformer"), r"model class 'Paraformer' is not a punctuation model's"),
        (lambda c: c["model_conf"].update(embed_unit=48), r"encoder_conf.input_size=32 must equal .*embed_unit=48"),
        (lambda c: c["model_conf"].update(sentence_end_id=9), r"model_conf.sentence_end_id=9: must be in \[0, 5\]"),
        (lambda c: c["tokenizer_conf"].update(seg_dict="seg_dict"), r"tokenizer_conf.seg_dict is set"),
        (lambda c: c.update(split_size=1), r"split_size=1: must be >= 2"),
        (lambda c: c["encoder_conf"].update(concat_after=True), r"encoder_conf.concat_after=True: not supported"),
    ],
)
def test_config_errors_name_file_and_key(model_dir, edit, message):
    path = _edit_config(model_dir, edit)
    with pytest.raises(ConfigError, match=message) as e:
        load_punc(str(model_dir), device="cpu")
    assert str(e.value).startswith(path)


def test_config_error_names_line(model_dir):
    path = os.path.join(model_dir, "config.yaml")
    with open(path, "a", encoding="utf-8") as f:
        f.write("bogus_key: 1\n")
    lines = open(path, encoding="utf-8").read().splitlines()
    with pytest.raises(ConfigError, match=rf"^{path}:{len(lines)}: unknown key 'bogus_key'"):
        load_punc_config(path)


def test_training_sections_are_checked_and_ignored(model_dir):
    _edit_config(model_dir, lambda c: c.update(optim="adam", optim_conf={"lr": 0.1}, train_conf={"max_epoch": 3}))
    load_punc(str(model_dir), device="cpu")
    _edit_config(model_dir, lambda c: c.update(train_conf={"max_epochs": 3}))
    with pytest.raises(ConfigError, match=r"unknown key 'train_conf.max_epochs'; did you mean 'max_epoch'\?"):
        load_punc(str(model_dir), device="cpu")


@pytest.mark.parametrize("name, what", [("model.pt", "weights"), ("tokens.json", "token list"), ("config.yaml", "")])
def test_missing_file_is_named(model_dir, name, what):
    os.remove(os.path.join(model_dir, name))
    with pytest.raises(ModelDirError, match=rf"is missing: {name} \({what or 'model config'}\)"):
        load_punc(str(model_dir), device="cpu")


def test_layout_without_configuration_json(model_dir):
    os.remove(os.path.join(model_dir, "configuration.json"))
    assert load_punc(str(model_dir), device="cpu").punctuate("今天").text
    os.remove(os.path.join(model_dir, "tokens.json"))
    with pytest.raises(ModelDirError, match=r"no tokens.json and no token_list list in .*config.yaml"):
        load_punc(str(model_dir), device="cpu")


def test_legacy_layout_and_bad_dirs(model_dir, tmp_path):
    with open(os.path.join(model_dir, "configuration.json"), "w", encoding="utf-8") as f:
        json.dump({"model": {"punc_model_name": "punc.pb", "punc_model_config": "punc.yaml"}}, f)
    with pytest.raises(ModelDirError, match=r"FunASR 0.x punctuation dir \(punc.pb \+ punc.yaml\)"):
        load_punc(str(model_dir), device="cpu")
    with pytest.raises(HubError, match="no such directory"):
        load_punc(str(tmp_path / "nope"), device="cpu")


def test_checkpoint_mismatch(model_dir):
    path = os.path.join(model_dir, "model.pt")
    state = torch.load(path, weights_only=True)
    state["embed.weight"] = state["embed.weight"][:-1]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"embed.weight has \d+ rows but the token list .*tokens.json"):
        load_punc(str(model_dir), device="cpu")
    del state["embed.weight"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="missing keys: embed.weight"):
        load_punc(str(model_dir), device="cpu")


def test_config_named_jieba_dict_missing(model_dir):
    _edit_config(model_dir, lambda c: c.update(jieba_usr_dict="words.dict"))
    with pytest.raises(ModelDirError, match=r"config.yaml: jieba_usr_dict words.dict: no such file"):
        load_punc(str(model_dir), device="cpu")


def test_non_finite_weights(model_dir):
    """The embedding's rows are checked when a text uses them (a load reads none of them); any other tensor
    at load time."""
    from funasr_lite.hub.model_dir import NonFiniteWeightsError

    path = os.path.join(model_dir, "model.pt")
    state = torch.load(path, weights_only=True)
    punc = load_punc(str(model_dir), device="cpu")
    text = "今天天气怎么样我们去公园吧"
    used = punc.vocab.encode(list(text))
    unused = next(i for i in range(state["embed.weight"].shape[0]) if i not in used)
    expected = punc.punctuate(text).text
    bad = dict(state)
    bad["embed.weight"] = state["embed.weight"].clone()
    bad["embed.weight"][unused, 0] = float("nan")
    torch.save(bad, path)
    assert load_punc(str(model_dir), device="cpu").punctuate(text).text == expected
    bad["embed.weight"][used[3], 1] = float("inf")
    torch.save(bad, path)
    loaded = load_punc(str(model_dir), device="cpu")
    for run in (lambda: loaded.punctuate(text), lambda: loaded.punctuate_batch(["好", text])):
        with pytest.raises(NonFiniteWeightsError, match=rf"model.pt: tensor embed.weight .* token ids \[{used[3]}\]"):
            run()
    other = next(k for k in state if k != "embed.weight" and state[k].is_floating_point())
    bad = dict(state)
    bad[other] = state[other].clone().fill_(float("nan"))
    torch.save(bad, path)
    with pytest.raises(NonFiniteWeightsError, match=rf"model.pt: tensor {other} holds"):
        load_punc(str(model_dir), device="cpu")
