"""The pipeline's logic against FunASR 1.4.16's own ``AutoModel.inference_with_vad``, run over the same stand-in
VAD, ASR and punctuation models: batching, timestamp shifting, text joining, punctuation and sentences."""

import random

import numpy as np
import pytest
import torch

from funasr_lite.pipeline.long_audio import LongAudioPipeline, segment_batches
from pipeline_fakes import EveryKPunc, HashAsr

funasr_auto = pytest.importorskip("funasr.auto.auto_model")


class _ListVad:
    """Returns the segments it was given."""

    sample_rate = 16000

    def __init__(self, segments):
        self._segments = segments

    def segments(self, wav):
        return [list(s) for s in self._segments]


class _ShortPunc(EveryKPunc):
    """Drops the last id, so ids and token times do not pair up (FunASR's fallback to VAD-segment sentences)."""

    def punctuate(self, text):
        r = super().punctuate(text)
        r.punc_ids = r.punc_ids[:-1]
        return r


def _funasr_run(wav, segments, asr, punc, batch_size_s, threshold_s):
    """FunASR's inference_with_vad, its models replaced by the stand-ins; returns (results, batch sizes)."""
    sizes = []
    auto = funasr_auto.AutoModel.__new__(funasr_auto.AutoModel)
    auto.kwargs = {
        "device": "cuda",  # FunASR batches only off the CPU (on CPU it decodes one segment at a time)
        "frontend": type("F", (), {"fs": 16000})(),
        "batch_size_s": batch_size_s,
        "batch_size_threshold_s": threshold_s,
        "disable_pbar": True,
    }
    auto.vad_kwargs, auto.punc_kwargs = {}, {}
    auto.vad_model, auto.model, auto.spk_model = "vad", "asr", None
    auto.punc_model = None if punc is None else "punc"

    def inference(data, input_len=None, model=None, kwargs=None, **cfg):
        if model == "vad":
            return [{"key": "rec", "value": [list(s) for s in segments]}]
        if model == "punc":
            r = punc.punctuate(data)
            return [{"key": "rec", "text": r.text, "punc_array": torch.tensor(r.punc_ids)}]
        sizes.append(len(data))
        return [{"key": "rec", **asr.decode_one(torch.as_tensor(np.asarray(x)))} for x in data]

    auto.inference = inference
    out = auto.inference_with_vad(wav.numpy(), sentence_timestamp=True, return_raw_text=True)
    return out, sizes


def _random_case(seed):
    rng = random.Random(seed)
    wav = torch.from_numpy(np.random.default_rng(seed).uniform(-0.3, 0.3, 16000 * 90).astype(np.float32))
    start = rng.randint(0, 2000)
    segments, t = [[start, start + 150]], start + 400  # one segment too short for any token
    while t < 88000:
        pick = rng.random()
        length = rng.randint(150, 3000) if pick < 0.45 else rng.randint(3000, 12000) if pick < 0.93 else 61000
        end = min(t + length, 90000)
        segments.append([t, end])
        t = end + rng.randint(200, 3000)
    return wav, segments


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("punc_cls", [EveryKPunc, _ShortPunc])
def test_matches_funasr_inference_with_vad(seed, punc_cls):
    wav, segments = _random_case(seed)
    batch_size_s, threshold_s = [(30, 60), (20, 10), (1, 60), (45, 5)][seed]
    ref_asr, our_asr = HashAsr(), HashAsr()
    ref, ref_sizes = _funasr_run(wav, segments, ref_asr, punc_cls(), batch_size_s, threshold_s)
    pipe = LongAudioPipeline(
        our_asr, _ListVad(segments), punc_cls(), batch_size_s=batch_size_s, batch_size_threshold_s=threshold_s
    )
    ours = pipe.transcribe_waveform(wav)
    assert our_asr.batch_sizes == ref_sizes and len(ref_sizes) > 1
    assert len(ref) == 1, "the recording must have text, or FunASR drops it"
    ref = ref[0]
    assert ours["vad_segments"] == segments
    assert ours["text"] == ref["text"]
    assert ours["raw_text"] == ref["raw_text"]
    assert ours["timestamp"] == ref["timestamp"]
    fields = ("text", "start", "end", "timestamp")
    assert [{k: s[k] for k in fields} for s in ours["sentence_info"]] == [
        {k: s[k] for k in fields} for s in ref["sentence_info"]
    ]
    # the case proves something: several batches, sentences, and some segments with no text
    assert len(ours["sentence_info"]) >= 3
    assert any(not HashAsr().decode_one(wav[s * 16 : e * 16])["text"] for s, e in segments)


