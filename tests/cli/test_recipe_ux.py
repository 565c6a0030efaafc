"""The recipe scripts' user-facing rules: which checkpoint infer_after_finetune.py decodes, help texts, the
finetune summary and the next command."""

import importlib.util
import json
import logging
import os
import shutil

import pytest

from funasr_lite.cli.recipes import after_finetune_parser, finetune_parser
from funasr_lite.decode.infer import prepare_finetuned_dir
from funasr_lite.decode.options import AfterFinetuneOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = os.path.join(ROOT, "egs_modelscope", "asr", "paraformer")
FOLDERS = [
    "speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo",
]
DEMO_MODEL = os.path.join(RECIPES, FOLDERS[1], "model")


def _defaults(folder, script):
    spec = importlib.util.spec_from_file_location(f"recipe_{script}", os.path.join(RECIPES, folder, script))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # the scripts run only under __main__
    return mod.DEFAULTS


@pytest.mark.parametrize("folder", FOLDERS)
def test_infer_after_finetune_decodes_model_pt_by_default(folder):
    """One rule: infer_after_finetune.py decodes model.pt (the checkpoint finetune chose), as infer.py does."""
    assert _defaults(folder, "infer_after_finetune.py")["decoding_model_name"] == "model.pt"
    assert AfterFinetuneOptions(output_dir="x").decoding_model_name == "model.pt"
    helptext = after_finetune_parser(_defaults(folder, "infer_after_finetune.py")).format_help()
    assert "model.pt (default) is the checkpoint finetune chose" in " ".join(helptext.split())
    readme = open(os.path.join(RECIPES, folder, "README.md"), encoding="utf-8").read()
    assert "model.pt" in readme and "same CER" in " ".join(readme.split())
    script = open(os.path.join(RECIPES, folder, "infer_after_finetune.py"), encoding="utf-8").read()
    assert "By default it decodes output_dir/model.pt" in script


def test_demo_model_pt_is_the_checkpoint_its_after_finetune_decoded_before():
    """The demo's finetune.py makes model.pt the dev-CER average its infer_after_finetune.py used to default to."""
    assert _defaults(FOLDERS[1], "finetune.py")["final_checkpoint"] == "valid.cer.ave_5best.pb"


def test_prepare_finetuned_dir_accepts_model_pt_and_names_the_chosen_checkpoint(tmp_path, caplog):
    out = tmp_path / "ft"
    shutil.copytree(DEMO_MODEL, out)
    conf = json.loads((out / "configuration.json").read_text(encoding="utf-8"))
    conf["funasr_lite"] = dict(conf.get("funasr_lite") or {}, **{"model.pt": "valid.acc.ave.pb"})
    (out / "configuration.json").write_text(json.dumps(conf), encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="funasr_lite"):
        path = prepare_finetuned_dir(str(out), "model.pt", None, ["am.mvn"])
    assert path == os.path.join(str(out), "model.pt")
    assert "model.pt (= valid.acc.ave.pb, the checkpoint finetune chose)" in caplog.text


def test_keep_nbest_models_help_names_both_metrics():
    helptext = " ".join(finetune_parser({}).format_help().split())
    assert "valid.acc.ave_{n}best.pb and valid.cer.ave_{n}best.pb" in helptext


def test_finetune_start_that_fails_prints_a_short_summary_and_writes_nothing(tmp_path, capsys, caplog):
    from funasr_lite.cli.recipes import finetune_cli

    out = tmp_path / "ft"
    argv = ["--model", DEMO_MODEL, "--data_path", str(tmp_path / "nodata"), "--output_dir", str(out), "--lr", "0.001"]
    with caplog.at_level(logging.INFO, logger="funasr_lite"):
        assert finetune_cli({}, argv) == 1
    assert "is not a directory" in capsys.readouterr().err
    assert not out.exists()  # no train.log, no config.provenance.txt before the checks pass
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("config:")]
    assert len(summary) == 1 and "lr: 0.001  # command line" in summary[0]
    assert len(summary[0].splitlines()) < 10 and "merged config (value" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="funasr_lite"):
        assert finetune_cli({}, argv + ["--verbose"]) == 1
    assert "merged config (value  # where it was set)" in caplog.text and "encoder_conf:" in caplog.text


def test_next_command_decodes_model_pt_of_the_output_dir(tmp_path):
    from funasr_lite.cli.recipes import next_command

    data = tmp_path / "my data"
    (data / "dev").mkdir(parents=True)
    script_dir = os.path.join(RECIPES, FOLDERS[1])
    cmd = next_command("/x/ft", str(data), script_dir)
    assert cmd == (
        f"python {os.path.join(script_dir, 'infer_after_finetune.py')} --output_dir /x/ft --data_dir '{data / 'dev'}'"
    )
    (data / "test").mkdir()
    assert next_command("/x/ft", str(data), str(tmp_path)).startswith("python infer_after_finetune.py ")
    assert next_command("/x/ft", str(data), str(tmp_path)).endswith(f"'{data / 'test'}'")
