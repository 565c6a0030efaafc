"""Model tests: parity with funasr 1.4.16 (oracle) and padding invariance.

A tiny FunASR Paraformer with random weights is built with funasr's own class;
its state_dict is loaded into ours with strict=True. The predictor's output bias
is raised so that random weights fire a varied, non-zero number of tokens.
"""

import copy

import pytest
import torch

from funasr_lite.models.cif import CifPredictorV2, cif_integrate, cif_timestamps
from funasr_lite.models.ctc import CTC
from funasr_lite.models.decoder import ParaformerSANMDecoder
from funasr_lite.models.paraformer import Paraformer
from funasr_lite.models.sanm import SANMEncoder
from funasr_lite.models.specaug import SpecAugLFR
from tiny_model import SharedEncoder, private_randperm, sanm_encoder_conf

D, V, FEAT = 64, 50, 560
CONFIG = dict(
    encoder="SANMEncoder",
    encoder_conf=sanm_encoder_conf(
        D, num_blocks=3, dropout_rate=0.1, positional_dropout_rate=0.1, attention_dropout_rate=0.1
    ),
    decoder="ParaformerSANMDecoder",
    decoder_conf=dict(
        attention_heads=4,
        linear_units=128,
        num_blocks=3,
        dropout_rate=0.1,
        positional_dropout_rate=0.1,
        self_attention_dropout_rate=0.1,
        src_attention_dropout_rate=0.1,
        att_layer_num=2,
        kernel_size=11,
        sanm_shfit=0,
    ),
    predictor="CifPredictorV2",
    predictor_conf=dict(idim=D, threshold=1.0, l_order=1, r_order=1, tail_threshold=0.45),
    ctc_weight=0.3,
    ctc_conf=dict(dropout_rate=0.0, ctc_type="builtin", reduce=True, ignore_nan_grad=True),
    input_size=FEAT,
    vocab_size=V,
    lsm_weight=0.1,
    length_normalized_loss=True,
    predictor_weight=1.0,
    predictor_bias=1,
    sampling_ratio=0.75,
)
LENGTHS = torch.tensor([40, 31, 17, 9])


def _feats(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(LENGTHS), int(LENGTHS.max()), FEAT, generator=gen)
    return x * (torch.arange(x.size(1))[None, :, None] < LENGTHS[:, None, None])


def _valid(lengths, t):
    return (torch.arange(t)[None, :] < lengths[:, None])[:, :, None]


@pytest.fixture(scope="module")
def pair():
    """(funasr model, our model) with identical random weights, both in eval mode."""
    pytest.importorskip("funasr")
    from funasr.models.paraformer.model import Paraformer as FunasrParaformer

    torch.manual_seed(0)
    theirs = FunasrParaformer(**CONFIG)
    with torch.no_grad():
        theirs.predictor.cif_output.bias.fill_(1.0)
    ours = Paraformer(**CONFIG)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs.eval(), ours.eval()


@pytest.fixture(scope="module")
def ours_only():
    torch.manual_seed(1)
    model = Paraformer(**CONFIG)
    with torch.no_grad():
        model.predictor.cif_output.bias.fill_(1.0)
    return model.eval()


# ----------------------------------------------------------------------------- state dict


def test_state_dict_keys_and_shapes_match_funasr(pair):
    theirs, ours = pair
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    assert "decoder.decoders2.0.self_attn.fsmn_block.weight" in b and "ctc.ctc_lo.weight" in b


# ----------------------------------------------------------------------------- inference parity


def test_encoder_matches_funasr(pair):
    theirs, ours = pair
    x = _feats()
    with torch.no_grad():
        ref, ref_lens = theirs.encode(x, LENGTHS)
        enc, enc_lens = ours.encode(x, LENGTHS)
    mask = _valid(LENGTHS, x.size(1))
    assert torch.equal(ref_lens, enc_lens)
    assert ((ref - enc) * mask).abs().max() < 1e-4
    assert (enc * ~mask).abs().max() == 0  # padded frames are zero


