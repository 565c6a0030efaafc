"""Tests for funasr_lite.config.merge: strict YAML/JSON loading, layered merge, typed sections, FunASR parity."""

import ast
import dataclasses
import inspect
import json
import os
import re
import textwrap

import pytest

from funasr_lite.config import merge as C
from funasr_lite.config import schema as S
from funasr_lite.config import sections as SEC
from funasr_lite.config import yaml_io as Y
from funasr_lite.data.options import DatasetConf
from funasr_lite.errors import ConfigError
from funasr_lite.hub.model_dir import detect_model_dir
from funasr_lite.train.options import TrainConf

# A FunASR 1.x config.yaml shaped like paraformer-large's (class names, every section the template has).
PARAFORMER_1X = """\
model: Paraformer
model_conf:
    ctc_weight: 0.0
    lsm_weight: 0.1
    length_normalized_loss: true
    predictor_weight: 1.0
    predictor_bias: 1
    sampling_ratio: 0.75
encoder: SANMEncoder
encoder_conf:
    output_size: 512
    attention_heads: 4
    linear_units: 2048
    num_blocks: 50
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    attention_dropout_rate: 0.1
    input_layer: pe
    pos_enc_class: SinusoidalPositionEncoder
    normalize_before: true
    kernel_size: 11
    sanm_shfit: 0
    selfattention_layer_type: sanm
decoder: ParaformerSANMDecoder
decoder_conf:
    attention_heads: 4
    linear_units: 2048
    num_blocks: 16
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    self_attention_dropout_rate: 0.1
    src_attention_dropout_rate: 0.1
    att_layer_num: 16
    kernel_size: 11
    sanm_shfit: 0
predictor: CifPredictorV2
predictor_conf:
    idim: 512
    threshold: 1.0
    l_order: 1
    r_order: 1
    tail_threshold: 0.45
frontend: WavFrontend
frontend_conf:
    fs: 16000
    window: hamming
    n_mels: 80
    frame_length: 25
    frame_shift: 10
    lfr_m: 7
    lfr_n: 6
specaug: SpecAugLFR
specaug_conf:
    apply_time_warp: false
    time_warp_window: 5
    time_warp_mode: bicubic
    apply_freq_mask: true
    freq_mask_width_range: [0, 30]
    lfr_rate: 6
    num_freq_mask: 1
    apply_time_mask: true
    time_mask_width_range: [0, 12]
    num_time_mask: 1
train_conf:
  accum_grad: 1
  grad_clip: 5
  max_epoch: 150
  val_scheduler_criterion: [valid, acc]
  best_model_criterion: [[valid, acc, max]]
  keep_nbest_models: 10
  avg_nbest_model: 10
  log_interval: 50
optim: adam
optim_conf:
   lr: 0.0005
scheduler: warmuplr
scheduler_conf:
   warmup_steps: 30000
dataset: AudioDataset
dataset_conf:
    index_ds: IndexDSJsonl
    batch_sampler: DynamicBatchLocalShuffleSampler
    batch_type: example
    batch_size: 1
    max_token_length: 2048
    buffer_size: 500
    shuffle: true
    num_workers: 0
tokenizer: CharTokenizer
tokenizer_conf:
  unk_symbol: <unk>
  split_with_space: true
input_size: 560
ctc_conf:
    dropout_rate: 0.0
    ctc_type: builtin
    reduce: true
    ignore_nan_grad: true
normalize: null
"""

