"""``--dtype`` / ``dtype=``: the model decodes in bf16 (CPU or GPU) or fp16 (GPU only); the frontend, the CIF
predictor and the log-softmax stay float32. fp16 on a CPU and unknown names are refused with a ConfigError."""

import os

import pytest
import torch

from funasr_lite import load_model
from funasr_lite.cli import recipes
from funasr_lite.decode.options import InferOptions
from funasr_lite.errors import ConfigError
from funasr_lite.utils.device import resolve_dtype

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)
N_UTTS = 20


def _test_wavs():
    data = os.path.join(DEMO, "data", "test")
    with open(os.path.join(data, "wav.scp"), encoding="utf-8") as f:
        paths = [line.split()[1] for line in f if line.strip()][:N_UTTS]
    return [p if os.path.isabs(p) else os.path.join(data, p) for p in paths]


def test_fp16_on_cpu_is_refused_before_loading(tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        load_model(str(tmp_path / "no_such_dir"), device="cpu", dtype="fp16")
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        resolve_dtype("fp16", "cpu")


def test_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--dtype 'int4'"):
        resolve_dtype("int4", "cpu")
    with pytest.raises(ConfigError, match="--dtype 'float16'"):
        InferOptions(model="m", data_dir="d", output_dir="o", dtype="float16")
    assert resolve_dtype("bf16", "cpu") is torch.bfloat16 and resolve_dtype("fp32", "cpu") is torch.float32


def test_dtype_flag_of_the_infer_recipe(capsys):
    parser = recipes.infer_parser({})
    args = parser.parse_args(["--model", "m", "--data_dir", "d", "--output_dir", "o", "--dtype", "bf16"])
    assert args.dtype == "bf16"
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "m", "--data_dir", "d", "--output_dir", "o", "--dtype", "half"])
    assert "invalid choice" in capsys.readouterr().err


def test_bf16_on_cpu_agrees_with_fp32():
    wavs = _test_wavs()
    fp32 = load_model(os.path.join(DEMO, "model"), device="cpu")
    bf16 = load_model(os.path.join(DEMO, "model"), device="cpu", dtype="bf16")
    dtypes = {n.split(".")[0]: p.dtype for n, p in bf16.model.named_parameters()}
    assert dtypes == {"encoder": torch.bfloat16, "decoder": torch.bfloat16, "predictor": torch.float32}
    ref, got = fp32.transcribe(wavs), bf16.transcribe(wavs)
    texts = [r["text"] for r in ref]
    assert len(set(texts)) >= N_UTTS // 2  # the demo model gives different texts, so agreement means something
    agree = sum(r["text"] == g["text"] for r, g in zip(ref, got))
    assert agree >= N_UTTS - 1, [(r["text"], g["text"]) for r, g in zip(ref, got) if r["text"] != g["text"]]
    # timestamps come from the float32 CIF on the bf16 encoder's output: they move by a few ms at most
    moves = [
        abs(a - b)
        for r, g in zip(ref, got)
        if r["text"] == g["text"]
        for ra, ga in zip(r["timestamp"], g["timestamp"])
        for a, b in zip(ra, ga)
    ]
    assert moves and max(moves) <= 20