def test_predictor_and_decoder_match_funasr_batch1(pair):
    """Our batched outputs equal FunASR's one-utterance-at-a-time outputs."""
    theirs, ours = pair
    x = _feats()
    with torch.no_grad():
        enc, enc_lens = ours.encode(x, LENGTHS)
        embeds, token_num, alphas, peaks = ours.calc_predictor(enc, enc_lens)
        token_lens = token_num.round().long()
        logp = ours.decode_logits(enc, enc_lens, embeds, token_lens)
        counts = []
        for b, n in enumerate(LENGTHS.tolist()):
            ref_enc, ref_lens = theirs.encode(x[b : b + 1, :n], LENGTHS[b : b + 1])
            ref_emb, ref_num, ref_alphas, ref_peaks = theirs.calc_predictor(ref_enc, ref_lens)
            k = int(ref_num.round())
            counts.append(k)
            assert token_num[b] == ref_num[0]
            assert (alphas[b, : n + 1] - ref_alphas[0]).abs().max() < 1e-5
            assert (peaks[b, : n + 1] - ref_peaks[0]).abs().max() < 1e-4
            assert (embeds[b, :k] - ref_emb[0, :k]).abs().max() < 1e-4
            ref_logp, _ = theirs.cal_decoder_with_predictor(ref_enc, ref_lens, ref_emb, ref_num.round().long())
            assert (logp[b, :k] - ref_logp[0, :k]).abs().max() < 1e-4
            assert torch.equal(logp[b, :k].argmax(-1), ref_logp[0, :k].argmax(-1))
    assert min(counts) > 0 and len(set(counts)) == len(counts)  # non-degenerate, varied


def test_funasr_batched_predictor_leaks_padding(pair):
    """Why FunASR's batched decode differs from batch-1: its predictor sees padded encoder frames.

    Zeroing the padded encoder frames (what our encoder does) makes its batched predictor
    match its batch-1 predictor.
    """
    theirs, _ = pair
    x = _feats()
    b, n = 1, int(LENGTHS[1])
    with torch.no_grad():
        enc, lens = theirs.encode(x, LENGTHS)
        single = theirs.calc_predictor(*theirs.encode(x[b : b + 1, :n], LENGTHS[b : b + 1]))
        leaky = theirs.calc_predictor(enc, lens)
        fixed = theirs.calc_predictor(enc * _valid(lens, enc.size(1)), lens)
    k = int(single[1][0])
    assert (leaky[2][b, n - 1] - single[2][0, n - 1]).abs() > 1e-4  # last frame's alpha sees padding
    assert (fixed[2][b, : n + 1] - single[2][0]).abs().max() < 1e-5
    assert (fixed[0][b, :k] - single[0][0, :k]).abs().max() < 1e-4


# ----------------------------------------------------------------------------- padding invariance


def test_padding_invariance(ours_only):
    model = ours_only
    x = _feats(seed=3)
    with torch.no_grad():
        enc, enc_lens = model.encode(x, LENGTHS)
        embeds, token_num, alphas, _ = model.calc_predictor(enc, enc_lens)
        token_lens = token_num.round().long()
        logp = model.decode_logits(enc, enc_lens, embeds, token_lens)
        stamps = cif_timestamps(alphas, enc_lens, token_lens)
        for b, n in enumerate(LENGTHS.tolist()):
            e1, l1 = model.encode(x[b : b + 1, :n], LENGTHS[b : b + 1])
            m1, n1, a1, _ = model.calc_predictor(e1, l1)
            k = int(n1.round())
            assert k > 0 and token_lens[b] == k
            assert (enc[b, :n] - e1[0]).abs().max() < 1e-5
            assert (embeds[b, :k] - m1[0, :k]).abs().max() < 1e-5
            lp1 = model.decode_logits(e1, l1, m1, n1.round().long())
            assert (logp[b, :k] - lp1[0, :k]).abs().max() < 1e-5
            assert torch.equal(logp[b, :k].argmax(-1), lp1[0, :k].argmax(-1))
            assert stamps[b] == cif_timestamps(a1, l1, n1.round().long())[0]


# ----------------------------------------------------------------------------- training parity


def _text():
    gen = torch.Generator().manual_seed(7)
    text = torch.randint(3, V, (len(LENGTHS), 12), generator=gen)
    text_lengths = torch.tensor([12, 9, 5, 3])
    padded = text.masked_fill(torch.arange(12)[None, :] >= text_lengths[:, None], -1)
    return padded, text_lengths


