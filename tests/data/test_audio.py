"""Reliability of the audio loader (data/audio.py) on hostile input, one test per class of problem:

* non-finite or far-out-of-range float samples, in files and arrays, any channel or position;
* odd sample rates: bounded resampling kernel and time, exact kernel (FunASR parity) for common rates;
* memory bounded by samples: block reads, header refusal before reading (``max_seconds``);
* unknown-length streams (a FLAC whose STREAMINFO says 0 samples) are measured by decoding;
* non-regular files (FIFO, character device) are refused without opening them;
* data that is not audio is named as such, and native decoders print nothing to stderr.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from funasr_lite.data import audio as audio_mod
from funasr_lite.data.audio import (
    BLOCK_FRAMES,
    MAX_FLOAT_PEAK,
    MAX_KERNEL_ELEMENTS,
    _kernel_elements,
    audio_duration,
    load_audio,
    load_audio_array,
    resample_rates,
)
from funasr_lite.data.frontend import WavFrontend
from funasr_lite.errors import AudioError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tone(sr: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x * (0.5 + c / 10) for c in range(channels)], 1)


# ------------------------------------------------------------------------ 1. non-finite / range
BAD_VALUES = [
    (np.nan, "non-finite"),
    (np.inf, "non-finite"),
    (-np.inf, "non-finite"),
    (3.1e38, "far outside [-1, 1]: peak 3.1e+38"),
    (-1e30, "far outside [-1, 1]"),
    (32767.0, "far outside [-1, 1]: peak 3.28e+04"),
    (MAX_FLOAT_PEAK * 1.01, "far outside [-1, 1]"),
]


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("value,fragment", BAD_VALUES, ids=[str(v) for v, _ in BAD_VALUES])
@pytest.mark.parametrize("channels,where", [(1, 0), (1, -1), (2, 5000), (8, 70000)])
def test_bad_float_samples_are_refused_naming_the_file(tmp_path, subtype, value, fragment, channels, where):
    x = _tone(16000, 5.0, channels)
    if channels == 1:
        x[where] = value
    else:
        x[where, channels - 1] = value  # one channel only: the mean must not hide it (or overflow)
    path = str(tmp_path / "bad.wav")
    sf.write(path, x, 16000, subtype=subtype)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value).startswith(path + ": ") and fragment in str(e.value)


@pytest.mark.parametrize("peak", [1.0, 1.5, MAX_FLOAT_PEAK])
def test_float_overshoot_up_to_the_bound_is_accepted(tmp_path, peak):
    x = _tone(16000)
    x[100] = peak
    x[200] = -peak
    path = str(tmp_path / "ok.wav")
    sf.write(path, x, 16000, subtype="FLOAT")
    assert torch.equal(load_audio(path), torch.from_numpy(x))


@pytest.mark.parametrize("value,fragment", BAD_VALUES, ids=[str(v) for v, _ in BAD_VALUES])
@pytest.mark.parametrize("kind", ["numpy64", "numpy32", "torch2d"])
def test_bad_float_arrays_are_refused(value, fragment, kind):
    x = _tone(16000).astype(np.float64)
    x[10] = value
    if kind == "numpy32":
        data = x.astype(np.float32) if abs(value) < 3.4e38 or not np.isfinite(value) else x
    elif kind == "torch2d":
        data = torch.from_numpy(np.stack([x, np.zeros_like(x)]))
    else:
        data = x
    with pytest.raises(AudioError, match=r"^utt: .*" + fragment.split(":")[0].replace("[", r"\[").replace("]", r"\]")):
        load_audio_array(data, 16000, name="utt")


def test_non_finite_features_never_reach_the_model():
    front = WavFrontend(lfr_m=1, lfr_n=1)
    good = torch.from_numpy(_tone(16000))
    bad = good.clone()
    bad[500] = float("nan")
    feats, _ = front(torch.stack([good, good]), [16000, 16000])
    assert bool(torch.isfinite(feats).all())
    with pytest.raises(AudioError, match=r"utterance\(s\) \[1\] of the batch: non-finite"):
        front(torch.stack([good, bad]), [16000, 16000])
    with pytest.raises(AudioError, match="^non-finite"):
        front((good * 1e36)[None], [16000])  # finite samples whose fbank overflows


# ----------------------------------------------------------------------------- 2. resampling
COMMON_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000]
ODD_RATES = [1, 7, 8001, 15999, 16001, 22051, 37589, 44099, 47999, 48001, 96001, 191999, 767999]


@pytest.mark.parametrize("sr", COMMON_RATES)
def test_common_rates_keep_the_exact_kernel(sr):
    assert resample_rates(sr, 16000) == (sr, 16000)


@pytest.mark.parametrize("sr", ODD_RATES + COMMON_RATES)
def test_any_rate_resamples_with_a_bounded_kernel_in_bounded_time(tmp_path, sr):
    orig, new = resample_rates(sr, 16000)
    assert _kernel_elements(orig, new) <= MAX_KERNEL_ELEMENTS
    assert abs(orig / new - sr / 16000) <= 2e-4 * sr / 16000  # the ratio is kept to 0.02 %
    seconds = 3.0 if sr > 100 else 60.0 / sr * sr / max(sr, 1)
    x = _tone(sr, seconds) if sr > 100 else (0.3 * np.sin(np.arange(60) / 3)).astype(np.float32)
    path = str(tmp_path / "odd.wav")
    sf.write(path, x, sr)
    start = time.perf_counter()
    wav = load_audio(path)
    assert time.perf_counter() - start < 5.0
    expected = len(x) * 16000 / sr
    assert abs(wav.numel() - expected) <= 2e-4 * expected + 2


def test_odd_rate_output_matches_the_nearby_exact_rate():
    """44099 Hz goes through an approximated kernel; the result is the 44100 Hz result, nearly."""
    x = _tone(44100, 2.0)
    a = load_audio_array(x, 44099)
    b = load_audio_array(x, 44100)
    n = min(a.numel(), b.numel())
    corr = float(torch.dot(a[:n], b[:n]) / (a[:n].norm() * b[:n].norm()))
    assert corr > 0.99


def test_rates_above_the_maximum_are_refused(tmp_path):
    with pytest.raises(AudioError, match="unsupported sample rate 768001 Hz"):
        load_audio_array(np.zeros(800000, np.float32), 768001)


# ------------------------------------------------------------------------- memory by samples
def test_files_are_read_in_blocks_and_equal_a_whole_read(tmp_path, monkeypatch):
    x = _tone(48000, 4.0, channels=8)
    path = str(tmp_path / "eight.wav")
    sf.write(path, x, 48000, subtype="PCM_16")
    sizes = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        sizes.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    wav = load_audio(path, target_sr=48000)
    assert sizes and all(0 < s <= BLOCK_FRAMES for s in sizes), sizes
    whole, _ = sf.read(path, dtype="float32")
    assert torch.equal(wav, torch.from_numpy(whole).mean(-1))


def test_max_seconds_refuses_from_the_header_before_reading(tmp_path, monkeypatch):
    path = str(tmp_path / "long.wav")
    sf.write(path, _tone(192000, 3.0, channels=2), 192000)
    monkeypatch.setattr(sf.SoundFile, "read", lambda *a, **k: pytest.fail("samples were read"))
    with pytest.raises(AudioError, match=r"long.wav: the header says 3.0 s, longer than the 2 s allowed"):
        load_audio(path, max_seconds=2)


# ---------------------------------------------------------------------------- 5. unknown length
def _streamed_flac(tmp_path, seconds: float = 3.0):
    """A FLAC whose STREAMINFO total-samples field is 0 ("unknown"), as a streaming encoder leaves it."""
    full = str(tmp_path / "full.flac")
    sf.write(full, _tone(16000, seconds), 16000)
    data = bytearray(open(full, "rb").read())
    assert data[:4] == b"fLaC"
    data[21] &= 0xF0
    data[22:26] = b"\0\0\0\0"
    path = str(tmp_path / "stream.flac")
    with open(path, "wb") as f:
        f.write(data)
    assert sf.info(path).frames >= 1 << 62  # libsndfile reports "unknown" as 2**63-1
    return full, path


def test_unknown_length_stream_is_measured_by_decoding(tmp_path):
    full, path = _streamed_flac(tmp_path)
    assert audio_duration(path) == 3.0
    assert torch.equal(load_audio(path), load_audio(full))
    with pytest.raises(AudioError, match="decoding reached .* longer than the 1 s allowed"):
        load_audio(path, max_seconds=1)
    truncated = str(tmp_path / "cut.flac")
    with open(truncated, "wb") as f:
        f.write(open(path, "rb").read()[:5000])
    with pytest.raises(AudioError, match="cut.flac"):
        load_audio(truncated)


@pytest.mark.parametrize("fn", [load_audio, audio_duration])
def test_non_regular_files_are_refused_without_opening(tmp_path, fn):
    fifo = str(tmp_path / "pipe.wav")
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match="pipe.wav: is a named pipe \\(FIFO\\), not a regular audio file"):
        fn(fifo)
    with pytest.raises(AudioError, match="/dev/zero: is a character device"):
        fn("/dev/zero")


# ------------------------------------------------------------------------------- 4. not audio
_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from funasr_lite.data.audio import audio_duration, load_audio
rng = np.random.default_rng(0)
for i, prefix in enumerate([b"", b"\\xff\\xfb", b"ID3\\x03\\x00\\x00\\x00\\x00\\x00\\x00", b"fLaC", b"OggS"] * 2):
    path = f"{sys.argv[2]}/r{i}.wav"
    open(path, "wb").write(prefix + rng.integers(0, 256, 150000, dtype=np.uint8).tobytes())
    for fn in (audio_duration, load_audio):
        try:
            fn(path)
            print("LOADED", path)
        except Exception as e:
            print(type(e).__name__, e)
"""


def test_random_bytes_are_not_audio_and_print_nothing_native(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ROOT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == "", proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 20 and all(line.startswith("AudioError ") for line in lines), lines
    assert sum("not a readable audio file (format not recognised)" in line for line in lines) >= 4, lines
    assert all(str(tmp_path) in line for line in lines)


def test_soundfile_messages_are_mapped(tmp_path):
    err = audio_mod._soundfile_error("x.wav", RuntimeError("Error : possibly a pipe?"), "cannot decode audio")
    assert str(err) == "x.wav: cannot decode audio: not a readable audio file (format not recognised)"


def test_only_libmpg123_lines_are_dropped_from_stderr(capfd):
    with audio_mod._quiet_native_decoders():
        os.write(2, b"[src/libmpg123/parse.c:skip_junk():1260] error: Giving up\n")
        os.write(2, b"Note: Trying to resync...\n")
        os.write(2, b"another thread's log line\n")
    assert capfd.readouterr().err == "another thread's log line\n"