@pytest.mark.parametrize("batch_size, batch_seconds", [(3, None), (10**6, 5.0), (4, 8.0)])
def test_forward_passes_follow_the_asr_batch_bounds_and_change_nothing(batch_size, batch_seconds):
    """Each FunASR batch is decoded in forward passes of at most the ASR's batch_size segments and batch_seconds
    of audio (a longer segment alone); the result and the progress total equal one pass per FunASR batch."""
    wav, segments = _random_case(1)
    whole, bounded = HashAsr(), HashAsr(batch_size=batch_size, batch_seconds=batch_seconds)
    ref = LongAudioPipeline(whole, _ListVad(segments), EveryKPunc(), batch_size_s=300).transcribe_waveform(wav)
    seen = []
    ours = LongAudioPipeline(bounded, _ListVad(segments), EveryKPunc(), batch_size_s=300).transcribe_waveform(
        wav, progress=seen.append
    )
    assert ours == ref
    assert len(bounded.batch_sizes) > len(whole.batch_sizes)
    assert all(n <= batch_size for n in bounded.batch_sizes)
    if batch_seconds:
        assert all(s <= batch_seconds or n == 1 for n, s in zip(bounded.batch_sizes, bounded.batch_seconds))
    assert sum(seen) == pytest.approx(wav.numel() / 16000)


def test_without_punctuation_matches_funasr_raw_text():
    wav, segments = _random_case(5)
    ref, _ = _funasr_run(wav, segments, HashAsr(), None, 300, 60)
    ours = LongAudioPipeline(HashAsr(), _ListVad(segments), None).transcribe_waveform(wav)
    assert ours["text"] == ref[0]["text"] and ours["timestamp"] == ref[0]["timestamp"]
    # FunASR gives no sentences without a punctuation model when there are timestamps; ours are the segments
    assert [s["text"] for s in ours["sentence_info"]] == [
        t for t in (HashAsr().decode_one(wav[s * 16 : e * 16])["text"] for s, e in segments) if t
    ]


def test_empty_recording_is_a_result_not_dropped():
    wav = torch.zeros(16000 * 5)
    segments = [[100, 150], [1000, 1100]]  # too short for any token
    ref, _ = _funasr_run(wav, segments, HashAsr(), EveryKPunc(), 300, 60)
    assert ref == []  # FunASR drops the recording
    punc = EveryKPunc()
    ours = LongAudioPipeline(HashAsr(), _ListVad(segments), punc).transcribe_waveform(wav)
    assert ours["text"] == "" and ours["sentence_info"] == [] and ours["timestamp"] == []
    assert ours["vad_segments"] == segments
    assert punc.inputs == []  # the punctuation model never sees an empty text


def test_no_speech_at_all():
    ours = LongAudioPipeline(HashAsr(), _ListVad([]), EveryKPunc()).transcribe_waveform(torch.zeros(16000))
    assert (ours["text"], ours["vad_segments"], ours["sentence_info"]) == ("", [], [])


@pytest.mark.parametrize(
    "lengths, batch_size_s, threshold_s, expected",
    [
        # shortest first; the segment that reaches the budget (longest x count) still joins its batch
        ([1000, 2000, 3000, 4000], 5, 60, [[0, 1, 2], [3]]),
        ([4000, 3000, 2000, 1000], 5, 60, [[3, 2, 1], [0]]),
        # a segment of threshold_s or more closes its batch
        ([1000, 70000, 80000, 2000], 300, 60, [[0, 3, 1], [2]]),
        # the budget is at least the shortest segment
        ([5000, 6000], 1, 60, [[0], [1]]),
        # equal lengths keep their order (stable sort)
        ([2000, 2000, 2000], 300, 60, [[0, 1, 2]]),
        ([], 300, 60, []),
    ],
)
def test_segment_batches_hand_checked(lengths, batch_size_s, threshold_s, expected):
    segments, t = [], 0
    for n in lengths:
        segments.append([t, t + n])
        t += n + 500
    assert segment_batches(segments, batch_size_s, threshold_s) == expected
