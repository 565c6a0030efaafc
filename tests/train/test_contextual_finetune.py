"""Finetuning a ContextualParaformer: the run trains with hotwords sampled from the targets, and its output
dir is a model dir that FunASR's AutoModel loads and decodes (with hotwords) as funasr-lite does."""

import os

import pytest

from tiny_model import build_tiny_contextual_dir, write_train_dev_data


def test_finetuned_contextual_dir_loads_in_funasr(synth_data_dir, tmp_path):
    funasr = pytest.importorskip("funasr")
    from funasr_lite.config.merge import flags_layer
    from funasr_lite.decode.transcribe import load_model
    from funasr_lite.train.finetune import finetune
    from funasr_lite.train.options import FinetuneOptions

    init = build_tiny_contextual_dir(str(tmp_path / "init"), synth_data_dir)
    data = tmp_path / "data"
    write_train_dev_data(data, synth_data_dir)
    out = tmp_path / "out"
    flags = dict(optim="adam", lr=2e-3, scheduler="warmuplr", scheduler_conf='{"warmup_steps": 10}', batch_bins=300)
    flags.update(max_epoch=1, keep_nbest_models=[1], num_workers=0)
    opts = FinetuneOptions(model=init, data_path=str(data), output_dir=str(out), progress_bar=False, device="cpu")
    res = finetune(opts, [("command line", flags_layer(flags))])
    assert res["epochs"] == 1 and res["step"] > 0
    assert {"config.yaml", "model.pt", "tokens.json", "am.mvn", "seg_dict"} <= set(os.listdir(out))

    wavs = [
        line.split(maxsplit=1)[1].strip() for line in open(os.path.join(synth_data_dir, "wav.scp"), encoding="utf-8")
    ]
    ours = load_model(str(out), device="cpu")
    am = funasr.AutoModel(model=str(out), disable_update=True, device="cpu", disable_pbar=True, disable_log=True)
    assert type(am.model).__name__ == "ContextualParaformer"
    for hotword in (None, "电话 号码"):
        mine = ours.transcribe(wavs[:3], hotword=hotword)
        for wav, r in zip(wavs[:3], mine):
            assert am.generate(input=wav, hotword=hotword)[0]["text"] == r["text"]
