"""The bundled numbers-demo corpus and tools/make_demo_corpus.py."""

import os
import re

import pytest
import soundfile as sf

import make_demo_corpus as mdc
from funasr_lite.data.datadir import load_data_dir, read_scp, resolve_audio_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo", "data"
)
SPLITS = ("train", "dev", "test")


def _texts(split):
    """key -> sentence without spaces."""
    table = read_scp(os.path.join(DATA, split, "text"), what="text")
    assert not table.problems, table.problems
    return {k: v.replace(" ", "") for k, v in table.entries.items()}


@pytest.mark.parametrize("split", SPLITS)
def test_bundled_split_is_complete(split):
    d = os.path.join(DATA, split)
    wav = read_scp(os.path.join(d, "wav.scp"), what="wav.scp")
    texts = _texts(split)
    assert not wav.problems
    assert set(wav.entries) == set(texts)
    assert len(wav.entries) >= (500 if split == "train" else 50)
    for key, value in wav.entries.items():
        assert value == f"wav/{key}.flac", "wav.scp paths must be relative to the data dir"
        info = sf.info(os.path.join(d, value))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "FLAC")
        assert 0.5 < info.duration < 15.0, (key, info.duration)
    # transcripts: CJK characters only, space separated (AISHELL style)
    for key, line in read_scp(os.path.join(d, "text"), what="text").entries.items():
        assert re.fullmatch(r"[\u4e00-\u9fff]( [\u4e00-\u9fff])*", line), (key, line)
    dd = load_data_dir(d, mode="train")
    assert dd.errors == [] and dd.warnings == []


def test_bundled_audio_decodes():
    """A few files of each split read back as non-silent, non-clipped audio."""
    for split in SPLITS:
        for key in sorted(_texts(split))[:3]:
            audio, sr = sf.read(os.path.join(DATA, split, "wav", key + ".flac"), dtype="float32")
            assert sr == 16000 and audio.ndim == 1
            assert 0.05 < abs(audio).max() < 1.0


def test_bundled_splits_are_disjoint_and_covered():
    texts = {s: _texts(s) for s in SPLITS}
    train = set(texts["train"].values())
    charset = set("".join(train))
    for split in ("dev", "test"):
        sents = list(texts[split].values())
        assert len(set(sents)) == len(sents)
        assert not train & set(sents), f"{split} sentences also in train"
        assert set("".join(sents)) <= charset, f"{split} has characters not in train"
    assert not set(texts["dev"].values()) & set(texts["test"].values())
    assert len(train) == len(texts["train"])


def test_relative_paths_resolve_from_any_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test_dir = os.path.join(DATA, "test")
    dd = load_data_dir(test_dir, mode="train")
    assert dd.errors == []
    key = next(iter(_texts("test")))
    assert os.path.samefile(
        resolve_audio_path(f"wav/{key}.flac", test_dir), os.path.join(test_dir, "wav", f"{key}.flac")
    )


def test_read_int():
    cases = {
        0: "零",
        10: "十",
        15: "十五",
        20: "二十",
        105: "一百零五",
        110: "一百一十",
        1010: "一千零一十",
        2200: "二千二百",
        10010: "一万零一十",
        120000: "十二万",
        99999999: "九千九百九十九万九千九百九十九",
    }
    for n, want in cases.items():
        assert mdc.read_int(n) == want, n
    assert mdc.read_int(2200, liang=True) == "两千二百"
    assert mdc.read_int(20000, liang=True) == "两万"
    assert mdc.read_digits("13810", yao=True) == "幺三八幺零"
    with pytest.raises(ValueError):
        mdc.read_int(10**8)


def test_draw_splits_invariants():
    a = mdc.draw_splits({"train": 150, "dev": 15, "test": 15}, seed=5)
    assert a == mdc.draw_splits({"train": 150, "dev": 15, "test": 15}, seed=5)
    assert a != mdc.draw_splits({"train": 150, "dev": 15, "test": 15}, seed=6)
    allsents = a["train"] + a["dev"] + a["test"]
    assert len(set(allsents)) == len(allsents) == 180
    charset = set("".join(a["train"]))
    for s in allsents:
        assert mdc.is_cjk(s), s
    assert set("".join(a["dev"] + a["test"])) <= charset


def test_draw_splits_fails_clearly_when_train_too_small():
    with pytest.raises(ValueError, match="larger train split"):
        mdc.draw_splits({"train": 1, "dev": 0, "test": 50}, seed=0, max_tries=5)


def test_trim_silence():
    import numpy as np

    sr = 16000
    audio = np.zeros(sr * 2, dtype=np.float32)
    audio[sr // 2 : sr] = 0.5 * np.sin(np.arange(sr // 2) * 0.3)
    out = mdc.trim_silence(audio, sr, margin_s=0.1)
    assert abs(len(out) - int(0.7 * sr)) <= sr // 100


def test_generation_is_deterministic(tmp_path):
    synth = pytest.importorskip("synth_data")
    if not synth.espeak_available():
        pytest.skip("espeak-ng is not installed")
    opts = mdc.CorpusOptions(num_train=3, num_dev=0, num_test=0, seed=11, noise_prob=0.5, nj=2)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        summary = mdc.make_corpus(str(out), opts)
        assert list(summary) == ["train"] and summary["train"]["utts"] == 3
        d = out / "train"
        files = {p.name: p.read_bytes() for p in sorted((d / "wav").iterdir())}
        runs.append(((d / "text").read_text(encoding="utf-8"), (d / "wav.scp").read_text(), files))
        assert load_data_dir(str(d), mode="train").errors == []
    assert runs[0] == runs[1]
    assert len(runs[0][2]) == 3
    # a different seed gives a different corpus
    other = mdc.make_corpus(str(tmp_path / "c"), mdc.CorpusOptions(num_train=3, num_dev=0, num_test=0, seed=12, nj=1))
    assert other["train"]["utts"] == 3
    assert (tmp_path / "c" / "train" / "text").read_text(encoding="utf-8") != runs[0][0]
