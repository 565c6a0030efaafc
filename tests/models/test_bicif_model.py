"""BiCifParaformer / CifPredictorV3: state dict, training loss and gradients equal funasr 1.4.16's.

Both models get the same weights (funasr's random init) and, as in test_model.py, the same encoder module,
so CIF's firing decisions see bit-identical inputs. Utterances have equal lengths: FunASR's timestamp BLSTM
reads padded frames of shorter utterances, ours does not.
"""

import copy

import pytest
import torch

from funasr_lite.models.bicif import BiCifParaformer, CifPredictorV3
from tiny_model import SharedEncoder, bicif_kwargs, private_randperm

D, V, FEAT, T = 64, 40, 560, 30
CONFIG = bicif_kwargs(D, V, FEAT)


@pytest.mark.parametrize(
    "predictor_conf,ctc_weight",
    [({}, 0.0), ({"upsample_type": "cnn", "use_cif1_cnn": True, "upsample_times": 2}, 0.3)],
)
def test_training_loss_and_grads_match_funasr(predictor_conf, ctc_weight, monkeypatch):
    pytest.importorskip("funasr")
    from funasr.models.bicif_paraformer.model import BiCifParaformer as FunasrBiCif

    config = copy.deepcopy(CONFIG)
    config["predictor_conf"].update(predictor_conf)
    config["ctc_weight"] = ctc_weight
    torch.manual_seed(0)
    theirs = FunasrBiCif(**config).eval()  # eval: dropout off, same sampler draws below
    with torch.no_grad():
        theirs.predictor.cif_output.bias.fill_(1.0)
    ours = BiCifParaformer(**config).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.encoder = SharedEncoder(ours.encoder)

    draws = private_randperm(monkeypatch)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, T, FEAT, generator=gen)
    lengths = torch.full((3,), T)
    text_lengths = torch.tensor([9, 6, 4])
    text = torch.randint(3, V, (3, 9), generator=gen)
    text = text.masked_fill(torch.arange(9)[None, :] >= text_lengths[:, None], -1)

    draws.manual_seed(11)
    ref_loss, ref_stats, ref_weight = theirs(x, lengths, text, text_lengths)
    ref_loss.backward()
    ref = {k.replace("encoder.inner.", "encoder.", 1): p.grad for k, p in theirs.named_parameters()}
    draws.manual_seed(11)
    loss, stats = ours(x, lengths, text.clamp(min=0), text_lengths)
    loss.backward()

    assert abs(loss.item() - ref_loss.item()) < 1e-4
    for key in ("loss_att", "loss_pre", "loss_pre2"):
        assert abs(float(stats[key]) - float(ref_stats[key])) < 1e-4, key
    assert float(stats["loss_pre2"]) > 0.1  # the timestamp head's term is really in the loss
    assert stats["weight"] == int(ref_weight)
    for name in ("predictor.cif_output2.weight", "predictor.upsample_cnn.weight", "predictor.cif_conv1d.weight"):
        assert (ref[name] - dict(ours.named_parameters())[name].grad).abs().max() < 1e-4, name
    if ours.predictor.blstm is not None:
        name = "predictor.blstm.weight_hh_l0_reverse"
        assert (ref[name] - dict(ours.named_parameters())[name].grad).abs().max() < 1e-4, name


def test_bad_predictor_settings_are_refused():
    with pytest.raises(ValueError, match="cnn_attn"):
        CifPredictorV3(D, 1, 1, upsample_type="cnn_attn")
    with pytest.raises(ValueError, match="CifPredictorV3"):
        BiCifParaformer(
            **{**CONFIG, "predictor": "CifPredictorV2", "predictor_conf": dict(idim=D, l_order=1, r_order=1)}
        )
