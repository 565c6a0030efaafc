"""The hotword recipe folders (SeACo and Contextual Paraformer-large): defaults, --hotword in the help of the
decoding scripts, the README usage, and a hub id failing fast offline."""

import importlib.util
import os
import time

import pytest

from funasr_lite.cli.recipes import after_finetune_parser, finetune_parser, infer_cli, infer_parser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = os.path.join(ROOT, "egs_modelscope", "asr", "paraformer")
FOLDERS = [
    "speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "speech_paraformer-large-contextual_asr_nat-zh-cn-16k-common-vocab8404",
]


def _defaults(folder, script):
    spec = importlib.util.spec_from_file_location(f"recipe_{script}", os.path.join(RECIPES, folder, script))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # the scripts run only under __main__
    return mod.DEFAULTS


@pytest.mark.parametrize("folder", FOLDERS)
def test_defaults_help_and_readme(folder):
    infer = _defaults(folder, "infer.py")
    assert infer["model"] == f"iic/{folder}" and infer["hotword"] is None
    assert _defaults(folder, "finetune.py")["model"] == f"iic/{folder}"
    after = _defaults(folder, "infer_after_finetune.py")
    assert after["modelscope_model_name"] == f"iic/{folder}" and after["decoding_model_name"] == "model.pt"
    for parser in (infer_parser(infer), after_finetune_parser(after)):
        helptext = " ".join(parser.format_help().split())
        assert "--hotword HOTWORD" in helptext and "a .txt file with one hotword per line" in helptext
    args = infer_parser(infer).parse_args(["--hotword", "魔搭 达摩院"])
    assert args.hotword == "魔搭 达摩院"
    assert "--hotword" not in finetune_parser(_defaults(folder, "finetune.py")).format_help()
    readme = open(os.path.join(RECIPES, folder, "README.md"), encoding="utf-8").read()
    for text in ("## Usage", "--hotword ./hotwords.txt", "--vad_model", "--punc_model", "model.pt", "same CER"):
        assert text in readme, text


@pytest.mark.parametrize("folder", FOLDERS)
def test_hub_id_fails_fast_offline(folder, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"a {tmp_path / 'a.wav'}\n", encoding="utf-8")
    start = time.time()
    code = infer_cli(_defaults(folder, "infer.py"), ["--data_dir", str(data), "--output_dir", str(tmp_path / "o")])
    assert code == 1 and time.time() - start < 20
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--model DIR" in err and folder in err
