"""Transcriber.transcribe(on_error=...): the first bad input raises by default; "report" gives every input a
result with an error field and decodes the rest (a failing batch is retried item by item)."""

import os

import numpy as np
import pytest
import soundfile as sf

from funasr_lite import load_model
from funasr_lite.errors import AudioError, NonFiniteError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_MODEL = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo", "model"
)
FIELDS = {"key", "text", "tokens", "token_ids", "score", "timestamp"}


@pytest.fixture(scope="module")
def asr():
    return load_model(DEMO_MODEL, device="cpu")


@pytest.fixture
def wavs(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, seconds in enumerate((1.0, 1.5, 0.7)):
        path = str(tmp_path / f"ok{i}.wav")
        sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
        paths.append(path)
    return paths


def test_default_raises_on_a_missing_file(asr, wavs, tmp_path):
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="missing.wav"):
        asr.transcribe([wavs[0], missing])
    assert set(asr.transcribe(wavs[:1])[0]) == FIELDS  # no error field unless asked for


def test_report_gives_every_input_a_result(asr, wavs, tmp_path):
    missing = str(tmp_path / "missing.wav")
    inputs = [wavs[0], missing, np.zeros(10, dtype=np.float32), wavs[1]]
    out = asr.transcribe(inputs, batch_size=8, on_error="report")
    assert [r["key"] for r in out] == ["ok0", "missing", "input2", "ok1"]
    assert all(set(r) == FIELDS | {"error"} for r in out)
    assert out[0]["error"] is None and out[3]["error"] is None
    assert out[0]["text"] == asr.transcribe([wavs[0]])[0]["text"]
    assert "missing.wav" in out[1]["error"] and "input 2" in out[2]["error"]
    for bad in (out[1], out[2]):
        assert bad["text"] == "" and bad["tokens"] == bad["token_ids"] == bad["timestamp"] == []
        assert bad["score"] is None


def test_report_retries_a_failed_batch_item_by_item(asr, wavs, monkeypatch):
    real = asr.decode_waveforms
    poison = 1.5 * 16000  # the second file's length

    def flaky(batch, hotwords=None):
        if any(w.numel() == poison for w in batch):
            raise NonFiniteError("the decoder output is NaN/Inf")
        return real(batch, hotwords)

    monkeypatch.setattr(asr, "decode_waveforms", flaky)
    out = asr.transcribe(wavs, batch_size=3, on_error="report")
    assert [r["error"] is None for r in out] == [True, False, True]
    assert out[1]["error"].startswith(f"{wavs[1]}: decoding failed: the decoder output is NaN/Inf")
    with pytest.raises(NonFiniteError):
        asr.transcribe(wavs, batch_size=3)


def test_bad_on_error_value(asr, wavs):
    with pytest.raises(ValueError, match="on_error"):
        asr.transcribe(wavs, on_error="skip")