# A FunASR 0.x config.yaml: legacy class names and part of the ESPnet-style argparse dump around them.
PARAFORMER_0X = """\
config: conf/train_asr_paraformer_sanm_50e_16d_2048_512_lfr6.yaml
print_config: false
log_level: INFO
output_dir: exp/paraformer
ngpu: 1
seed: 0
num_workers: 16
dist_backend: nccl
max_epoch: 20
patience: null
val_scheduler_criterion: [valid, acc]
best_model_criterion: [[valid, acc, max]]
keep_nbest_models: [10]
grad_clip: 5.0
accum_grad: 1
resume: true
use_amp: false
log_interval: 50
init_param: [init_model/model.pb]
ignore_init_mismatch: false
freeze_param: []
batch_size: 20
batch_bins: 2000
batch_type: length
dataset_type: small
speech_length_min: -1
speech_length_max: -1
dataset_conf: {}
optim: adam
optim_conf:
    lr: 0.0005
scheduler: warmuplr
scheduler_conf:
    warmup_steps: 30000
token_list: ["<blank>", "<s>", "</s>", "你", "好", "<unk>"]
init: null
input_size: null
ctc_conf:
    dropout_rate: 0.0
    ctc_type: builtin
    reduce: true
    ignore_nan_grad: true
use_preprocessor: true
token_type: char
bpemodel: null
split_with_space: true
seg_dict_file: null
cmvn_file: am.mvn
frontend: wav_frontend
frontend_conf:
    fs: 16000
    window: hamming
    n_mels: 80
    frame_length: 25
    frame_shift: 10
    lfr_m: 7
    lfr_n: 6
specaug: specaug_lfr
specaug_conf:
    apply_time_warp: false
    apply_freq_mask: true
    freq_mask_width_range: [0, 30]
    lfr_rate: 6
    num_freq_mask: 1
    apply_time_mask: true
    time_mask_width_range: [0, 12]
    num_time_mask: 1
normalize: None
normalize_conf: {}
model: paraformer
model_conf:
    ctc_weight: 0.0
    lsm_weight: 0.1
    length_normalized_loss: true
    predictor_weight: 1.0
    predictor_bias: 1
    sampling_ratio: 0.75
preencoder: null
preencoder_conf: {}
encoder: sanm
encoder_conf:
    output_size: 512
    attention_heads: 4
    linear_units: 2048
    num_blocks: 50
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    attention_dropout_rate: 0.1
    input_layer: pe
    pos_enc_class: SinusoidalPositionEncoder
    normalize_before: true
    kernel_size: 11
    sanm_shfit: 0
    selfattention_layer_type: sanm
postencoder: null
postencoder_conf: {}
decoder: paraformer_decoder_sanm
decoder_conf:
    attention_heads: 4
    linear_units: 2048
    num_blocks: 16
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    self_attention_dropout_rate: 0.1
    src_attention_dropout_rate: 0.1
    att_layer_num: 16
    kernel_size: 11
    sanm_shfit: 0
predictor: cif_predictor_v2
predictor_conf:
    idim: 512
    threshold: 1.0
    l_order: 1
    r_order: 1
    tail_threshold: 0.45
encoder2: rnn
encoder2_conf: {}
stride_conv: stride_conv1d
stride_conv_conf: {}
required: [output_dir, token_list]
version: 0.3.0
distributed: false
"""


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(p)


def _config_1x(**overrides):
    import yaml

    d = yaml.safe_load(PARAFORMER_1X)
    for k, v in overrides.items():
        C.set_path(d, k, v)
    return d


# ------------------------------------------------------------------------------------------ loading
def test_load_yaml_empty_and_comment_only_give_empty_dict(tmp_path):
    assert Y.load_yaml(_write(tmp_path, "a.yaml", "")) == {}
    assert Y.load_yaml(_write(tmp_path, "b.yaml", "# only a comment\n\n")) == {}


def test_load_yaml_syntax_error_names_file_and_line(tmp_path):
    p = _write(tmp_path, "bad.yaml", "model: Paraformer\nencoder_conf:\n  num_blocks: [1, 2\n  x: 1\n")
    with pytest.raises(ConfigError) as e:
        Y.load_yaml(p)
    assert re.search(r"bad\.yaml:\d+:\d+: invalid YAML", str(e.value))


def test_load_yaml_rejects_non_mapping_duplicates_bad_utf8_and_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"list\.yaml:1: the top level must be a mapping"):
        Y.load_yaml(_write(tmp_path, "list.yaml", "- a\n- b\n"))
    with pytest.raises(ConfigError, match=r"dup\.yaml:3: duplicate key 'train_conf.max_epoch' \(first set on line 2\)"):
        Y.load_yaml(_write(tmp_path, "dup.yaml", "train_conf:\n  max_epoch: 1\n  max_epoch: 2\n"))
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"model: Paraformer\nname: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml:2: invalid UTF-8"):
        Y.load_yaml(str(bad))
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such file: the config file was not found"):
        Y.load_yaml(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="invalid YAML"):  # safe_load semantics: no python tags
        Y.load_yaml(_write(tmp_path, "tag.yaml", "x: !!python/object/apply:os.system ['true']\n"))


def test_load_yaml_records_key_lines(tmp_path):
    d = Y.load_yaml(_write(tmp_path, "c.yaml", "model: Paraformer\ntrain_conf:\n  max_epoch: 3\n"))
    assert d == {"model": "Paraformer", "train_conf": {"max_epoch": 3}}
    assert d.lines[("train_conf", "max_epoch")] == 3


# ---------------------------------------------------------------------------------------- precedence
def test_precedence_defaults_config_decoding_recipe_cli(tmp_path):
    cfg_path = _write(tmp_path, "config.yaml", PARAFORMER_1X)
    dec_path = _write(
        tmp_path,
        "decoding.yaml",
        "beam_size: 2\npenalty: 0.5\nmaxlenratio: 0.0\nminlenratio: 0.0\nctc_weight: 0.0\nlm_weight: 0.0\n",
    )
    layers = [
        ("built-in defaults", C.builtin_defaults()),
        (cfg_path, Y.load_yaml(cfg_path)),
        (dec_path, C.decoding_layer(Y.load_yaml(dec_path))),
        ("recipe defaults", C.flags_layer({"beam_size": 3, "batch_size": 8, "max_epoch": None})),
        ("command line", C.flags_layer({"beam_size": 4, "batch_size": None})),
    ]
    merged = C.merge_layers(layers)
    cfg = S.ModelConfig.from_dict(merged)
    assert cfg.decoding.beam_size == 4  # command line beats everything
    assert cfg.decoding.batch_size == 8  # recipe default beats decoding.yaml / built-in
    assert cfg.decoding.penalty == 0.5 and cfg.decoding.minlenratio == 0.0  # decoding.yaml beats built-in
    assert cfg.decoding.nbest == 1  # built-in default survives
    assert cfg.train_conf.max_epoch == 150  # config.yaml beats built-in 40
    assert merged.provenance["decoding.beam_size"] == "command line"
    assert merged.provenance["decoding.batch_size"] == "recipe defaults"
    assert merged.provenance["decoding.penalty"] == f"{dec_path}:2"
    line = PARAFORMER_1X.splitlines().index("  max_epoch: 150") + 1
    assert merged.provenance["train_conf.max_epoch"] == f"{cfg_path}:{line}"
    assert merged.provenance["decoding.nbest"] == "built-in defaults"
    text = cfg.describe()
    assert "beam_size: 4  # command line" in text and "max_epoch: 150  # " + cfg_path in text


