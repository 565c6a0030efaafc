"""``--quantize int8`` / ``quantize="int8"``: dynamic int8 Linear layers on the CPU.

The bundled demo model (trained, 1.6 M parameters) decodes its own test set with int8 Linear layers to
(nearly) the fp32 texts; bad values and a CUDA device are refused with a ConfigError naming the flag.
"""

import os

import pytest
import torch

from funasr_lite.cli.recipes import infer_parser
from funasr_lite.decode.options import InferOptions
from funasr_lite.decode.quantize import check_quantize
from funasr_lite.decode.transcribe import load_model
from funasr_lite.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)


def test_int8_decodes_the_demo_test_set_like_fp32():
    wavs = sorted(
        os.path.join(DEMO, "data", "test", "wav", f) for f in os.listdir(os.path.join(DEMO, "data", "test", "wav"))
    )[:24]
    fp32 = load_model(os.path.join(DEMO, "model"), device="cpu")
    int8 = load_model(os.path.join(DEMO, "model"), device="cpu", quantize="int8")
    assert int8.quantize == "int8" and fp32.quantize is None
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    n_fp32 = sum(isinstance(m, torch.nn.Linear) for m in fp32.model.modules())
    assert n_fp32 > 10 and sum(isinstance(m, DynamicInt8Linear) for m in int8.model.modules()) == n_fp32
    assert not any(isinstance(m, torch.nn.Linear) for m in int8.model.modules())
    # the int8 model keeps the module tree (each Linear gains a _packed_params child)
    names = {n for n, _ in int8.model.named_modules() if not n.endswith("._packed_params")}
    assert names == {n for n, _ in fp32.model.named_modules()}
    a = [r["text"] for r in fp32.transcribe(wavs, batch_size=8)]
    b = [r["text"] for r in int8.transcribe(wavs, batch_size=8)]
    assert len(set(a)) > 20 and all(a)  # the test proves something: many different, non-empty texts
    same = sum(x == y for x, y in zip(a, b))
    assert same >= 22, f"int8 agrees with fp32 on only {same}/24 utterances"


def test_bad_values_and_cuda_are_refused():
    check_quantize(None, torch.device("cuda"))  # fp32 anywhere
    check_quantize("int8", torch.device("cpu"))
    with pytest.raises(ConfigError, match="--quantize 'int4': must be one of int8"):
        check_quantize("int4")
    with pytest.raises(ConfigError, match="runs on the CPU only.*--device cpu"):
        check_quantize("int8", torch.device("cuda:0"))
    with pytest.raises(ConfigError, match="--quantize 'fp16'"):
        InferOptions(model="m", data_dir="d", output_dir="o", quantize="fp16")
    with pytest.raises(ConfigError, match="--quantize 'int4'"):
        load_model(os.path.join(DEMO, "model"), device="cpu", quantize="int4")


def test_recipe_flag():
    parser = infer_parser({"model": "m", "data_dir": "d", "output_dir": "o"})
    assert parser.parse_args(["--quantize", "int8"]).quantize == "int8"
    assert parser.parse_args([]).quantize is None
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--quantize", "int4"])
    assert e.value.code == 2
    assert "int8" in parser.format_help()