@pytest.mark.parametrize("sampling_ratio", [0.0, 0.75])
def test_training_loss_and_grads_match_funasr(pair, sampling_ratio, monkeypatch):
    """Loss, stats and gradients equal FunASR's (dropout off; sampler with the same draws).

    The sampler's ``torch.randperm`` draws come from a private generator reset before
    each forward: FunASR's layer containers draw ``len(layers)`` uniforms from the
    global RNG on every call (even in eval mode), so the global streams differ.
    """
    draws = private_randperm(monkeypatch)
    theirs0, ours0 = pair
    theirs, ours = copy.deepcopy(theirs0), copy.deepcopy(ours0)  # eval mode: dropout off, no specaug
    theirs.encoder = SharedEncoder(ours.encoder)
    theirs.sampling_ratio = ours.sampling_ratio = sampling_ratio
    x = _feats(seed=5)
    text, text_lengths = _text()

    draws.manual_seed(11)
    ref_loss, ref_stats, ref_weight = theirs(x, LENGTHS, text, text_lengths)
    ref_loss.backward()
    ref_grads = {k: p.grad.clone() for k, p in theirs.named_parameters() if p.grad is not None}
    ours.zero_grad()
    draws.manual_seed(11)
    loss, stats = ours(x, LENGTHS, text.clamp(min=0), text_lengths)
    loss.backward()

    assert abs(loss.item() - ref_loss.item()) < 1e-4
    for key in ("loss_att", "loss_pre", "loss_ctc"):
        assert abs(float(stats[key]) - float(ref_stats[key])) < 1e-4, key
    assert stats["acc"] == pytest.approx(float(ref_stats["acc"]), abs=1e-9)
    assert stats["weight"] == int(ref_weight)
    grads = {k.replace("encoder.", "encoder.inner.", 1): p.grad for k, p in ours.named_parameters()}
    checked = [
        "encoder.inner.encoders0.0.self_attn.linear_q_k_v.weight",
        "encoder.inner.encoders.1.self_attn.fsmn_block.weight",
        "predictor.cif_conv1d.weight",
        "predictor.cif_output.weight",
        "decoder.decoders.0.src_attn.linear_k_v.weight",
        "decoder.decoders2.0.self_attn.fsmn_block.weight",
        "decoder.output_layer.weight",
        "ctc.ctc_lo.weight",
    ]
    if sampling_ratio > 0:
        checked.append("decoder.embed.0.weight")
    for name in checked:
        assert (grads[name] - ref_grads[name]).abs().max() < 1e-4, name


def test_encoder_gradients_match_funasr(pair):
    theirs0, ours0 = pair
    theirs, ours = copy.deepcopy(theirs0), copy.deepcopy(ours0)
    x = _feats(seed=2)
    probe = torch.randn(x.size(0), x.size(1), D, generator=torch.Generator().manual_seed(4))
    probe = probe * _valid(LENGTHS, x.size(1))
    (theirs.encode(x, LENGTHS)[0] * probe).sum().backward()
    (ours.encode(x, LENGTHS)[0] * probe).sum().backward()
    ref = dict(theirs.encoder.named_parameters())
    for name, p in ours.encoder.named_parameters():
        assert (p.grad - ref[name].grad).abs().max() < 1e-4, name


def test_ctc_loss_matches_funasr_and_skips_infeasible():
    pytest.importorskip("funasr")
    from funasr.models.ctc.ctc import CTC as FunasrCTC

    torch.manual_seed(0)
    theirs = FunasrCTC(odim=V, encoder_output_size=D)
    ours = CTC(odim=V, encoder_output_size=D)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    hs = torch.randn(3, 10, D, requires_grad=True)
    hlens = torch.tensor([10, 8, 2])
    ys = torch.randint(1, V, (3, 5))
    ys_lens = torch.tensor([5, 4, 5])  # the third cannot fit in 2 frames
    ref = theirs(hs, hlens, ys, ys_lens)
    got = ours(hs, hlens, ys, ys_lens)
    assert torch.isfinite(got) and abs(got.item() - ref.item()) < 1e-4


def test_specaug_matches_funasr_with_same_seed():
    pytest.importorskip("funasr")
    from funasr.models.specaug.specaug import SpecAugLFR as FunasrSpecAugLFR

    conf = dict(
        apply_time_warp=True,
        freq_mask_width_range=[0, 30],
        lfr_rate=6,
        num_freq_mask=2,
        apply_time_mask=True,
        time_mask_width_range=[0, 12],
        num_time_mask=2,
    )
    x = torch.randn(3, 40, FEAT) + 3.0
    for lengths in (torch.tensor([40, 40, 40]), torch.tensor([40, 33, 21])):
        torch.manual_seed(9)
        ref, _ = FunasrSpecAugLFR(**conf)(x.clone(), lengths)
        torch.manual_seed(9)
        got, _ = SpecAugLFR(**conf)(x.clone(), lengths)
        assert torch.allclose(got, ref, atol=1e-5)
        assert (got == 0).any()


# ----------------------------------------------------------------------------- CIF details


