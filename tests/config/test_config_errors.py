"""Config errors name the file, the line and the key, and say how to fix them; values that would make the
output meaningless (a 100 s fbank window, NaN dropout, ...) are refused at config load.

The bad-value cases are generated from the sections' own field types (every float field gets NaN/inf, every
int field a huge value), plus a table of range cases per section.
"""

import dataclasses
import json
import os
import shutil
from typing import Union, get_args, get_origin, get_type_hints

import pytest
import yaml

from funasr_lite.config import merge as C
from funasr_lite.config import schema as S
from funasr_lite.config import yaml_io as Y
from funasr_lite.data.tokenizer import SPECIAL_SYMBOLS, load_token_list
from funasr_lite.errors import ConfigError, ModelDirError
from funasr_lite.hub.model_dir import detect_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_MODEL = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo", "model"
)
with open(os.path.join(DEMO_MODEL, "config.yaml"), encoding="utf-8") as _f:
    DEMO_CONFIG = yaml.safe_load(_f)


def _load_with(tmp_path, section: str, key: str, value) -> None:
    """Write the demo config with ``section.key = value`` (a YAML scalar text) on its own line and load it."""
    conf = dict(DEMO_CONFIG, **{section: dict(DEMO_CONFIG.get(section) or {})})
    conf[section].pop(key, None)
    text = yaml.safe_dump(conf, sort_keys=False) + f"{section}_extra_marker: 0\n"
    text = text.replace(f"{section}:\n", f"{section}:\n  {key}: {value}\n", 1).replace(
        f"{section}_extra_marker: 0\n", ""
    )
    if f"{section}: {{}}" in text:
        text = text.replace(f"{section}: {{}}", f"{section}:\n  {key}: {value}")
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    S.ModelConfig.from_dict(C.merge_layers([(str(path), Y.load_yaml(str(path)))]))


def _assert_names_line(err: pytest.ExceptionInfo, tmp_path, section: str, key: str) -> None:
    path = tmp_path / "config.yaml"
    line = 1 + next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith(f"{section}:"))
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert f"{section}.{key}" in msg, msg


def test_demo_config_loads():
    S.ModelConfig.from_dict(DEMO_CONFIG)


# ------------------------------------------------------------------------- generated from the field types
def _numeric_fields():
    for section, cls in S.SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.name not in cls.field_names():
                continue
            tp = get_type_hints(cls)[f.name]
            args = get_args(tp) if get_origin(tp) is Union else (tp,)
            if float in args:
                yield section, f.name, ".nan"
                yield section, f.name, "-.inf"
            elif int in args and bool not in args:
                yield section, f.name, "99999999999999999999"


@pytest.mark.parametrize("section,key,value", list(_numeric_fields()))
def test_every_numeric_field_refuses_nan_inf_and_huge_values(tmp_path, section, key, value):
    with pytest.raises(ConfigError) as err:
        _load_with(tmp_path, section, key, value)
    _assert_names_line(err, tmp_path, section, key)


RANGE_CASES = [
    ("frontend_conf", "frame_length", "100000", "[1, 200]"),
    ("frontend_conf", "frame_length", "0", "[1, 200]"),
    ("frontend_conf", "frame_shift", "30", "[1, 25]"),  # longer than the 25 ms window: audio is skipped
    ("frontend_conf", "n_mels", "400", "[1, 256]"),  # more mel bins than FFT bins of a 25 ms window at 16 kHz
    ("frontend_conf", "fs", "100", "[1000, 192000]"),
    ("frontend_conf", "lfr_m", "0", "[1, 32]"),
    ("frontend_conf", "lfr_n", "8", "[1, 7]"),
    ("frontend_conf", "dither", "-1", ">= 0"),
    ("frontend_conf", "filter_length_min", "-5", "(or -1)"),
    ("frontend_conf", "window", "hann", "hamming, hanning, povey, rectangular, blackman"),
    ("encoder_conf", "dropout_rate", "1.0", "[0.0, 1.0)"),
    ("encoder_conf", "attention_dropout_rate", "-0.1", "[0.0, 1.0)"),
    ("encoder_conf", "sanm_shfit", "-1", "[0, 10]"),
    ("encoder_conf", "interctc_layer_idx", "[9]", "1..num_blocks"),
    ("decoder_conf", "src_attention_dropout_rate", "2", "[0.0, 1.0)"),
    ("predictor_conf", "dropout", "1.5", "[0.0, 1.0)"),
    ("predictor_conf", "smooth_factor", "0", "> 0.0"),
    ("predictor_conf", "tail_threshold", "2.0", "[0.0, 1.0]"),
    ("ctc_conf", "dropout_rate", "-1", "[0.0, 1.0)"),
    ("model_conf", "predictor_weight", "-1", ">= 0.0"),
    ("model_conf", "blank_id", "-3", ">= 0"),
    ("specaug_conf", "num_time_mask", "-1", ">= 0"),
    ("specaug_conf", "freq_mask_width_range", "[20, 5]", "0 <= low <= high"),
    ("specaug_conf", "time_mask_width_ratio_range", "[0.0, 1.5]", "<= 1.0"),
    ("optim_conf", "lr", "0", "> 0.0"),
    ("optim_conf", "betas", "[0.9, 1.0]", "[0, 1)"),
    ("optim_conf", "weight_decay", "-0.01", ">= 0.0"),
    ("scheduler_conf", "warmup_steps", "0", "> 0"),
    ("train_conf", "seed", "-1", ">= 0"),
    ("train_conf", "grad_clip_type", "0", "> 0.0"),
    ("dataset_conf", "token_length_max", "-7", "(or -1)"),
]


