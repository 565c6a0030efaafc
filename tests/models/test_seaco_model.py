"""SeacoParaformer: training loss and gradients equal funasr 1.4.16's on the same batch, weights and hotwords;
the hotword batch equals FunASR's hotword collator's; hotword sampling follows FunASR's rules."""

import copy
import random

import pytest
import torch

from funasr_lite.models.seaco import SeacoParaformer, hotword_batch, sample_hotword_span
from tiny_model import SharedEncoder, bicif_kwargs, private_randperm

D, V, FEAT, T = 64, 40, 560, 30
NO_BIAS = V - 2
CONFIG = dict(
    bicif_kwargs(D, V, FEAT),
    seaco_decoder="ParaformerSANMDecoder",
    seaco_decoder_conf=dict(
        attention_heads=4, linear_units=128, num_blocks=4, kernel_size=11, use_output_layer=False, wo_input_layer=True
    ),
    inner_dim=D,
    seaco_lsm_weight=0.1,
    seaco_weight=0.01,
    NO_BIAS=NO_BIAS,
)


def _batch():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, T, FEAT, generator=gen)
    text_lengths = torch.tensor([9, 6, 4])
    text = torch.randint(3, V - 2, (3, 9), generator=gen)
    return x, torch.full((3,), T), text.masked_fill(torch.arange(9)[None, :] >= text_lengths[:, None], -1), text_lengths


@pytest.mark.parametrize("bias_encoder_bid", [False, True])
def test_training_loss_and_grads_match_funasr(bias_encoder_bid, monkeypatch):
    pytest.importorskip("funasr")
    from funasr.models.seaco_paraformer.model import SeacoParaformer as FunasrSeaco

    config = dict(CONFIG, bias_encoder_bid=bias_encoder_bid)
    torch.manual_seed(0)
    theirs = FunasrSeaco(**copy.deepcopy(config)).eval()
    with torch.no_grad():
        theirs.predictor.cif_output.bias.fill_(1.0)
    ours = SeacoParaformer(**copy.deepcopy(config)).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.encoder = SharedEncoder(ours.encoder)

    x, lengths, text, text_lengths = _batch()
    spans = [(2, 5), (), (0, 1)]
    hotwords, labels = hotword_batch(text, text_lengths, spans, NO_BIAS, sos=1)
    pad = torch.nn.utils.rnn.pad_sequence([torch.tensor(h) for h in hotwords], batch_first=True)
    draws = private_randperm(monkeypatch)

    draws.manual_seed(11)
    ref_loss, ref_stats, ref_weight = theirs(
        x,
        lengths,
        text,
        text_lengths,
        hotword_pad=pad,
        hotword_lengths=torch.tensor([len(h) for h in hotwords]),
        seaco_label_pad=labels,
    )
    ref_loss.backward()
    ref = {k.replace("encoder.inner.", "encoder.", 1): p.grad for k, p in theirs.named_parameters()}
    draws.manual_seed(11)
    loss, stats = ours(x, lengths, text.clamp(min=0), text_lengths, hotword_spans=spans)
    loss.backward()

    assert abs(loss.item() - ref_loss.item()) < 1e-4
    for key in ("loss_seaco", "loss_att"):
        assert abs(float(stats[key]) - float(ref_stats[key])) < 1e-4, key
    assert stats["acc"] == pytest.approx(float(ref_stats["acc_att"]), abs=1e-6)
    assert stats["weight"] == int(ref_weight)
    mine = dict(ours.named_parameters())
    names = [
        "bias_encoder.weight_hh_l1",
        "seaco_decoder.decoders.5.src_attn.linear_k_v.weight",
        "hotword_output_layer.weight",
        "decoder.embed.0.weight",
        "decoder.output_layer.weight",
        "predictor.cif_conv1d.weight",
    ] + (["lstm_proj.weight"] if bias_encoder_bid else [])
    for name in names:
        assert (ref[name] - mine[name].grad).abs().max() < 1e-4, name
    assert mine["hotword_output_layer.weight"].grad.abs().max() > 0


def test_hotword_batch_matches_funasr_collator():
    pytest.importorskip("funasr")
    from funasr.datasets.audio_datasets.datasets import AudioDatasetHotword

    _, _, text, text_lengths = _batch()
    spans = [(2, 5), (), (0, 1)]
    samples = [
        {
            "text": text[b, : text_lengths[b]],
            "text_lengths": text_lengths[b : b + 1],
            "hotword_indx": list(span) or [-1],
            "seaco_id": NO_BIAS,
        }
        for b, span in enumerate(spans)
    ]
    fake = type("Collating", (), {"int_pad_value": -1, "float_pad_value": 0.0})()
    ref = AudioDatasetHotword.collator(fake, samples)
    hotwords, labels = hotword_batch(text, text_lengths, spans, NO_BIAS, sos=1)
    assert torch.equal(labels, ref["seaco_label_pad"])
    assert [len(h) for h in hotwords] == ref["hotword_lengths"].tolist()
    for h, row in zip(hotwords, ref["hotword_pad"]):
        assert h == row[: len(h)].tolist()


def test_sampled_hotword_spans_follow_funasrs_rules():
    rng = random.Random(0)
    kinds = set()
    for _ in range(400):
        n = rng.randint(0, 30)
        span = sample_hotword_span(n, rng)
        kinds.add(len(span))
        assert span == () or n >= 2
        for s, e in zip(span[0::2], span[1::2]):
            assert 0 <= s and e <= n - 1 and 2 <= e - s + 1 <= 8
        if len(span) == 4:
            assert span[0] <= n // 3 and span[2] > span[1]
    assert kinds == {0, 2, 4}


def test_asf_decoding_matches_funasr_and_the_filter_matters():
    """Biased log-probs equal FunASR's _seaco_decode_with_ASF (batch 1, as FunASR filters on row 0), with
    more hotwords than the filter keeps; the filter changes them."""
    pytest.importorskip("funasr")
    from funasr.models.seaco_paraformer.model import SeacoParaformer as FunasrSeaco

    torch.manual_seed(1)
    theirs = FunasrSeaco(**copy.deepcopy(CONFIG)).eval()
    with torch.no_grad():
        theirs.hotword_output_layer.bias[NO_BIAS] += 1.5  # "no bias" at some positions, a hotword at others
    ours = SeacoParaformer(**copy.deepcopy(CONFIG)).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    gen = torch.Generator().manual_seed(5)
    enc, embeds = torch.randn(1, T, D, generator=gen), torch.randn(1, 8, D, generator=gen)
    enc_lens, token_lens = torch.tensor([T]), torch.tensor([8])
    hot = [
        torch.randint(3, V - 2, (int(n),), generator=gen).tolist() for n in torch.randint(1, 5, (60,), generator=gen)
    ]
    with torch.no_grad():
        ref = theirs._seaco_decode_with_ASF(enc, enc_lens, embeds, token_lens, hw_list=hot + [[1]])
        mine = ours.biased_log_probs(enc, enc_lens, embeds, token_lens, hot)
        unfiltered = ours.biased_log_probs(enc, enc_lens, embeds, token_lens, hot, nfilter=0)
        plain = ours.biased_log_probs(enc, enc_lens, embeds, token_lens, None)
    assert (mine - ref).abs().max() < 1e-4
    assert (mine - unfiltered).abs().max() > 1e-3 and (mine - plain).abs().max() > 1e-3
    assert 0 < int((mine == plain).all(-1).sum()) < token_lens.item()  # "no bias" at some positions only
    assert torch.equal(plain, torch.log_softmax(ours.decoder(enc, enc_lens, embeds, token_lens)[0], -1))
