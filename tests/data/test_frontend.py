"""Audio loading and the fbank/LFR/CMVN frontend, checked against funasr 1.4.16 as an oracle.

Audio is espeak-ng Mandarin speech (a synthetic tone mix where espeak-ng is missing),
converted with sox (or, without sox, re-labelled with other rates) into the formats
and rates the parity tests cover.
"""

import inspect
import math
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from funasr_lite.data.audio import audio_duration, load_audio, load_audio_array
from funasr_lite.data.frontend import WavFrontend, apply_lfr, compute_cmvn_stats, load_cmvn, write_cmvn
from funasr_lite.errors import AudioError, ModelDirError

SENTENCE = "今天是二零二四年"
PARITY_TOL = 1e-4


# ----------------------------------------------------------------------------- fixtures


def _base_audio(tmp):
    """(path of a 22.05 kHz mono int16 wav of speech, True if it is espeak-ng speech)."""
    path = os.path.join(tmp, "base.wav")
    if shutil.which("espeak-ng"):
        subprocess.run(
            ["espeak-ng", "-v", "cmn", "-w", path, SENTENCE],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return path, True
    sr = 22050
    t = np.arange(int(1.7 * sr)) / sr
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 1.5 * t) + 0.01 * rng.standard_normal(t.size)
    x[: sr // 5] = 0.0  # digital silence, like espeak-ng's lead-in
    sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
    return path, False


def _convert(src, dst, rate, channels=1, extra=()):
    """Resample/convert with sox; without sox, relabel the samples with the new rate."""
    if shutil.which("sox"):
        subprocess.run(["sox", "-V1", src, *extra, "-r", str(rate), "-c", str(channels), dst], check=True)
        return
    data, _ = sf.read(src, dtype="float32")
    if channels == 2:
        data = np.stack([data, data], axis=1)
    sf.write(dst, data, rate)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    """name -> path of the test audio in many formats and rates."""
    tmp = str(tmp_path_factory.mktemp("frontend_audio"))
    base, _ = _base_audio(tmp)
    f = {"wav22k": base}
    for name, rate in (("wav16k", 16000), ("wav8k", 8000)):
        f[name] = os.path.join(tmp, name + ".wav")
        _convert(base, f[name], rate)
    m44 = os.path.join(tmp, "m44.wav")
    _convert(base, m44, 44100)
    x, _ = sf.read(m44, dtype="float32")
    # Two different channels, so that averaging (not channel 0) is what is tested.
    stereo = np.stack([x, 0.6 * np.roll(x, 37)], axis=1)
    f["stereo44k"] = os.path.join(tmp, "stereo44k.wav")
    sf.write(f["stereo44k"], stereo, 44100, subtype="PCM_16")
    x16, _ = sf.read(f["wav16k"], dtype="float32")
    for name, sub, fmt, rate, data in (
        ("flac16k", "PCM_16", "FLAC", 16000, x16),
        ("flac44k", "PCM_24", "FLAC", 44100, x),
        ("pcm24_16k", "PCM_24", "WAV", 16000, x16),
        ("pcm_u8_16k", "PCM_U8", "WAV", 16000, x16),
        ("float32_48k", "FLOAT", "WAV", 48000, np.stack([x16, -x16], 1)),
        ("ogg16k", "VORBIS", "OGG", 16000, x16),
        ("mp3_16k", "MPEG_LAYER_III", "MP3", 16000, x16),
    ):
        ext = {"FLAC": "flac", "WAV": "wav", "OGG": "ogg", "MP3": "mp3"}[fmt]
        path = os.path.join(tmp, f"{name}.{ext}")
        try:
            sf.write(path, data, rate, subtype=sub, format=fmt)
        except (sf.SoundFileError, ValueError, TypeError):
            continue  # this libsndfile cannot write the format
        f[name] = path
    return f


@pytest.fixture(scope="module")
def am_mvn(audio_files, tmp_path_factory):
    """A realistic 560-dim am.mvn written by write_cmvn from the test audio's fbank stats."""
    fe = WavFrontend(lfr_m=1, lfr_n=1)
    mats = []
    for name in ("wav16k", "wav8k"):
        wav = load_audio(audio_files[name])
        mats.append(fe(wav[None], torch.tensor([wav.numel()]))[0][0])
    mean, std, _ = compute_cmvn_stats(mats)
    path = str(tmp_path_factory.mktemp("cmvn") / "am.mvn")
    write_cmvn(path, mean.repeat(7), std.repeat(7))
    return path


def _funasr_uses_torchaudio_load(path):
    """True when torchaudio.load works here, so funasr decodes with it instead of soundfile."""
    import torchaudio

    try:
        torchaudio.load(path)
    except Exception:  # noqa: BLE001 - any failure makes funasr fall back to soundfile
        return False
    return True


# ----------------------------------------------------------------------------- loader parity


@pytest.mark.parametrize(
    "name",
    [
        "wav16k",
        "wav8k",
        "wav22k",
        "stereo44k",
        "flac16k",
        "flac44k",
        "pcm24_16k",
        "pcm_u8_16k",
        "float32_48k",
        "ogg16k",
        "mp3_16k",
    ],
)
def test_load_audio_matches_funasr_loader(audio_files, name):
    pytest.importorskip("funasr")
    from funasr.utils.load_utils import load_audio_text_image_video

    if name not in audio_files:
        pytest.skip(f"libsndfile here cannot write {name}")
    path = audio_files[name]
    if name in ("ogg16k", "mp3_16k") and _funasr_uses_torchaudio_load(path):
        pytest.skip("funasr decodes compressed audio with torchaudio/ffmpeg here")
    ours = load_audio(path)
    ref = load_audio_text_image_video(path, fs=16000)
    assert ours.dtype == torch.float32 and ours.ndim == 1
    assert ours.shape == ref.shape
    assert float((ours - ref.float()).abs().max()) <= 1e-6


def test_load_audio_channel_mean_and_rate(audio_files):
    stereo, sr = sf.read(audio_files["stereo44k"], dtype="float32")
    wav = load_audio(audio_files["stereo44k"], target_sr=44100)  # no resampling: just the mean
    assert torch.equal(wav, torch.from_numpy(stereo).mean(-1))
    wav16 = load_audio(audio_files["stereo44k"])
    assert wav16.numel() == math.ceil(stereo.shape[0] * 16000 / 44100)
    assert audio_duration(audio_files["stereo44k"]) == pytest.approx(stereo.shape[0] / sr)


def test_load_audio_array_matches_file(audio_files):
    data, sr = sf.read(audio_files["stereo44k"], dtype="int16")
    from_file = load_audio(audio_files["stereo44k"])
    assert torch.equal(load_audio_array(data.T, sr), from_file)  # (C, S) int16
    floats = torch.from_numpy(data.T.astype(np.float32) / 32768.0)
    assert torch.equal(load_audio_array(floats, sr), from_file)
    with pytest.raises(AudioError, match="shape"):
        load_audio_array(np.zeros((1, 2, 800), np.float32), 16000)
    with pytest.raises(AudioError, match="NaN"):
        load_audio_array(np.full(800, np.nan, np.float32), 16000, name="api-input")


# ----------------------------------------------------------------------------- AudioError cases


def test_audio_errors(tmp_path):
    missing = str(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="nope.wav.*not found"):
        load_audio(missing)
    with pytest.raises(AudioError, match="nope.wav"):
        audio_duration(missing)

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + os.urandom(200))
    with pytest.raises(AudioError, match="corrupt.wav.*cannot decode"):
        load_audio(str(corrupt))
    with pytest.raises(AudioError, match="corrupt.wav"):
        audio_duration(str(corrupt))

    with pytest.raises(AudioError, match="directory"):
        load_audio(str(tmp_path))

    empty = str(tmp_path / "empty.wav")
    sf.write(empty, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty.wav.*zero samples"):
        load_audio(empty)

    short = str(tmp_path / "short.wav")
    sf.write(short, np.full(399, 0.1, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="short.wav.*too short.*25 ms"):
        load_audio(short)
    ok = str(tmp_path / "ok.wav")
    sf.write(ok, np.full(400, 0.1, np.float32), 16000, subtype="PCM_16")
    assert load_audio(ok).numel() == 400
    short8k = str(tmp_path / "short8k.wav")  # 199 samples at 8 kHz -> 398 at 16 kHz
    sf.write(short8k, np.full(199, 0.1, np.float32), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match="too short"):
        load_audio(short8k)

    for bad in (np.nan, np.inf):
        x = np.full(1600, 0.1, np.float32)
        x[700] = bad
        path = str(tmp_path / f"bad_{bad}.wav")
        sf.write(path, x, 16000, subtype="FLOAT")
        with pytest.raises(AudioError, match="NaN/Inf"):
            load_audio(path)


def test_truncated_files(tmp_path, audio_files):
    for name in ("wav16k", "flac16k"):
        src = audio_files[name]
        blob = open(src, "rb").read()
        cut = tmp_path / ("cut_" + os.path.basename(src))
        cut.write_bytes(blob[: len(blob) // 3])
        with pytest.raises(AudioError, match=r"cut_.*(truncated|cannot decode)"):
            load_audio(str(cut))


# ----------------------------------------------------------------------------- am.mvn


def test_cmvn_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(560, generator=gen, dtype=torch.float64) * 3 - 8
    std = torch.rand(560, generator=gen, dtype=torch.float64) * 5 + 0.01
    path = str(tmp_path / "am.mvn")
    write_cmvn(path, mean, std)
    cmvn = load_cmvn(path)
    assert cmvn.shape == (2, 560) and cmvn.dtype == torch.float32
    assert torch.equal(cmvn[0], (-mean).float())
    assert torch.equal(cmvn[1], (1.0 / std).float())
    lines = open(path, encoding="utf-8").read().splitlines()
    assert lines[:4] == ["<Nnet>", "<Splice> 560 560", "[ 0 ]", "<AddShift> 560 560"]
    assert lines[4].startswith("<LearnRateCoef> 0 [ ") and lines[4].endswith(" ]")
    assert lines[5] == "<Rescale> 560 560" and lines[7] == "</Nnet>"
    write_cmvn(path, -cmvn[0], 1.0 / cmvn[1].double())  # rewrite from the parsed values
    assert torch.equal(load_cmvn(path), cmvn)


def test_cmvn_readable_by_funasr(tmp_path):
    pytest.importorskip("funasr")
    from funasr.frontends.wav_frontend import load_cmvn as funasr_load_cmvn

    mean = torch.linspace(-9, 3, 80, dtype=torch.float64)
    std = torch.linspace(0.5, 7, 80, dtype=torch.float64)
    path = str(tmp_path / "am.mvn")
    write_cmvn(path, mean, std)
    assert torch.equal(funasr_load_cmvn(path), load_cmvn(path))


def test_load_cmvn_errors(tmp_path):
    with pytest.raises(ModelDirError, match="nothere.mvn.*not found"):
        load_cmvn(str(tmp_path / "nothere.mvn"))
    cases = {
        "no_rescale.mvn": ("<Nnet>\n<AddShift> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n</Nnet>\n", "no <Rescale>"),
        "dims.mvn": (
            "<AddShift> 3 3\n<LearnRateCoef> 0 [ 1 2 ]\n<Rescale> 3 3\n<LearnRateCoef> 0 [ 1 2 3 ]\n",
            r"dims.mvn:2: <AddShift> declares 3 dims but its vector has 2",
        ),
        "text.mvn": (
            "<AddShift> 2 2\n<LearnRateCoef> 0 [ 1 x ]\n<Rescale> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n",
            r"text.mvn:2: non-numeric",
        ),
        "nocoef.mvn": (
            "<AddShift> 2 2\n[ 1 2 ]\n<Rescale> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n",
            r"nocoef.mvn:2: expected a '<LearnRateCoef>",
        ),
        "nan.mvn": (
            "<AddShift> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n<Rescale> 2 2\n<LearnRateCoef> 0 [ nan 2 ]\n",
            "NaN/Inf",
        ),
    }
    for fname, (text, pattern) in cases.items():
        path = tmp_path / fname
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ModelDirError, match=pattern):
            load_cmvn(str(path))
    with pytest.raises(ValueError):
        write_cmvn(str(tmp_path / "x.mvn"), torch.zeros(4), torch.tensor([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ModelDirError, match="dims.*n_mels\\*lfr_m"):
        good = tmp_path / "small.mvn"
        write_cmvn(str(good), torch.zeros(80), torch.ones(80))
        WavFrontend(cmvn_file=str(good))  # 80 dims, frontend outputs 560


def test_compute_cmvn_stats():
    a = torch.tensor([[1.0, 10.0], [3.0, 10.0]])
    b = torch.tensor([[5.0, 10.0]])
    mean, std, frames = compute_cmvn_stats([a, b])
    assert frames == 3
    assert torch.allclose(mean, torch.tensor([3.0, 10.0], dtype=torch.float64))
    assert std[0] == pytest.approx(math.sqrt(8 / 3)) and 0 < std[1] < 1e-4  # floored, not 0
    with pytest.raises(ValueError):
        compute_cmvn_stats([])


# ----------------------------------------------------------------------------- frontend


def test_frontend_constructor():
    fe = WavFrontend()
    assert fe.output_size() == 560 and fe.lfr_m == 7 and fe.lfr_n == 6 and fe.dither == 0.0
    assert "cmvn" not in fe.state_dict()
    with pytest.raises(TypeError):
        WavFrontend(n_mel=80)  # misspelt key
    for bad in (
        {"window": "hann"},
        {"lfr_m": 0},
        {"fs": -1},
        {"dither": -1.0},
    ):
        with pytest.raises(ValueError):
            WavFrontend(**bad)


def test_frontend_accepts_funasr_conf_keys():
    pytest.importorskip("funasr")
    from funasr.frontends.wav_frontend import WavFrontend as FunasrWavFrontend

    theirs = {
        p
        for p, v in inspect.signature(FunasrWavFrontend.__init__).parameters.items()
        if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL) and p != "self"
    }
    ours = set(inspect.signature(WavFrontend.__init__).parameters)
    assert theirs <= ours, theirs - ours


FRONTEND_CASES = ["wav16k", "wav8k", "wav22k", "stereo44k", "flac16k", "flac44k", "pcm24_16k", "float32_48k"]


@pytest.mark.parametrize("name", FRONTEND_CASES)
def test_frontend_matches_funasr(audio_files, am_mvn, name):
    pytest.importorskip("funasr")
    from funasr.frontends.wav_frontend import WavFrontend as FunasrWavFrontend
    from funasr.utils.load_utils import load_audio_text_image_video

    if name not in audio_files:
        pytest.skip(f"libsndfile here cannot write {name}")
    conf = dict(fs=16000, window="hamming", n_mels=80, frame_length=25, frame_shift=10, lfr_m=7, lfr_n=6, dither=0.0)
    ref_wav = load_audio_text_image_video(audio_files[name], fs=16000).float()
    ref, ref_len = FunasrWavFrontend(cmvn_file=am_mvn, **conf)(ref_wav[None], [ref_wav.numel()])
    wav = load_audio(audio_files[name])
    feats, lens = WavFrontend(cmvn_file=am_mvn, **conf)(wav[None], torch.tensor([wav.numel()]))
    assert feats.shape == ref.shape and feats.shape[-1] == 560
    assert lens.tolist() == [int(ref_len[0])]
    diff = float((feats - ref).abs().max())
    print(f"frontend parity {name}: frames={feats.shape[1]} max_abs_diff={diff:.3g}")
    assert diff < PARITY_TOL


def test_frontend_short_input_matches_funasr():
    """Inputs shorter than one frame: FunASR shrinks the window to the input (no AudioError here)."""
    pytest.importorskip("funasr")
    from funasr.frontends.wav_frontend import WavFrontend as FunasrWavFrontend

    gen = torch.Generator().manual_seed(1)
    for n in (250, 399, 400, 401, 1000):
        wav = torch.randn(n, generator=gen) * 0.1
        ref, _ = FunasrWavFrontend(lfr_m=7, lfr_n=6, dither=0.0)(wav[None], [n])
        ours, _ = WavFrontend()(wav[None], torch.tensor([n]))
        assert ours.shape == ref.shape and float((ours - ref).abs().max()) < PARITY_TOL, n


def test_lfr_matches_funasr_for_all_tails():
    pytest.importorskip("funasr")
    from funasr.frontends.wav_frontend import apply_lfr as funasr_apply_lfr

    gen = torch.Generator().manual_seed(2)
    for m, n in ((7, 6), (5, 3), (1, 1)):
        for t in range(1, 26):
            x = torch.randn(t, 4, generator=gen)
            ours, lens = apply_lfr(x[None], torch.tensor([t]), m, n)
            assert int(lens[0]) == math.ceil(t / n)
            assert torch.equal(ours[0], funasr_apply_lfr(x.clone(), m, n)), (m, n, t)


def test_batch_padding_invariance(audio_files, am_mvn):
    full = load_audio(audio_files["wav16k"])
    pieces = [full, full[3000:9000], full[:1234]]
    gen = torch.Generator().manual_seed(3)
    batch = torch.rand(3, full.numel() + 500, generator=gen)  # garbage padding, not zeros
    for i, p in enumerate(pieces):
        batch[i, : p.numel()] = p
    lens = torch.tensor([p.numel() for p in pieces])
    fe = WavFrontend(cmvn_file=am_mvn)
    feats, flens = fe(batch, lens)
    for i, p in enumerate(pieces):
        one, olen = fe(p[None], lens[i : i + 1])
        assert int(flens[i]) == int(olen[0])
        assert torch.equal(feats[i, : flens[i]], one[0])
        assert not feats[i, flens[i] :].any()
    with pytest.raises(ValueError):
        fe(batch, torch.tensor([0, 10, 10]))


def test_compute_cmvn_tool(audio_files, tmp_path):
    import compute_cmvn  # tools/ is on sys.path (tests/conftest.py)

    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"a {audio_files['wav16k']}\nb {audio_files['stereo44k']}\n", encoding="utf-8")
    out = str(tmp_path / "am.mvn")
    assert compute_cmvn.main([str(data), out]) == 0
    cmvn = load_cmvn(out)
    assert cmvn.shape == (2, 560)
    assert torch.equal(cmvn[:, :80].repeat(1, 7), cmvn)  # fbank stats tiled lfr_m times
    fe = WavFrontend(lfr_m=1, lfr_n=1)
    mats = [
        fe(w[None], torch.tensor([w.numel()]))[0][0]
        for w in (load_audio(audio_files["wav16k"]), load_audio(audio_files["stereo44k"]))
    ]
    mean, std, _ = compute_cmvn_stats(mats)
    assert torch.allclose(cmvn[0, :80], (-mean).float()) and torch.allclose(cmvn[1, :80], (1 / std).float())
    # the written file normalises the training features to ~zero mean, unit variance
    normed = (torch.cat(mats) + cmvn[0, :80]) * cmvn[1, :80]
    assert float(normed.mean(0).abs().max()) < 1e-3 and float((normed.std(0) - 1).abs().max()) < 1e-2

    assert compute_cmvn.main([str(data), out, "--stats_on", "lfr", "--lfr_m", "5", "--lfr_n", "3"]) == 0
    assert load_cmvn(out).shape == (2, 400)
    (data / "wav.scp").write_text("a /no/such/file.wav\n", encoding="utf-8")
    assert compute_cmvn.main([str(data), str(tmp_path / "bad.mvn")]) == 1
    assert not os.path.exists(tmp_path / "bad.mvn")
