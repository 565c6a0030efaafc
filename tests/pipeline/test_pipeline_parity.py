"""Parity of the long-audio pipeline with FunASR 1.4.16's ``AutoModel(model, vad_model, punc_model)`` on the same
weights: a BiCifParaformer, the FSMN-VAD at its real size and a CT-Transformer, all built with FunASR's own
classes (tools/pipeline_models.py), on a 90 s recording of synthesized sentences with pauses.

Needs funasr_lite.vad, funasr_lite.punc and the BiCifParaformer registration (skipped without them).
"""

import os
import re

import pytest
import torch

pytest.importorskip("funasr_lite.vad")
pytest.importorskip("funasr_lite.punc")
funasr = pytest.importorskip("funasr")

from funasr_lite.models.registry import supported  # noqa: E402

if "BiCifParaformer" not in supported("model"):
    pytest.skip("BiCifParaformer is not registered", allow_module_level=True)

from funasr_lite.data.audio import load_audio  # noqa: E402
from funasr_lite.decode.infer import run_inference  # noqa: E402
from funasr_lite.decode.options import InferOptions  # noqa: E402
from funasr_lite.pipeline.long_audio import load_pipeline  # noqa: E402
from tiny_model import CHARS, TINY_CONFIG, tiny_token_list  # noqa: E402

SECONDS = 90.0
MARKS = "，。？、"


@pytest.fixture(scope="module")
def case(synth_data_dir, tmp_path_factory):
    """(recording path, spoken transcript, bicif dir, vad dir, punc dir, FunASR's result, FunASR's VAD segments)."""
    synth = pytest.importorskip("synth_data")
    models = pytest.importorskip("pipeline_models")
    from sentences import SENTENCES

    root = tmp_path_factory.mktemp("parity")
    wav = str(root / "long.wav")
    spoken = synth.make_long_recording(wav, list(SENTENCES.values()), SECONDS, opts=synth.SynthOptions(seed=5))
    bicif = models.build_bicif_dir(
        str(root / "bicif"), models.bicif_config(TINY_CONFIG), tiny_token_list(), synth_data_dir
    )
    vad = models.build_vad_dir(str(root / "vad"), [wav])
    punc = models.build_punc_dir(str(root / "punc"), CHARS, d_model=32, heads=4, ffn=64, blocks=1)
    kw = dict(disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR")
    # one thread: with OpenMP's default (active) wait policy, FunASR's BiLSTM crawls on a busy 2-core machine,
    # and the policy cannot be changed once torch is loaded
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        segments = funasr.AutoModel(model=vad, **kw).generate(input=wav)[0]["value"]
        auto = funasr.AutoModel(model=bicif, vad_model=vad, punc_model=punc, **kw)
        ref = auto.generate(input=wav, sentence_timestamp=True, return_raw_text=True)
    finally:
        torch.set_num_threads(threads)
    assert len(ref) == 1
    return wav, spoken, bicif, vad, punc, ref[0], segments


@pytest.fixture(scope="module")
def ours(case):
    wav, _, bicif, vad, punc, _, _ = case
    pipe = load_pipeline(bicif, vad_model=vad, punc_model=punc, device="cpu")
    return pipe.transcribe_waveform(load_audio(wav, pipe.sample_rate))


def test_the_case_is_not_degenerate(case):
    _, _, _, _, _, ref, segments = case
    # several VAD segments, several punctuation classes, varied text and sentences
    assert len(segments) >= 5
    assert len({m for m in ref["text"] if m in MARKS}) >= 3
    assert len(set(ref["raw_text"].split())) >= 8
    assert len(ref["sentence_info"]) >= 5


def test_vad_segments_identical(case, ours):
    assert ours["vad_segments"] == case[6]


def test_text_identical(case, ours):
    ref = case[5]
    assert ours["text"] == ref["text"]
    assert ours["raw_text"] == ref["raw_text"]


def _close(a, b, tol=1):
    return len(a) == len(b) and all(abs(x[0] - y[0]) <= tol and abs(x[1] - y[1]) <= tol for x, y in zip(a, b))


def test_timestamps_within_1ms(case, ours):
    assert _close(ours["timestamp"], case[5]["timestamp"])


def test_sentences_identical(case, ours):
    ref = case[5]["sentence_info"]
    assert [s["text"] for s in ours["sentence_info"]] == [s["text"] for s in ref]
    assert _close([[s["start"], s["end"]] for s in ours["sentence_info"]], [[s["start"], s["end"]] for s in ref])
    for mine, theirs in zip(ours["sentence_info"], ref):
        assert _close(mine["timestamp"], theirs["timestamp"])


def test_data_dir_job_writes_funasrs_text(case, tmp_path):
    wav, spoken, bicif, vad, punc, ref, segments = case
    data = tmp_path / "data"
    os.makedirs(data)
    (data / "wav.scp").write_text(f"rec {wav}\n", encoding="utf-8")
    (data / "text").write_text(f"rec {spoken}\n", encoding="utf-8")
    opts = InferOptions(
        model=bicif, data_dir=str(data), output_dir=str(tmp_path / "out"), device="cpu", ncpu=1,
        vad_model=vad, punc_model=punc,
    )  # fmt: skip
    result = run_inference(opts)
    out = tmp_path / "out" / "1best_recog"
    assert (out / "text").read_text(encoding="utf-8") == f"rec {ref['text']}\n"
    vad_line = (out / "vad").read_text(encoding="utf-8")
    assert [[int(a), int(b)] for a, b in re.findall(r"\[(\d+),(\d+)\]", vad_line)] == segments
    assert len((out / "sentences").read_text(encoding="utf-8").splitlines()) == len(ref["sentence_info"])
    assert not result.failed and result.cer_summary.startswith("%WER")