def test_merge_is_deep_and_lists_replace():
    merged = C.merge_layers(
        [
            ("a", {"train_conf": {"max_epoch": 5, "keep_nbest_models": [1, 2, 3]}, "optim_conf": {"lr": 0.1}}),
            ("b", {"train_conf": {"keep_nbest_models": [4]}, "specaug_conf": {"freq_mask_width_range": [0, 9]}}),
            ("c", {"specaug_conf": None}),
        ]
    )
    assert merged["train_conf"] == {"max_epoch": 5, "keep_nbest_models": [4]}
    assert merged["optim_conf"] == {"lr": 0.1}
    assert merged["specaug_conf"] is None
    assert merged.provenance["train_conf.max_epoch"] == "a"
    assert merged.provenance["train_conf.keep_nbest_models"] == "b"
    assert "specaug_conf.freq_mask_width_range" not in merged.provenance
    assert merged.provenance["specaug_conf"] == "c"


def test_finetune_yaml_0x_top_level_keys_merge_into_train_conf(tmp_path):
    base = _write(tmp_path, "config.yaml", PARAFORMER_0X)
    ft = _write(tmp_path, "finetune.yaml", "max_epoch: 7\nbatch_bins: 1000\noptim_conf:\n  lr: 0.0002\n")
    merged = C.merge_layers([("defaults", C.builtin_defaults()), (base, Y.load_yaml(base)), (ft, Y.load_yaml(ft))])
    cfg = S.ModelConfig.from_dict(merged)
    assert cfg.train_conf.max_epoch == 7 and merged.provenance["train_conf.max_epoch"] == f"{ft}:1"
    assert cfg.dataset_conf.batch_bins == 1000 and cfg.optim_conf.lr == 0.0002
    assert cfg.dataset_conf.num_workers == 16  # moved from 0.x top-level num_workers


# ------------------------------------------------------------------------------------------ strictness
def test_unknown_override_key_suggests_closest():
    with pytest.raises(ConfigError) as e:
        C.merge_layers(
            [("defaults", C.builtin_defaults()), ("command line", C.parse_overrides(["++train_conf.nax_epoch=3"]))]
        )
    msg = str(e.value)
    assert "command line" in msg and "'train_conf.nax_epoch'" in msg and "did you mean 'max_epoch'" in msg


def test_unknown_key_in_file_names_file_line_and_suggestion(tmp_path):
    p = _write(tmp_path, "finetune.yaml", "train_conf:\n  max_epoch: 2\n  acum_grad: 4\n")
    with pytest.raises(
        ConfigError, match=r"finetune\.yaml:3: unknown key 'train_conf\.acum_grad'; did you mean 'accum_grad'"
    ):
        C.merge_layers([(p, Y.load_yaml(p))])
    p2 = _write(tmp_path, "config.yaml", PARAFORMER_1X.replace("encoder_conf:", "encoder_cof:"))
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+: unknown key 'encoder_cof'; did you mean 'encoder_conf'"):
        S.ModelConfig.from_dict(Y.load_yaml(p2))
    with pytest.raises(ConfigError, match="'warmup_steps' belongs in scheduler_conf"):
        C.merge_layers([("x.yaml", {"warmup_steps": 10})])
    with pytest.raises(
        ConfigError, match=r"decoding\.yaml:1: unknown key 'decoding\.beam_szie'; did you mean 'beam_size'"
    ):
        p3 = _write(tmp_path, "decoding.yaml", "beam_szie: 3\n")
        C.merge_layers([(p3, C.decoding_layer(Y.load_yaml(p3)))])


