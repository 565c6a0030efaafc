"""BiCifParaformer decoding: texts and token timestamps equal funasr 1.4.16's on the same weights.

The tiny model is built with funasr's own BiCifParaformer class; its timestamp head gets large random weights
so that token lengths vary and some tokens hit FunASR's 240 ms cap (the silence-cut path).
"""

import os

import numpy as np
import pytest
import torch

from funasr_lite.data.tokenizer import postprocess_tokens_timed
from funasr_lite.decode.bicif import fire_sums, upsampled_token_times
from funasr_lite.decode.transcribe import load_model
from funasr_lite.errors import ConfigError
from tiny_model import BICIF_CONFIG, build_tiny_model_dir, funasr_bicif_state


def _wavs(data_dir):
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        return dict(line.split(maxsplit=1) for line in f.read().splitlines())


@pytest.fixture(scope="module")
def bicif_dir(synth_data_dir, tmp_path_factory):
    pytest.importorskip("funasr.models.bicif_paraformer.model")
    state = funasr_bicif_state()
    out = str(tmp_path_factory.mktemp("bicif"))
    return build_tiny_model_dir(out, synth_data_dir, state_dict=state, config=BICIF_CONFIG)


@pytest.fixture(scope="module")
def ours(bicif_dir, synth_data_dir):
    return load_model(bicif_dir, device="cpu").transcribe(list(_wavs(synth_data_dir).values()), batch_size=4)


def test_texts_tokens_and_timestamps_match_funasr(bicif_dir, synth_data_dir, ours, tmp_path):
    funasr = pytest.importorskip("funasr")
    wavs = _wavs(synth_data_dir)
    oracle = funasr.AutoModel(model=bicif_dir, disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR")
    texts, capped = set(), 0
    for (key, path), mine in zip(wavs.items(), ours):
        ref = oracle.generate(input=path, output_dir=str(tmp_path))[0]
        assert mine["text"] == ref["text"], key
        assert mine["timestamp"] == ref["timestamp"], key
        assert 0 < len(mine["timestamp"]) <= len(mine["tokens"]) and " " in mine["text"]
        texts.add(mine["text"])
        capped += any(a[1] < b[0] for a, b in zip(mine["timestamp"], mine["timestamp"][1:]))
    oracle.model.writer.close()
    with open(tmp_path / "1best_recog" / "token", encoding="utf-8") as f:
        ref_tokens = dict(line.split(maxsplit=1) for line in f.read().splitlines())
    for key, mine in zip(wavs, ours):
        assert mine["tokens"] == ref_tokens[key].split(), key
    # the random weights must give varied, non-empty texts and reach the 240 ms cap, or this proves little
    assert len(texts) >= 3 and all(texts) and capped >= 1


def test_batched_equals_one_by_one_and_legacy_layout(bicif_dir, synth_data_dir, ours, tmp_path):
    wavs = list(_wavs(synth_data_dir).values())
    asr = load_model(bicif_dir, device="cpu")
    for w, b in zip(wavs, ours):  # the BLSTM reads each row's own sub-frames: padding changes nothing
        s = asr.transcribe([w])[0]
        assert (s["token_ids"], s["text"], s["timestamp"]) == (b["token_ids"], b["text"], b["timestamp"])
        assert s["score"] == pytest.approx(b["score"], abs=1e-4)
    state = torch.load(os.path.join(bicif_dir, "model.pt"), weights_only=True)
    legacy = build_tiny_model_dir(
        str(tmp_path / "legacy"), synth_data_dir, state_dict=state, config=BICIF_CONFIG, layout="0.x"
    )
    with open(os.path.join(legacy, "config.yaml"), encoding="utf-8") as f:
        text = f.read()
    assert "model: bicif_paraformer" in text and "predictor: cif_predictor_v3" in text
    with pytest.raises(ConfigError, match="takes no hotwords"):
        asr.decode_waveforms([torch.zeros(16000)], hotwords=[[3]])
    old = load_model(legacy, device="cpu")
    assert old.model_dir.layout == "0.x"
    assert [r["token_ids"] for r in old.transcribe(wavs)] == [r["token_ids"] for r in ours]


def test_token_times_match_funasr_ts_prediction():
    pytest.importorskip("funasr")
    from funasr.models.bicif_paraformer.cif_predictor import cif_wo_hidden
    from funasr.utils.timestamp_tools import ts_prediction_lfr6_standard

    gen = torch.Generator().manual_seed(0)
    paths = set()
    for trial in range(40):
        n = int(torch.randint(1, 12, (1,), generator=gen))
        frames = int(torch.randint(3 * n, 12 * n + 20, (1,), generator=gen))
        alphas = torch.rand(frames, generator=gen) ** 4
        if trial % 4 == 0:  # a near-ideal head: fires N + 1 times on the first pass
            alphas = alphas * ((n + 1) / alphas.sum())
        else:
            alphas = alphas * (n / alphas.sum())
        peaks = cif_wo_hidden(alphas[None].clone(), 1.0 - 1e-4)[0]
        first_pass = int((peaks >= 1.0 - 1e-4).sum()) == n + 1
        paths.add(first_pass)
        ref_alphas, mine_alphas = alphas.clone(), alphas.clone()
        _, ref = ts_prediction_lfr6_standard(ref_alphas, peaks, ["x"] * n)
        assert torch.equal(torch.from_numpy(fire_sums(alphas.numpy())), peaks)
        assert upsampled_token_times(mine_alphas, n) == ref, trial
        assert torch.equal(mine_alphas, ref_alphas)  # the same in-place rescaling
    assert paths == {True, False}


@pytest.mark.parametrize(
    "tokens",
    [
        ["今", "天", "<unk>", "是"],
        ["hel@@", "lo", "wor@@", "ld"],
        ["i", "b", "m", "公", "司"],
        ["今", "hel@@", "天", "lo", "，", "好", "a", "b"],
        ["a", "，", "b", "c"],
        ["你", "好", "x@@"],
    ],
)
def test_word_timestamps_match_funasr_sentence_postprocess(tokens):
    pytest.importorskip("funasr")
    from funasr.utils.postprocess_utils import sentence_postprocess

    stamps = [[100 * i, 100 * i + 80] for i in range(len(tokens))]
    ref_text, ref_stamps, ref_words = sentence_postprocess(list(tokens), [list(s) for s in stamps])
    assert postprocess_tokens_timed(tokens, stamps) == (ref_text, ref_words, ref_stamps)


def test_fire_sums_subtracts_the_threshold():
    sums = fire_sums(np.array([0.6, 0.6, 0.9, 0.0], dtype=np.float32))
    assert sums[0] == np.float32(0.6) and sums[1] >= np.float32(1.0 - 1e-4)
    assert sums[2] == np.float32(np.float32(np.float32(1.2) - np.float32(1.0 - 1e-4)) + np.float32(0.9))
