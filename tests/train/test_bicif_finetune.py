"""Finetuning a BiCifParaformer: the loss includes the timestamp head's term, and the output dir is a model
dir that funasr 1.4.16's AutoModel loads and decodes as we do."""

import os

import pytest
import torch

from tiny_model import BICIF_CONFIG, build_tiny_model_dir, funasr_state_dict, spread_timestamp_head


def test_finetuned_bicif_dir_loads_in_funasr(synth_data_dir, tmp_path):
    funasr = pytest.importorskip("funasr")
    from funasr.models.bicif_paraformer.model import BiCifParaformer as FunasrBiCif

    from funasr_lite.config.merge import flags_layer
    from funasr_lite.decode.transcribe import load_model
    from funasr_lite.train.finetune import finetune
    from funasr_lite.train.options import FinetuneOptions

    data = tmp_path / "data"
    for sub in ("train", "dev"):
        os.makedirs(data / sub)
        for name in ("wav.scp", "text"):
            with open(os.path.join(synth_data_dir, name), encoding="utf-8") as f:
                (data / sub / name).write_text(f.read(), encoding="utf-8")
    state = spread_timestamp_head(funasr_state_dict(FunasrBiCif, BICIF_CONFIG))
    init = build_tiny_model_dir(str(tmp_path / "init"), synth_data_dir, state_dict=state, config=BICIF_CONFIG)
    out = tmp_path / "out"
    flags = dict(
        optim="adam", lr=2e-3, scheduler="none", batch_bins=300, keep_nbest_models=[1], num_workers=0, max_epoch=1
    )
    opts = FinetuneOptions(model=init, data_path=str(data), output_dir=str(out), progress_bar=False, device="cpu")
    res = finetune(opts, [("command line", flags_layer(flags))])
    assert res["step"] > 0
    trained = torch.load(out / "model.pt", weights_only=True)
    moved = (trained["predictor.cif_output2.weight"] - state["predictor.cif_output2.weight"]).abs().max()
    assert moved > 0  # the timestamp head was trained (its loss term has gradients)

    wavs = [line.split()[1] for line in open(data / "dev" / "wav.scp", encoding="utf-8")][:2]
    ours = load_model(str(out), device="cpu").transcribe(wavs)
    am = funasr.AutoModel(model=str(out), disable_update=True, device="cpu", disable_pbar=True, disable_log=True)
    for wav, mine in zip(wavs, ours):
        ref = am.generate(input=wav)[0]
        assert mine["text"] and (mine["text"], mine["timestamp"]) == (ref["text"], ref["timestamp"])