def test_conf_flags_are_parsed_and_checked():
    layer = C.flags_layer(
        {
            "scheduler": "warmuplr",
            "scheduler_conf": '{"warmup_steps": 300}',
            "specaug": "none",
            "specaug_conf": "num_time_mask: 2",
        }
    )
    assert layer == {
        "scheduler": "warmuplr",
        "scheduler_conf": {"warmup_steps": 300},
        "specaug": None,
        "specaug_conf": {"num_time_mask": 2},
    }
    with pytest.raises(
        ConfigError, match=r"--scheduler_conf: unknown key 'scheduler_conf\.warmup_step'.*did you mean 'warmup_steps'"
    ):
        C.flags_layer({"scheduler": "warmuplr", "scheduler_conf": '{"warmup_step": 300}'})
    with pytest.raises(ConfigError, match="--specaug_conf: expected a mapping"):
        C.flags_layer({"specaug_conf": "[1, 2]"})
    with pytest.raises(ConfigError, match="--scheduler_conf: not valid YAML/JSON"):
        C.flags_layer({"scheduler_conf": '{"warmup_steps": '})
    with pytest.raises(ConfigError, match="override 'train_conf' must look like"):
        C.parse_overrides(["train_conf"])


def test_wrong_types_and_values_name_the_key_and_source(tmp_path):
    with pytest.raises(ConfigError, match=r"x\.yaml: encoder_conf\.num_blocks: expected an integer, got 'fifty'"):
        S.ModelConfig.from_dict(_config_1x(**{"encoder_conf.num_blocks": "fifty"}), source="x.yaml")
    cfg = S.ModelConfig.from_dict(_config_1x(**{"optim_conf.lr": "1e-4"}))  # YAML reads 1e-4 as a string
    assert cfg.optim_conf.lr == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="predictor_conf.idim=256 must equal encoder_conf.output_size=512"):
        S.ModelConfig.from_dict(_config_1x(**{"predictor_conf.idim": 256}))
    d = _config_1x()
    del d["predictor_conf"]["l_order"]
    with pytest.raises(ConfigError, match="predictor_conf.l_order is required"):
        S.ModelConfig.from_dict(d)
    with pytest.raises(ConfigError, match="decoding.ctc_weight=2.0: must be in"):
        S.ModelConfig.from_dict(dict(_config_1x(), decoding={"ctc_weight": 2.0}))
    with pytest.raises(ConfigError, match="needs a CTC head"):
        S.ModelConfig.from_dict(dict(_config_1x(), decoding={"ctc_weight": 0.3}))
    with pytest.raises(ConfigError, match="missing required key 'encoder'"):
        S.ModelConfig.from_dict({k: v for k, v in _config_1x().items() if k != "encoder"})


def test_optimizer_arguments_are_checked_against_the_named_optimizer():
    with pytest.raises(ConfigError, match="optim_conf.momentum' \\(not an argument of adam\\)"):
        S.ModelConfig.from_dict(_config_1x(**{"optim_conf.momentum": 0.9}))
    cfg = S.ModelConfig.from_dict(_config_1x(optim="sgd", optim_conf={"lr": 0.1, "momentum": 0.9}))
    cfg.check_trainable()
    assert cfg.optim_conf.kwargs() == {"lr": 0.1, "momentum": 0.9}
    with pytest.raises(ConfigError, match="unknown optim 'adamm'; did you mean 'adam'"):
        S.ModelConfig.from_dict(_config_1x(optim="adamm"))
    # FunASR knows fairseq_adam: it loads (inference), but funasr-lite cannot train with it.
    cfg = S.ModelConfig.from_dict(_config_1x(optim="fairseq_adam", optim_conf={"lr": 1e-3, "adam_betas": [0.9, 0.98]}))
    assert cfg.optim_conf.kwargs() == {"lr": 1e-3, "adam_betas": [0.9, 0.98]}
    with pytest.raises(ConfigError, match="optim 'fairseq_adam' is not supported by funasr-lite for training"):
        cfg.check_trainable()
    cfg = S.ModelConfig.from_dict(_config_1x(scheduler="none"))
    assert cfg.scheduler is None


# -------------------------------------------------------------------------------- classes and legacy
@pytest.mark.parametrize(
    "slot,name",
    [
        ("model", "UniASR"),
        ("model", "uniasr"),
        ("model", "NeatContextualParaformer"),
        ("model", "SenseVoiceSmall"),
        ("encoder", "ConformerEncoder"),
        ("encoder", "sanm_chunk_opt"),
        ("decoder", "ParaformerDecoderSAN"),
        ("predictor", "CifPredictor"),
        ("frontend", "WavFrontendOnline"),
        ("normalize", "global_mvn"),
    ],
)
def test_unsupported_classes_are_named(slot, name):
    d = _config_1x(**{slot: name})
    with pytest.raises(ConfigError) as e:
        S.ModelConfig.from_dict(d, source="config.yaml")
    msg = str(e.value)
    assert name in msg and f"{slot} class" in msg and "not supported" in msg and "supported:" in msg
    assert "did you mean" not in msg  # a real FunASR class is not a typo
    with pytest.raises(ConfigError, match="not supported"):  # also when it arrives through a merge
        C.merge_layers([("config.yaml", d)])


def test_misspelt_class_gets_a_suggestion():
    with pytest.raises(ConfigError, match="model class 'Paraformr' is not supported.*did you mean 'Paraformer'"):
        S.ModelConfig.from_dict(_config_1x(model="Paraformr"))


