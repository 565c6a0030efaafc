"""The demo's finetune.py finetunes the bundled model by default (no training here): its
defaults point at model/ with a finetuning-sized lr, infer_after_finetune.py decodes what it
writes, and run.sh still passes its own from-scratch flags."""

import os
import re
import runpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)


def _defaults(script):
    return runpy.run_path(os.path.join(DEMO, script))["DEFAULTS"]


def test_finetune_defaults_start_from_the_bundled_model():
    d = _defaults("finetune.py")
    assert os.path.realpath(d["model"]) == os.path.realpath(os.path.join(DEMO, "model"))
    assert os.path.isfile(os.path.join(d["model"], "model.pt"))
    assert os.path.realpath(d["output_dir"]) != os.path.realpath(d["model"])


def test_finetune_defaults_are_finetuning_sized():
    d = _defaults("finetune.py")
    assert 1e-5 <= d["lr"] <= 3e-4  # run.sh trains from scratch at 2e-3
    assert d["scheduler_conf"]["warmup_steps"] <= 50
    assert d["max_epoch"] <= 10
    assert max(d["keep_nbest_models"]) <= d["max_epoch"]
    # model.pt is one of the checkpoints that keep_nbest_models makes
    m = re.fullmatch(r"valid\.(acc|cer)\.ave_(\d+)best\.pb", d["final_checkpoint"])
    assert m and int(m.group(2)) in d["keep_nbest_models"]


def test_infer_after_finetune_decodes_the_finetune_output():
    ft, after = _defaults("finetune.py"), _defaults("infer_after_finetune.py")
    assert after["output_dir"] == ft["output_dir"]
    assert after["decoding_model_name"] == "model.pt"  # = final_checkpoint, the one rule of both recipes
    assert os.path.realpath(after["modelscope_model_name"]) == os.path.realpath(ft["model"])
    assert os.path.dirname(after["data_dir"]) == ft["data_path"]  # the held-out split of your data


def test_run_sh_passes_its_from_scratch_flags():
    with open(os.path.join(DEMO, "run.sh"), encoding="utf-8") as f:
        text = f.read()
    call = text[text.index('python "$here/finetune.py"') :].split("\nfi", 1)[0]
    for flag in ('--model "$work/exp/init_model"', "--lr 0.002", "{warmup_steps: 300}", "--keep_nbest_models 1 5"):
        assert flag in call, flag


def test_mix_with_init_interpolates_float_tensors(tmp_path):
    import torch

    main = runpy.run_path(os.path.join(DEMO, "mix_with_init.py"))["main"]
    torch.save({"w": torch.zeros(3), "n": torch.tensor(1)}, tmp_path / "init.pt")
    torch.save({"w": torch.ones(3), "n": torch.tensor(7)}, tmp_path / "tuned.pb")
    args = ["--init", str(tmp_path / "init.pt"), "--finetuned", str(tmp_path / "tuned.pb"), "--weight", "0.25"]
    assert main(args) == 0
    mixed = torch.load(tmp_path / "mix0.25.pb", weights_only=True)
    assert torch.allclose(mixed["w"], torch.full((3,), 0.25)) and int(mixed["n"]) == 7
    torch.save({"other": torch.ones(3)}, tmp_path / "bad.pb")
    assert main(["--init", str(tmp_path / "init.pt"), "--finetuned", str(tmp_path / "bad.pb")]) == 1