@pytest.mark.parametrize("section,key,value,needle", RANGE_CASES)
def test_out_of_range_values_name_file_line_key_and_range(tmp_path, section, key, value, needle):
    with pytest.raises(ConfigError) as err:
        _load_with(tmp_path, section, key, value)
    _assert_names_line(err, tmp_path, section, key)
    assert needle in str(err.value)


# ----------------------------------------------------------------------------------- whole-file errors
def _model_dir(tmp_path, config_text=None):
    root = tmp_path / "model"
    shutil.copytree(DEMO_MODEL, root)
    if config_text is not None:
        (root / "config.yaml").write_text(config_text, encoding="utf-8")
    return detect_model_dir(str(root))


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "---\n"])
def test_empty_config_yaml_is_named_with_the_fix(tmp_path, text):
    md = _model_dir(tmp_path, text)
    with pytest.raises(ConfigError, match="the config is empty; a model dir's config.yaml names") as err:
        C.model_dir_layers(md)
    assert str(err.value).startswith(md.config + ": ")


def test_config_yaml_without_the_model_class_is_named(tmp_path):
    md = _model_dir(tmp_path, "frontend_conf:\n  fs: 16000\n")
    with pytest.raises(ConfigError, match=r"config.yaml: missing required keys model, encoder, decoder, predictor"):
        C.model_dir_layers(md)


def test_lm_file_in_decoding_yaml_names_the_line_and_the_fix(tmp_path):
    """FunASR fuses an LM only with lm_file: lm_weight alone (real 0.x decoding.yaml files have 0.15) is ignored."""
    md = _model_dir(tmp_path)
    dec = os.path.join(md.root, "decoding.yaml")
    with open(dec, "w", encoding="utf-8") as f:
        f.write("beam_size: 1\nctc_weight: 0.0\nlm_weight: 0.15\n")
    md = detect_model_dir(md.root)
    decoding = S.ModelConfig.from_dict(C.merge_layers(C.model_dir_layers(md, "infer"))).decoding
    assert decoding.lm_weight == 0.15 and not decoding.uses_lm and not decoding.uses_beam
    with open(dec, "w", encoding="utf-8") as f:
        f.write("beam_size: 1\nctc_weight: 0.0\nlm_weight: 0.15\nlm_file: lm/lm.pb\n")
    with pytest.raises(ConfigError) as err:
        S.ModelConfig.from_dict(C.merge_layers(C.model_dir_layers(md, "infer")))
    assert str(err.value).startswith(f"{dec}:4: lm_file='lm/lm.pb' with lm_weight=0.15"), err.value
    assert "remove lm_file" in str(err.value)
    with open(dec, "w", encoding="utf-8") as f:
        f.write("beam_size: 1\nlm_weight: 0\nlm_file: lm/lm.pb\n")  # an LM at weight 0 is not fused
    assert S.ModelConfig.from_dict(C.merge_layers(C.model_dir_layers(md, "infer"))).decoding.lm_weight == 0


@pytest.mark.parametrize("missing", [[s] for s in SPECIAL_SYMBOLS] + [["<s>", "</s>"]])
def test_token_list_without_a_special_token_names_the_file_and_what_is_missing(tmp_path, missing):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps([t for t in SPECIAL_SYMBOLS + ("一", "二") if t not in missing]), encoding="utf-8")
    with pytest.raises(ModelDirError) as err:
        load_token_list(str(path))
    msg = str(err.value)
    assert msg.startswith(f"{path}: the token list has no {', '.join(missing)} "), msg
    assert "use the tokens file the model was trained with" in msg


@pytest.mark.parametrize("flags", [{"specaug": "specaug_lfr"}, {"specaug": "specaug_lfr", "specaug_conf": "{}"}])
def test_specaug_without_its_time_mask_range_is_a_clear_error(flags):
    layers = [("config.yaml", dict(DEMO_CONFIG)), ("command line", C.flags_layer(flags))]
    cfg = S.ModelConfig.from_dict(C.merge_layers(layers))
    with pytest.raises(ConfigError, match=r"specaug SpecAugLFR masks time .* set --specaug_conf, e\.g\."):
        cfg.check_trainable()
    good = dict(flags, specaug_conf="{time_mask_width_range: [0, 12], lfr_rate: 6}")
    layers[-1] = ("command line", C.flags_layer(good))
    S.ModelConfig.from_dict(C.merge_layers(layers)).check_trainable()
