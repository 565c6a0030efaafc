"""ContextualParaformer: parity with funasr 1.4.16's ContextualParaformer (the oracle) on the same random
weights: state dict, decoder log-probs with and without hotwords, training loss and gradients with the
same sampled hotwords, and the training hotword sampler against FunASR's collator."""

import copy
import random

import pytest
import torch
from test_model import CONFIG, LENGTHS, D, _feats, _text

from funasr_lite.models.contextual import ContextualParaformer
from funasr_lite.models.hotword_sampling import (
    HOTWORD_MAX_LENGTH,
    HOTWORD_MIN_LENGTH,
    collate_hotwords,
    hotword_spans,
    sample_hotwords,
    seaco_labels,
)
from tiny_model import SharedEncoder, private_randperm

CONTEXTUAL = dict(CONFIG, decoder="ContextualParaformerDecoder", inner_dim=D)
HOTWORDS = [[5, 6], [7, 8, 9], [11]]


@pytest.fixture(scope="module")
def pair():
    """(funasr model, our model) with identical random weights (hotword attention scaled up), in eval mode."""
    pytest.importorskip("funasr")
    from funasr.models.contextual_paraformer.model import ContextualParaformer as Theirs

    torch.manual_seed(0)
    theirs = Theirs(**CONTEXTUAL)
    with torch.no_grad():
        theirs.predictor.cif_output.bias.fill_(1.0)
        theirs.decoder.bias_output.weight.mul_(4.0)
        theirs.bias_embed.weight.mul_(3.0)
    ours = ContextualParaformer(**CONTEXTUAL)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs.eval(), ours.eval()


def test_state_dict_matches_funasr(pair):
    theirs, ours = pair
    a, b = theirs.state_dict(), ours.state_dict()
    assert sorted(a) == sorted(b) and all(a[k].shape == b[k].shape for k in a)
    assert "decoder.last_decoder.src_attn.linear_k_v.weight" in b and "bias_encoder.weight_hh_l0" in b


def test_decoder_matches_funasr_with_and_without_hotwords(pair):
    theirs, ours = pair
    x = _feats()
    changed = 0
    with torch.no_grad():
        enc, enc_lens = ours.encode(x, LENGTHS)
        embeds, token_num, _, _ = ours.calc_predictor(enc, enc_lens)
        lens = token_num.round().long()
        plain = ours.decode_logits(enc, enc_lens, embeds, lens)
        for hotwords in (None, HOTWORDS):
            theirs_list = None if hotwords is None else hotwords + [[1]]
            mine = ours.decode_logits(enc, enc_lens, embeds, lens, ours.hotword_context(hotwords, x.device))
            for b, n in enumerate(LENGTHS.tolist()):
                ref_enc, ref_lens = theirs.encode(x[b : b + 1, :n], LENGTHS[b : b + 1])
                ref_emb, ref_num = theirs.calc_predictor(ref_enc, ref_lens)[:2]
                k = int(ref_num.round())
                ref, _ = theirs.cal_decoder_with_predictor(
                    ref_enc, ref_lens, ref_emb, ref_num.round().long(), hw_list=theirs_list
                )
                assert (mine[b, :k] - ref[0, :k]).abs().max() < 1e-4
                assert torch.equal(mine[b, :k].argmax(-1), ref[0, :k].argmax(-1))
            changed += int((mine.argmax(-1) != plain.argmax(-1)).any())
    assert changed == 1  # the hotwords change some argmax tokens: the bias path is exercised


@pytest.mark.parametrize("sampling_ratio", [0.0, 0.75])
def test_training_loss_and_grads_match_funasr(pair, sampling_ratio, monkeypatch):
    """Same batch, weights and sampled hotwords: loss within 1e-4 and matching gradients (dropout off)."""
    draws = private_randperm(monkeypatch)
    theirs0, ours0 = pair
    theirs, ours = copy.deepcopy(theirs0), copy.deepcopy(ours0)
    theirs.encoder = SharedEncoder(ours.encoder)
    theirs.sampling_ratio = ours.sampling_ratio = sampling_ratio
    x = _feats(seed=5)
    text, text_lengths = _text()
    hotword_pad, hotword_lengths = collate_hotwords(text, [[(0, 3)], [(2, 4), (6, 7)], [], [(0, 2)]])

    draws.manual_seed(11)
    ref_loss, ref_stats, ref_weight = theirs(
        x, LENGTHS, text, text_lengths, hotword_pad=hotword_pad, hotword_lengths=hotword_lengths
    )
    ref_loss.backward()
    ref_grads = {k: p.grad.clone() for k, p in theirs.named_parameters() if p.grad is not None}
    ours.zero_grad()  # the shared encoder holds FunASR's gradients
    draws.manual_seed(11)
    loss, stats = ours(x, LENGTHS, text.clamp(min=0), text_lengths, hotword_pad, hotword_lengths)
    loss.backward()

    assert abs(loss.item() - ref_loss.item()) < 1e-4
    for key in ("loss_att", "loss_pre", "loss_ctc"):
        assert abs(float(stats[key]) - float(ref_stats[key])) < 1e-4, key
    assert stats["acc"] == pytest.approx(float(ref_stats["acc"]), abs=1e-9)
    assert stats["weight"] == int(ref_weight)
    grads = {("encoder.inner." + k[8:] if k.startswith("encoder.") else k): p.grad for k, p in ours.named_parameters()}
    checked = [
        "encoder.inner.encoders.1.self_attn.fsmn_block.weight",
        "predictor.cif_output.weight",
        "decoder.last_decoder.src_attn.linear_k_v.weight",
        "decoder.bias_decoder.src_attn.linear_k_v.weight",
        "decoder.bias_output.weight",
        "bias_encoder.weight_ih_l0",
        "bias_embed.weight",
        "decoder.output_layer.weight",
    ]
    for name in checked:
        assert grads[name].abs().max() > 0, name
        assert (grads[name] - ref_grads[name]).abs().max() < 1e-4, name