def test_cif_integrate_hand_example():
    alphas = torch.tensor([[0.625, 0.625, 0.25, 0.5, 0.0]])  # prefix sums 0.625 1.25 1.5 2 2
    hidden = torch.eye(5)[None]  # frame t is the unit vector e_t
    embeds, peaks = cif_integrate(hidden, alphas, 3)
    expected = torch.tensor([[0.625, 0.375, 0, 0, 0], [0, 0.25, 0.25, 0.5, 0], [0, 0, 0, 0, 0]])
    assert torch.equal(embeds[0], expected)  # the third token never fires: zero
    assert torch.equal(peaks[0], torch.tensor([0.625, 1.25, 0.5, 1.0, 0.0]))


def test_cif_integrate_matches_funasr_cif_v1():
    """Same semantics as FunASR's vectorised CIF, including frames whose alpha crosses two integers."""
    pytest.importorskip("funasr")
    from funasr.models.paraformer.cif_predictor import cif_v1

    gen = torch.Generator().manual_seed(3)
    alphas = torch.rand(3, 30, generator=gen) * 0.9
    alphas[1, 7] = 1.7  # fires once, spans two units
    alphas[2, 20:] = 0.0
    hidden = torch.randn(3, 30, 8, generator=gen)
    ref_embeds, ref_peaks = cif_v1(hidden, alphas, 1.0)
    embeds, peaks = cif_integrate(hidden, alphas, ref_embeds.size(1))
    assert torch.allclose(embeds, ref_embeds, atol=1e-5)
    assert torch.allclose(peaks, ref_peaks, atol=1e-6)


def test_cif_timestamps_follow_fires():
    alphas = torch.tensor([[0.5, 0.5, 0.25, 0.25, 0.5, 0.0, 0.45]])  # 6 frames + tail frame
    stamps = cif_timestamps(alphas, torch.tensor([6]), torch.tensor([2]), frame_ms=60.0)
    # token 0 fires at the end of frame 1 (120 ms); token 1 at the end of frame 4 (300 ms)
    assert stamps == [[(0, 120), (120, 300)]]
    long = cif_timestamps(alphas, torch.tensor([6]), torch.tensor([3]))[0]
    assert long[2] == (300, 360)  # the tail token is clamped to the audio's end


# ----------------------------------------------------------------------------- config handling


def test_from_config_and_bad_configs():
    config = {
        "model": "Paraformer",
        "model_conf": {k: CONFIG[k] for k in ("ctc_weight", "lsm_weight", "predictor_bias")},
        "encoder": "SANMEncoder",
        "encoder_conf": CONFIG["encoder_conf"],
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": CONFIG["decoder_conf"],
        "predictor": "CifPredictorV2",
        "predictor_conf": CONFIG["predictor_conf"],
        "ctc_conf": CONFIG["ctc_conf"],
        "frontend": "WavFrontend",
        "frontend_conf": {"n_mels": 80, "lfr_m": 7},
        "specaug": "SpecAugLFR",
        "specaug_conf": {"apply_time_warp": False, "time_mask_width_range": [0, 12]},
        "token_list": [str(i) for i in range(V)],
        "train_conf": {"max_epoch": 1},
    }
    model = Paraformer.from_config(config, vocab_size=V)
    assert model.ctc is not None and model.encoder.encoders0[0].norm1.normalized_shape == (FEAT,)
    with pytest.raises(ValueError, match="encoder_conf"):
        Paraformer.from_config({**config, "encoder_conf": {**CONFIG["encoder_conf"], "num_blockz": 2}}, vocab_size=V)
    with pytest.raises(ValueError, match="model_conf"):
        Paraformer.from_config({**config, "model_conf": {"ctc_wieght": 0.1}}, vocab_size=V)
    with pytest.raises(ValueError, match="vocab"):
        Paraformer.from_config(config, vocab_size=0)
    with pytest.raises(ValueError, match="UniASR"):
        Paraformer.from_config({**config, "model": "UniASR"}, vocab_size=V)
    with pytest.raises(ValueError, match="concat_after.*not supported"):  # FunASR options we lack are refused
        Paraformer.from_config(
            {**config, "encoder_conf": {**CONFIG["encoder_conf"], "concat_after": True}}, vocab_size=V
        )
    with pytest.raises(ValueError):
        SANMEncoder(FEAT, output_size=64, attention_heads=5)
    with pytest.raises(ValueError):
        SANMEncoder(FEAT, input_layer="conv2d")
    with pytest.raises(ValueError):
        CifPredictorV2(D, 1, 1, threshold=0.9)
    with pytest.raises(ValueError):
        ParaformerSANMDecoder(V, D, num_blocks=2, att_layer_num=3)
    with pytest.raises(ValueError):
        SpecAugLFR(apply_time_mask=True)
