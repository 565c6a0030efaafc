"""SeacoParaformer decoding: texts, tokens and timestamps equal funasr 1.4.16's with and without hotwords.

The tiny model is built with funasr's own SeacoParaformer class (its hotword decoder config says 4 blocks
and gets 6, as the hub model's). Hotwords are tokenised as FunASR does: split into characters with the
dir's seg_dict.
"""

import os
import random

import pytest
import torch

from funasr_lite.data.audio import load_audio
from funasr_lite.decode.transcribe import load_model
from tiny_model import (
    CHARS,
    SEACO_CONFIG,
    build_tiny_model_dir,
    funasr_seaco_state,
    write_char_seg_dict,
)

HOTWORDS = "今天 电话号码 三点"


def _wavs(data_dir):
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        return dict(line.split(maxsplit=1) for line in f.read().splitlines())


@pytest.fixture(scope="module")
def seaco_dir(synth_data_dir, tmp_path_factory):
    pytest.importorskip("funasr.models.seaco_paraformer.model")
    state = funasr_seaco_state()
    assert "seaco_decoder.decoders.5.src_attn.linear_q.weight" in state  # 4 blocks in the config, 6 built
    out = build_tiny_model_dir(
        str(tmp_path_factory.mktemp("seaco")), synth_data_dir, state_dict=state, config=SEACO_CONFIG
    )
    write_char_seg_dict(out)
    return out


def _ids(asr, words):
    return [asr.tokenizer.encode(w) for w in words.split()]


def test_matches_funasr_with_and_without_hotwords(seaco_dir, synth_data_dir):
    funasr = pytest.importorskip("funasr")
    wavs = _wavs(synth_data_dir)
    asr = load_model(seaco_dir, device="cpu")
    many = " ".join("".join(random.Random(i).choices(CHARS, k=2 + i % 3)) for i in range(60))  # > 50: ASF filter
    oracle = funasr.AutoModel(model=seaco_dir, disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR")
    plain = asr.transcribe(list(wavs.values()), batch_size=4)
    changed = 0
    for words in (None, "", HOTWORDS, many):  # "": the no-bias entry alone ([] here)
        hot = None if words is None else _ids(asr, words)
        batch = asr.decode_waveforms([load_audio(p, asr.sample_rate) for p in wavs.values()], hotwords=hot)
        texts = set()
        for (key, path), mine, base in zip(wavs.items(), batch, plain):
            kw = {} if words is None else {"hotword": words}
            ref = oracle.generate(input=path, **kw)[0]
            assert (mine["text"], mine["timestamp"]) == (ref["text"], ref["timestamp"]), (key, words)
            texts.add(mine["text"])
            changed += bool(words) and mine["token_ids"] != base["token_ids"]
        assert len(texts) >= 3 and all(texts)
    assert changed >= 2  # hotwords change some outputs, or this test proves little


def test_hotwords_pass_through_the_python_api(seaco_dir, synth_data_dir):
    asr = load_model(seaco_dir, device="cpu")
    assert asr.supports_hotwords
    audio = [load_audio(p, asr.sample_rate) for p in list(_wavs(synth_data_dir).values())[:3]]
    hot = _ids(asr, HOTWORDS)
    batched = asr.decode_waveforms(audio, hotwords=hot)
    for one, res in zip(audio, batched):  # padding-invariant with hotwords too
        assert asr.decode_waveforms([one], hotwords=hot)[0]["token_ids"] == res["token_ids"]
    assert asr.decode_waveforms(audio, hotwords=None) == asr.decode_waveforms(audio)
    # FunASR returns ([],) when no token fires and AutoModel drops the input; we keep an empty result
    res = asr.decode_features(torch.zeros(2, 3, 560), torch.tensor([1, 3]), hotwords=hot)
    assert len(res) == 2 and (res[0]["text"], res[0]["tokens"], res[0]["timestamp"]) == ("", [], [])


def test_bad_hotword_ids_are_a_config_error(seaco_dir, synth_data_dir):
    """Token ids outside the vocabulary raised IndexError from the embedding, a float was truncated, a word
    string raised ValueError; now each is a ConfigError naming the hotword."""
    import numpy as np

    from funasr_lite.errors import ConfigError

    asr = load_model(seaco_dir, device="cpu")
    size = asr.tokenizer.vocab_size
    audio = [load_audio(next(iter(_wavs(synth_data_dir).values())), asr.sample_rate)]
    for bad, why in (
        ([[3], [size]], f"hotword 1 has {size}: token ids are integers in \\[0, {size}\\)"),
        ([[-1]], "hotword 0 has -1"),
        ([[3.5]], "hotword 0 has 3.5"),
        ([[True]], "hotword 0 has True"),
        ([[]], "hotword 0 is \\[\\]: expected a non-empty list"),
        (["今天"], "hotword 0 is '今天'"),
        ("今天", "must be a list of token-id lists"),
    ):
        with pytest.raises(ConfigError, match=why):
            asr.decode_waveforms(audio, hotwords=bad)
    ok = [np.array([4, 5]), (6,)]  # numpy and tuple ids are ids
    assert asr.check_hotwords(ok) == [[4, 5], [6]]
    assert asr.decode_waveforms(audio, hotwords=ok) == asr.decode_waveforms(audio, hotwords=[[4, 5], [6]])