def test_training_samples_hotwords_from_targets_when_none_given(pair):
    _, ours0 = pair
    ours = copy.deepcopy(ours0)
    x = _feats(seed=5)
    text, text_lengths = _text()
    random.seed(3)
    torch.manual_seed(4)  # the glancing sampler's draws
    loss_a, _ = ours(x, LENGTHS, text.clamp(min=0), text_lengths)
    random.seed(3)
    pad, lengths = sample_hotwords(text.clamp(min=0), text_lengths)
    assert pad.size(0) > 1  # some hotword was sampled (the last row is the "no bias" entry)
    torch.manual_seed(4)
    loss_b, _ = ours(x, LENGTHS, text.clamp(min=0), text_lengths, pad, lengths)
    assert torch.isfinite(loss_a) and loss_a.item() == pytest.approx(loss_b.item(), abs=1e-6)


def test_collate_matches_funasr_collator():
    pytest.importorskip("funasr")
    from funasr.datasets.audio_datasets.datasets import AudioDatasetHotword

    text, text_lengths = _text()
    spans = [[(0, 3)], [(2, 4), (6, 7)], [], [(0, 2)]]
    collator = object.__new__(AudioDatasetHotword)
    collator.int_pad_value, collator.float_pad_value = -1, 0.0
    seaco_id = 0  # Contextual: no SeACo labels
    samples = [
        {
            "text": text[b, : int(n)],
            "text_lengths": torch.tensor([int(n)], dtype=torch.int32),
            "hotword_indx": [v for s in spans[b] for v in s] or [-1],
            "seaco_id": seaco_id,
        }
        for b, n in enumerate(text_lengths.tolist())
    ]
    ref = collator.collator(samples)
    pad, lengths = collate_hotwords(text, spans)
    assert torch.equal(pad, ref["hotword_pad"]) and torch.equal(lengths, ref["hotword_lengths"])
    seaco_id = 49  # a SeACo dataset sets one: the collator adds the hotword-decoder labels
    for sample in samples:
        sample["seaco_id"] = seaco_id
    ref = collator.collator(samples)
    assert torch.equal(seaco_labels(text, text_lengths, spans, seaco_id), ref["seaco_label_pad"])


def test_hotword_spans_follow_funasr_bounds():
    rng = random.Random(0)
    counts = {0: 0, 1: 0, 2: 0}
    for _ in range(3000):
        length = rng.randint(0, 30)
        spans = hotword_spans(length, rng)
        counts[len(spans)] += 1
        if length < HOTWORD_MIN_LENGTH:
            assert spans == []
        for s, e in spans:
            assert 0 <= s <= e < length
            assert min(HOTWORD_MIN_LENGTH, length) <= e - s + 1 <= HOTWORD_MAX_LENGTH
        if len(spans) == 2:
            assert spans[0][1] < spans[1][0]
    assert counts[0] > 0 and counts[1] > counts[2] > 0  # no / one / two hotwords all occur


def test_config_checks():
    with pytest.raises(ValueError, match="inner_dim"):
        ContextualParaformer(**dict(CONTEXTUAL, inner_dim=32))
    with pytest.raises(ValueError, match="bias_encoder_type"):
        ContextualParaformer(**dict(CONTEXTUAL, bias_encoder_type="mean"))
    with pytest.raises(ValueError, match="does not fit"):
        ContextualParaformer(**dict(CONTEXTUAL, decoder="ParaformerSANMDecoder"))
    from funasr_lite.models.paraformer import Paraformer

    with pytest.raises(ValueError, match="does not fit"):
        Paraformer(**dict(CONFIG, decoder="ContextualParaformerDecoder"))