def test_legacy_0x_config_is_normalised(tmp_path):
    p = _write(tmp_path, "config.yaml", PARAFORMER_0X)
    cfg = S.ModelConfig.from_dict(Y.load_yaml(p))
    assert (cfg.model, cfg.encoder, cfg.decoder, cfg.predictor, cfg.frontend, cfg.specaug, cfg.tokenizer) == (
        "Paraformer",
        "SANMEncoder",
        "ParaformerSANMDecoder",
        "CifPredictorV2",
        "WavFrontend",
        "SpecAugLFR",
        "CharTokenizer",
    )
    assert cfg.encoder_conf.num_blocks == 50 and cfg.decoder_conf.att_layer_num == 16
    assert cfg.train_conf.max_epoch == 20 and cfg.train_conf.nbest_list() == [10]
    assert cfg.dataset_conf.batch_bins == 2000 and cfg.dataset_conf.dataset_type == "small"
    assert cfg.tokenizer_conf.token_list == ["<blank>", "<s>", "</s>", "你", "好", "<unk>"]
    assert cfg.tokenizer_conf.split_with_space is True and cfg.frontend_conf.cmvn_file == "am.mvn"
    assert cfg.init_param == "init_model/model.pb"
    assert cfg.extra["normalize"] is None and cfg.extra["encoder2"] == "rnn"  # kept, never dropped
    assert cfg.encoder_input_size() == 560
    out = cfg.to_dict()
    assert out["encoder"] == "SANMEncoder" and out["tokenizer"] == "CharTokenizer"
    assert out["tokenizer_conf"]["token_list"][3] == "你" and "token_list" not in out
    assert out["train_conf"]["max_epoch"] == 20 and "max_epoch" not in out
    assert S.ModelConfig.from_dict(out) == cfg  # the normalised form is stable


def test_legacy_error_names_the_0x_spelling():
    with pytest.raises(ConfigError, match=r"model class 'UniASR' \(uniasr in FunASR 0.x\)"):
        S.ModelConfig.from_dict(_config_1x(model="uniasr"))


# ------------------------------------------------------------------------------------- round trips
def test_to_dict_round_trip_1x(tmp_path):
    p = _write(tmp_path, "config.yaml", PARAFORMER_1X)
    d = Y.load_yaml(p)
    cfg = S.ModelConfig.from_dict(d)
    assert cfg.to_dict() == dict(d)  # every key kept, none added
    out = str(tmp_path / "saved.yaml")
    Y.save_yaml(out, cfg.to_dict())
    again = S.ModelConfig.from_dict(Y.load_yaml(out))
    assert again == cfg and again.to_dict() == dict(d)
    assert cfg.train_conf.extra["best_model_criterion"] == [["valid", "acc", "max"]]
    assert cfg.dataset_conf.extra["index_ds"] == "IndexDSJsonl"


