"""Finetuning a BiCifParaformer or SeacoParaformer: the heads of their own losses train, and the output dir is
a model dir that funasr 1.4.16's AutoModel loads and decodes as we do."""

import pytest
import torch

from tiny_model import (
    BICIF_CONFIG,
    SEACO_CONFIG,
    build_tiny_model_dir,
    funasr_bicif_state,
    funasr_seaco_state,
    write_train_dev_data,
)


def _funasr_weights(name):
    if name == "bicif":
        return BICIF_CONFIG, funasr_bicif_state(), "cif_output2"
    return SEACO_CONFIG, funasr_seaco_state(), "hotword_output_layer"


@pytest.mark.parametrize("name", ["bicif", "seaco"])
def test_finetuned_dir_loads_in_funasr(name, synth_data_dir, tmp_path):
    funasr = pytest.importorskip("funasr")

    from funasr_lite.config.merge import flags_layer
    from funasr_lite.decode.transcribe import load_model
    from funasr_lite.train.finetune import finetune
    from funasr_lite.train.options import FinetuneOptions

    data = tmp_path / "data"
    write_train_dev_data(data, synth_data_dir)
    config, state, own_head = _funasr_weights(name)
    init = build_tiny_model_dir(str(tmp_path / "init"), synth_data_dir, state_dict=state, config=config)
    out = tmp_path / "out"
    flags = dict(
        optim="adam", lr=2e-3, scheduler="none", batch_bins=300, keep_nbest_models=[1], num_workers=0, max_epoch=1
    )
    opts = FinetuneOptions(model=init, data_path=str(data), output_dir=str(out), progress_bar=False, device="cpu")
    res = finetune(opts, [("command line", flags_layer(flags))])
    assert res["step"] > 0
    trained = torch.load(out / "model.pt", weights_only=True)
    key = f"predictor.{own_head}.weight" if name == "bicif" else f"{own_head}.weight"
    assert (trained[key] - state[key]).abs().max() > 0  # the model's own loss term trains its own head

    wavs = [line.split()[1] for line in open(data / "dev" / "wav.scp", encoding="utf-8")][:2]
    ours = load_model(str(out), device="cpu").transcribe(wavs)
    am = funasr.AutoModel(model=str(out), disable_update=True, device="cpu", disable_pbar=True, disable_log=True)
    for wav, mine in zip(wavs, ours):
        ref = am.generate(input=wav)[0]
        assert mine["text"] and (mine["text"], mine["timestamp"]) == (ref["text"], ref["timestamp"])