def test_changed_fields_are_written_even_if_set_after_loading():
    cfg = S.ModelConfig.from_dict(_config_1x())
    cfg = dataclasses.replace(
        cfg,
        frontend_conf=dataclasses.replace(cfg.frontend_conf, dither=0.0),
        train_conf=dataclasses.replace(cfg.train_conf, max_epoch=3),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train_conf.max_epoch = 4  # options are frozen: dataclasses.replace is the way to change them
    out = cfg.to_dict()
    assert out["frontend_conf"]["dither"] == 0.0 and out["train_conf"]["max_epoch"] == 3


def test_kwargs_for_drops_defaults_and_refuses_unsupported_values():
    class TinyEncoder:  # stands in for a model class that lacks some of FunASR's options
        def __init__(
            self,
            input_size,
            output_size=256,
            attention_heads=4,
            linear_units=2048,
            num_blocks=6,
            dropout_rate=0.1,
            positional_dropout_rate=0.1,
            attention_dropout_rate=0.0,
            input_layer="pe",
            pos_enc_class="SinusoidalPositionEncoder",
            normalize_before=True,
            kernel_size=11,
            sanm_shfit=0,
            selfattention_layer_type="sanm",
        ):
            pass

    cfg = S.ModelConfig.from_dict(_config_1x())
    kw = cfg.encoder_conf.kwargs_for(TinyEncoder)
    assert kw["num_blocks"] == 50 and "concat_after" not in kw
    TinyEncoder(input_size=cfg.encoder_input_size(), **kw)
    cfg = S.ModelConfig.from_dict(_config_1x(**{"encoder_conf.concat_after": True}), source="c.yaml")
    with pytest.raises(
        ConfigError, match=r"c\.yaml: encoder_conf\.concat_after=True: not supported by funasr-lite's TinyEncoder"
    ):
        cfg.encoder_conf.kwargs_for(TinyEncoder)
    assert "cmvn_file" not in cfg.frontend_conf.kwargs_for(lambda **kw: None, exclude=("cmvn_file",))


def test_file_path_metas_layer(tmp_path):
    for name in ("model.pt", "tokens.json", "am.mvn", "config.yaml"):
        (tmp_path / name).write_text("x")
    metas = {
        "init_param": "model.pt",
        "config": "config.yaml",
        "tokenizer_conf": {"token_list": "tokens.json", "seg_dict_file": "seg_dict"},
        "frontend_conf": {"cmvn_file": "am.mvn"},
    }
    layer, config_path = C.file_path_metas_layer(str(tmp_path), metas)
    assert config_path == str(tmp_path / "config.yaml")
    assert layer == {
        "init_param": str(tmp_path / "model.pt"),
        "tokenizer_conf": {"token_list": str(tmp_path / "tokens.json")},
        "frontend_conf": {"cmvn_file": str(tmp_path / "am.mvn")},
    }
    merged = C.merge_layers([("config.yaml", _config_1x()), ("configuration.json", layer)])
    assert S.ModelConfig.from_dict(merged).frontend_conf.cmvn_file == str(tmp_path / "am.mvn")


# ------------------------------------------------------------------------------ FunASR as the oracle
def _contextual_kwargs():
    """The model_conf keys (and defaults) FunASR's ContextualParaformer reads on top of Paraformer's."""
    from funasr.models.contextual_paraformer.model import ContextualParaformer

    source = inspect.getsource(ContextualParaformer.__init__)
    return {k: ast.literal_eval(v) for k, v in re.findall(r'kwargs\.get\("([a-z_]+)", ([^)]+)\)', source)}


def test_contextual_model_conf_defaults_match_funasr():
    pytest.importorskip("funasr")
    defaults = SEC.ModelConf.defaults()
    assert {k: defaults[k] for k in _contextual_kwargs()} == _contextual_kwargs()


def _funasr_classes():
    pytest.importorskip("funasr")
    from funasr.frontends.wav_frontend import WavFrontend
    from funasr.models.bicif_paraformer.cif_predictor import CifPredictorV3  # CifPredictorV2's kwargs and more
    from funasr.models.ctc.ctc import CTC
    from funasr.models.paraformer.decoder import ParaformerSANMDecoder
    from funasr.models.paraformer.model import Paraformer
    from funasr.models.sanm.encoder import SANMEncoder
    from funasr.models.specaug.specaug import SpecAugLFR
    from funasr.tokenizer.char_tokenizer import CharTokenizer

    return {
        SEC.FrontendConf: (WavFrontend, ()),
        SEC.EncoderConf: (SANMEncoder, ("input_size",)),
        SEC.DecoderConf: (ParaformerSANMDecoder, ("vocab_size", "encoder_output_size")),
        SEC.SeacoDecoderConf: (ParaformerSANMDecoder, ("vocab_size", "encoder_output_size")),
        SEC.PredictorConf: (CifPredictorV3, ()),
        SEC.CTCConf: (CTC, ("odim", "encoder_output_size")),
        SEC.SpecAugConf: (SpecAugLFR, ()),
        SEC.TokenizerConf: (CharTokenizer, ()),
        SEC.ModelConf: (
            Paraformer,
            (
                "specaug",
                "specaug_conf",
                "normalize",
                "normalize_conf",
                "encoder",
                "encoder_conf",
                "decoder",
                "decoder_conf",
                "ctc",
                "ctc_conf",
                "predictor",
                "predictor_conf",
                "input_size",
                "vocab_size",
            ),
        ),
    }


# SeacoParaformer.__init__'s kwargs.get(key, default) reads in funasr 1.4.16
SEACO_MODEL_DEFAULTS = dict(
    inner_dim=256,
    bias_encoder_type="lstm",
    bias_encoder_dropout_rate=0.0,
    bias_encoder_bid=False,
    seaco_lsm_weight=0.0,
    seaco_length_normalized_loss=True,
    train_decoder=True,
    seaco_weight=0.01,
    NO_BIAS=8377,
)


def test_sections_match_funasr_constructors():
    """Every field is one of FunASR's kwargs with FunASR's default; every FunASR kwarg is accepted."""
    import torch  # noqa: F401  (funasr needs it)

    for section, (cls, passed_separately) in _funasr_classes().items():
        params = {
            n: p
            for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
        fields = section.field_names()
        extra_ok = {"seg_dict_file", "token_list", "unk_symbol"} if section is SEC.TokenizerConf else set()
        if section is SEC.ModelConf:  # hotword models' keys; SeACo reads them from **kwargs, with these defaults
            extra_ok = set(_contextual_kwargs()) | set(SEACO_MODEL_DEFAULTS)
            assert {k: section.defaults()[k] for k in SEACO_MODEL_DEFAULTS} == SEACO_MODEL_DEFAULTS
        assert set(fields) - set(params) <= extra_ok, (section.__name__, set(fields) - set(params))
        assert set(params) - set(passed_separately) <= set(section.known_keys()), section.__name__
        for name, value in section.defaults().items():
            if name not in params or params[name].default is inspect.Parameter.empty:
                continue
            theirs = params[name].default
            if inspect.isclass(theirs):
                theirs = theirs.__name__
            if isinstance(theirs, tuple):
                theirs = list(theirs)
            assert value == theirs, (section.__name__, name, value, theirs)


def test_train_and_dataset_keys_funasr_reads_are_accepted():
    pytest.importorskip("funasr")
    import funasr.datasets.audio_datasets.index_ds as index_ds
    import funasr.datasets.audio_datasets.samplers as samplers
    import funasr.train_utils.trainer as trainer

    read = set(re.findall(r'kwargs\.get\("([a-z_0-9]+)"', inspect.getsource(trainer.Trainer.__init__)))
    not_train_conf = {"device"}  # passed by train.py itself, not from train_conf
    assert read - not_train_conf - set(TrainConf.known_keys()) == set()
    read = set(re.findall(r'kwargs\.get\("([a-z_0-9]+)"', inspect.getsource(samplers) + inspect.getsource(index_ds)))
    passed_by_funasr = {"is_training", "data_split_i", "start_step"}
    assert read - passed_by_funasr - set(DatasetConf.known_keys()) == set()


def _tiny_1x_dict():
    d = _config_1x()
    d["encoder_conf"].update(output_size=16, attention_heads=2, linear_units=32, num_blocks=2)
    d["decoder_conf"].update(attention_heads=2, linear_units=32, num_blocks=2, att_layer_num=2)
    d["predictor_conf"]["idim"] = 16
    d["frontend_conf"].update(n_mels=8, lfr_m=2, lfr_n=2, dither=0.0)
    d["input_size"] = 16
    return d


def _write_model_dir(path, cfg_dict, tokens):
    """A 1.x model dir: our config.yaml, tokens.json, am.mvn, and model.pt from funasr's own Paraformer."""
    import torch
    from funasr.models.paraformer.model import Paraformer

    os.makedirs(path, exist_ok=True)
    Y.save_yaml(os.path.join(path, "config.yaml"), cfg_dict)
    with open(os.path.join(path, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(tokens, f, ensure_ascii=False)
    dim = cfg_dict["frontend_conf"]["n_mels"] * cfg_dict["frontend_conf"]["lfr_m"]
    with open(os.path.join(path, "am.mvn"), "w") as f:
        f.write(
            f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n<AddShift> {dim} {dim}\n"
            f"<LearnRateCoef> 0 [ {' '.join(['0'] * dim)} ]\n<Rescale> {dim} {dim}\n"
            f"<LearnRateCoef> 0 [ {' '.join(['1'] * dim)} ]\n</Nnet>\n"
        )
    kw = dict(cfg_dict["model_conf"])
    for k in (
        "specaug",
        "specaug_conf",
        "encoder",
        "encoder_conf",
        "decoder",
        "decoder_conf",
        "predictor",
        "predictor_conf",
        "ctc_conf",
    ):
        kw[k] = cfg_dict.get(k)
    torch.manual_seed(0)
    model = Paraformer(**kw, input_size=dim, vocab_size=len(tokens))
    torch.save(model.state_dict(), os.path.join(path, "model.pt"))
    return model


@pytest.mark.parametrize("flavour", ["1x", "0x"])
def test_funasr_automodel_loads_our_config(tmp_path, flavour):
    """Our to_dict() output (from a 1.x or a normalised 0.x config) is a config.yaml FunASR 1.4.16 loads."""
    pytest.importorskip("funasr")
    import yaml
    from funasr import AutoModel

    tokens = ["<blank>", "<s>", "</s>", "你", "好", "<unk>"]
    if flavour == "1x":
        src = _tiny_1x_dict()
    else:  # the same tiny model written with 0.x names and layout
        src = yaml.safe_load(PARAFORMER_0X)
        src.update(
            encoder_conf=dict(src["encoder_conf"], output_size=16, attention_heads=2, linear_units=32, num_blocks=2),
            decoder_conf=dict(src["decoder_conf"], attention_heads=2, linear_units=32, num_blocks=2, att_layer_num=2),
            predictor_conf=dict(src["predictor_conf"], idim=16),
            frontend_conf=dict(src["frontend_conf"], n_mels=8, lfr_m=2, lfr_n=2, dither=0.0),
        )
        del src["init_param"], src["cmvn_file"]
    cfg = S.ModelConfig.from_dict(src)
    ours = cfg.to_dict()
    ref = _write_model_dir(str(tmp_path / "m"), ours, tokens)
    am = AutoModel(model=str(tmp_path / "m"), device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    model = am.model
    assert type(model).__name__ == "Paraformer"
    assert len(model.encoder.encoders) + len(model.encoder.encoders0) == cfg.encoder_conf.num_blocks
    assert len(model.decoder.decoders) == cfg.decoder_conf.att_layer_num
    assert model.ctc is None and model.predictor.tail_threshold == pytest.approx(0.45)
    assert am.kwargs["frontend_conf"]["lfr_m"] == cfg.frontend_conf.lfr_m
    theirs, mine = model.state_dict(), ref.state_dict()
    assert theirs.keys() == mine.keys() and all(theirs[k].shape == mine[k].shape for k in mine)
    assert am.kwargs["tokenizer"].token_list == tokens


def test_model_dir_layers(tmp_path):
    root = tmp_path / "dir"
    root.mkdir()
    (root / "config.yaml").write_text(PARAFORMER_0X, encoding="utf-8")
    (root / "am.mvn").write_text("x")
    (root / "decoding.yaml").write_text(
        "beam_size: 1\npenalty: 0.3\nmaxlenratio: 0.0\nminlenratio: 0.0\nctc_weight: 0.0\nlm_weight: 0.0\n",
        encoding="utf-8",
    )
    (root / "finetune.yaml").write_text("max_epoch: 9\n", encoding="utf-8")
    (root / "model.pt").write_text("x")
    md = detect_model_dir(str(root))
    overrides = [("decoding overrides", C.decoding_layer({"beam_size": 4}))]
    cfg = S.ModelConfig.from_dict(C.merge_layers(C.model_dir_layers(md, "infer") + overrides))
    assert cfg.encoder == "SANMEncoder" and cfg.tokenizer_conf.token_list[3] == "你"
    assert cfg.frontend_conf.cmvn_file == str(root / "am.mvn")  # the dir's file wins, as in FunASR
    decoding = cfg.decoding
    assert decoding.beam_size == 4 and decoding.penalty == 0.3 and decoding.nbest == 1
    with pytest.raises(ConfigError, match="decoding overrides: unknown key 'decoding.beam'"):
        C.merge_layers(C.model_dir_layers(md, "infer") + [("decoding overrides", C.decoding_layer({"beam": 4}))])
    layers = C.model_dir_layers(md, "finetune")
    assert [s for s, _ in layers][-1] == str(root / "finetune.yaml")
    cfg = S.ModelConfig.from_dict(C.merge_layers(layers + [("command line", C.flags_layer({"lr": 1e-4}))]))
    assert cfg.train_conf.max_epoch == 9 and cfg.optim_conf.lr == 1e-4
    cfg.check_trainable()


def test_every_section_is_typed_and_every_flag_has_a_config_path():
    from funasr_lite.config.fields import Section

    typed = [k for k in S.TOP_LEVEL_KEYS if isinstance(getattr(S.ModelConfig(), k), Section)]
    assert sorted(S.SECTIONS) == sorted(typed) and all(S.SECTIONS[k].SECTION == k for k in typed)
    assert S.SECTIONS["optim_conf"].CLASS_KEY == "optim" and S.SECTIONS["encoder_conf"].CLASS_KEY is None
    assert [n for n in C.__all__ if not hasattr(C, n)] == []
    paths = {name: path for name, (path, _, _) in C.config_flag_paths().items()}
    assert paths["lr"] == "optim_conf.lr" and paths["max_epoch"] == "train_conf.max_epoch"
    assert paths["beam_size"] == "decoding.beam_size" and paths["scheduler_conf"] == "scheduler_conf"
    for name, (path, f, _) in C.config_flag_paths().items():  # every flag documents itself
        assert f.metadata["help"], name


def test_load_yaml_merge_keys_override_and_take_the_anchor_lines(tmp_path):
    text = "base: &b\n  x: 1\n  y: 2\nd:\n  <<: *b\n  x: 5\ne:\n  <<: [*b, {z: 3}]\n"
    d = Y.load_yaml(_write(tmp_path, "merge.yaml", text))
    assert d["d"] == {"x": 5, "y": 2} and d["e"] == {"x": 1, "y": 2, "z": 3}  # a set key wins over a merged one
    assert d.lines[("d", "x")] == 6 and d.lines[("d", "y")] == 3 and d.lines[("e", "z")] == 8
    with pytest.raises(ConfigError, match=r"dup\.yaml:7: duplicate key 'd.x' \(first set on line 6\)"):
        Y.load_yaml(_write(tmp_path, "dup.yaml", text.replace("  x: 5\n", "  x: 5\n  x: 6\n")))


@pytest.mark.parametrize(
    "text, error",
    [
        ("model: Paraformer\nname: a\x00b\n", r"ctl\.yaml:2:8: invalid YAML: character #x0000: .*not allowed"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", r"ctl\.yaml: invalid YAML: nested too deeply to load"),
        ("a: &x\n  b: *x\n", r"ctl\.yaml: invalid YAML: nested too deeply to load, or an alias inside itself"),
        ("a: !!int abc\n", r"ctl\.yaml: invalid YAML: invalid literal for int"),
        ("a: " + "9" * 5000 + "\n", r"ctl\.yaml: invalid YAML: .*digits"),
    ],
    ids=["nul", "deep", "self-alias", "bad-int-tag", "huge-int"],
)
def test_load_yaml_errors_escaping_pyyaml_are_config_errors(tmp_path, text, error):
    with pytest.raises(ConfigError, match=error):
        Y.load_yaml(_write(tmp_path, "ctl.yaml", text))
