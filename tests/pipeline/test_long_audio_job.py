"""The long-audio data-dir job end to end: the tiny Paraformer fixture, a stand-in VAD and punctuation model
plugged in as ``funasr_lite.vad`` / ``funasr_lite.punc``, and a ~40 s recording of synthesized sentences with
pauses. Also the flags (``--vad_model``, ``--punc_model``, aliases, ``none``) and a bad file among good ones."""

import os
import re
import shutil
import sys
import types

import numpy as np
import pytest
import soundfile as sf
import torch

from funasr_lite.cli.recipes import infer_after_finetune_cli, infer_cli
from funasr_lite.decode.infer import run_inference
from funasr_lite.decode.options import InferOptions
from funasr_lite.hub.aliases import MODEL_ALIASES
from funasr_lite.pipeline.job import UNPUNCTUATED_NOTE
from pipeline_fakes import EnergyVad, EveryKPunc
from tiny_model import build_tiny_model_dir

RECIPE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "egs_modelscope",
    "asr",
    "paraformer",
    "speech_paraformer-large-vad-punc_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
)
SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n([^\n]+)\n\n")


@pytest.fixture
def fake_models(monkeypatch):
    """``funasr_lite.vad`` / ``funasr_lite.punc`` modules whose loaders record what they were asked to load."""
    loaded = []

    def load_vad(model, device=None, **overrides):
        loaded.append(("vad", model, device))
        return EnergyVad()

    def load_punc(model, device=None):
        loaded.append(("punc", model, device))
        return EveryKPunc()

    monkeypatch.setitem(sys.modules, "funasr_lite.vad", types.SimpleNamespace(load_vad=load_vad))
    monkeypatch.setitem(sys.modules, "funasr_lite.punc", types.SimpleNamespace(load_punc=load_punc))
    return loaded


@pytest.fixture(scope="module")
def setup(synth_data_dir, tmp_path_factory):
    """(model dir, data dir with a 40 s recording, a silent one and a broken one, VAD dir, punc dir)."""
    synth = pytest.importorskip("synth_data")
    from sentences import SENTENCES

    root = tmp_path_factory.mktemp("long")
    model = build_tiny_model_dir(str(root / "model"), synth_data_dir)
    data = root / "data"
    os.makedirs(data / "wav")
    spoken = synth.make_long_recording(str(data / "wav" / "long.wav"), list(SENTENCES.values()), 40.0)
    sf.write(str(data / "wav" / "quiet.wav"), np.zeros(16000 * 3, dtype=np.float32), 16000)
    (data / "wav" / "broken.wav").write_bytes(b"RIFF not really audio")
    (data / "wav.scp").write_text(
        "".join(f"{k} {data / 'wav' / k}.wav\n" for k in ("broken", "long", "quiet")), encoding="utf-8"
    )
    (data / "text").write_text(f"long {spoken}。\nquiet \nbroken 今天\n", encoding="utf-8")
    dirs = []
    for name in ("vad_dir", "punc_dir"):
        os.makedirs(root / name)
        dirs.append(str(root / name))
    return model, str(data), *dirs


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def _by_key(path):
    return dict(line.split(" ", 1) if " " in line else (line, "") for line in _lines(path))


def test_job_writes_every_output(setup, fake_models, tmp_path):
    model, data, vad_dir, punc_dir = setup
    opts = InferOptions(
        model=model, data_dir=data, output_dir=str(tmp_path), device="cpu", ncpu=1, vad_model=vad_dir,
        punc_model=punc_dir, batch_size_s=8, max_duration=20.0,  # shorter than the file: with a VAD it limits a segment only
    )  # fmt: skip
    result = run_inference(opts)
    assert [(kind, path) for kind, path, _ in fake_models] == [("vad", vad_dir), ("punc", punc_dir)]
    out = tmp_path / "1best_recog"
    # every key ends in exactly one of text / failed; the silent recording is a result with an empty text
    texts, failed = _by_key(out / "text"), _by_key(out / "failed")
    assert set(texts) == {"long", "quiet"} and set(failed) == {"broken"} and result.failed.keys() == {"broken"}
    assert texts["quiet"] == "" and "broken.wav" in failed["broken"]
    # punctuated text; the raw text is the same without the marks
    assert "，" in texts["long"] and texts["long"].endswith("。")
    raw = _by_key(out / "raw_text")["long"]
    assert re.sub("[，。？、]", "", texts["long"]) == raw.replace(" ", "")
    # several VAD segments, in order, inside the 40 s
    vad = {k: [[int(a), int(b)] for a, b in re.findall(r"\[(\d+),(\d+)\]", v)] for k, v in _by_key(out / "vad").items()}
    assert len(vad["long"]) >= 5 and vad["quiet"] == []
    flat = [t for seg in vad["long"] for t in seg]
    assert flat == sorted(flat) and flat[-1] <= 40_000
    # token times in the recording's time: each inside a VAD segment, one per token
    stamps = [[int(a), int(b)] for a, b in re.findall(r"\[(\d+),(\d+)\]", _by_key(out / "timestamp")["long"])]
    assert len(stamps) == len(_by_key(out / "token")["long"].split()) > 20
    assert all(any(s - 100 <= a <= b <= e + 100 for s, e in vad["long"]) for a, b in stamps)
    # sentences: key start end text, cut at the marks
    sentences = [line.split(" ", 3) for line in _lines(out / "sentences")]
    assert {s[0] for s in sentences} == {"long"} and len(sentences) >= 5
    assert all(int(s[1]) <= int(s[2]) for s in sentences)
    assert re.sub("[，。？、]", "", "".join(s[3] for s in sentences)) == raw.replace(" ", "")
    # subtitles: one well-formed SRT per recording, a cue per sentence
    srt = (out / "subtitles" / "long.srt").read_text(encoding="utf-8")
    cues = list(SRT_CUE.finditer(srt))
    assert "".join(c.group(0) for c in cues) == srt and len(cues) == len(sentences)
    assert [int(c.group(1)) for c in cues] == list(range(1, len(cues) + 1))
    assert (out / "subtitles" / "quiet.srt").read_text(encoding="utf-8") == ""
    # CER without punctuation, and the file says so
    cer_lines = _lines(out / "text.cer")
    assert cer_lines[0].startswith(f"# {UNPUNCTUATED_NOTE}") and UNPUNCTUATED_NOTE in result.cer_summary
    assert not any(m in line for line in cer_lines[1:] for m in "，。？、")
    assert result.audio_seconds == pytest.approx(43.0, abs=0.1)
    assert not [n for n in os.listdir(out) if n.endswith((".part", ".tmp"))]


def test_punctuation_does_not_change_the_cer(setup, fake_models, tmp_path):
    model, data, vad_dir, punc_dir = setup
    plain = tmp_path / "data"  # the references without marks: no run strips anything from them
    os.makedirs(plain)
    shutil.copy(os.path.join(data, "wav.scp"), plain / "wav.scp")
    (plain / "text").write_text(open(os.path.join(data, "text"), encoding="utf-8").read().replace("。", ""))
    summaries = []
    for punc in (punc_dir, None):
        opts = InferOptions(
            model=model, data_dir=str(plain), output_dir=str(tmp_path / str(punc is None)), device="cpu", ncpu=1,
            vad_model=vad_dir, punc_model=punc,
        )  # fmt: skip
        summaries.append(run_inference(opts).cer_summary)
    assert summaries[0].startswith(summaries[1]) and summaries[0] != summaries[1]
    assert summaries[1].startswith("%WER")
    # without a punctuation model the sentences are the VAD segments
    out = tmp_path / "True" / "1best_recog"
    segments = [[int(a), int(b)] for a, b in re.findall(r"\[(\d+),(\d+)\]", _by_key(out / "vad")["long"])]
    sentences = [line.split(" ", 3) for line in _lines(out / "sentences")]
    assert 3 <= len(sentences) <= len(segments)
    assert all(any(s - 100 <= int(a) <= int(b) <= e + 100 for s, e in segments) for _, a, b, _ in sentences)


def test_without_vad_max_duration_still_limits_the_file(setup, fake_models, tmp_path):
    model, data, _, punc_dir = setup
    opts = InferOptions(
        model=model,
        data_dir=data,
        output_dir=str(tmp_path),
        device="cpu",
        ncpu=1,
        punc_model=punc_dir,
        max_duration=20.0,
    )
    result = run_inference(opts)
    assert set(result.failed) == {"broken", "long"} and "--max_duration" in result.failed["long"]
    assert [kind for kind, _, _ in fake_models] == ["punc"]


def test_recipe_flags_aliases_and_none(setup, fake_models, tmp_path, monkeypatch, capsys):
    """The vad-punc recipe's defaults are aliases; a hub id is looked up (here: refused offline at once)."""
    model, data, vad_dir, _ = setup
    import funasr_lite.hub.download as download

    asked = []

    def fake_resolve(name, revision=None):
        asked.append(name)
        return name if os.path.isdir(name) else vad_dir

    monkeypatch.setattr(download, "resolve_model", fake_resolve)
    sys.path.insert(0, RECIPE)
    try:
        import importlib

        infer = importlib.import_module("infer")
        after = importlib.import_module("infer_after_finetune")
    finally:
        sys.path.remove(RECIPE)
        sys.modules.pop("infer", None)
        sys.modules.pop("infer_after_finetune", None)
    assert infer.DEFAULTS["vad_model"] == after.DEFAULTS["vad_model"] == "fsmn-vad"
    assert infer.DEFAULTS["punc_model"] == after.DEFAULTS["punc_model"] == "ct-punc"
    argv = ["--model", model, "--data_dir", data, "--output_dir", str(tmp_path / "a"), "--device", "cpu"]
    argv += ["--ncpu", "1"]
    assert infer_cli(dict(infer.DEFAULTS), argv) == 2  # the broken file fails
    assert MODEL_ALIASES["fsmn-vad"] in asked and MODEL_ALIASES["ct-punc"] in asked
    assert [kind for kind, _, _ in fake_models] == ["vad", "punc"]
    # --punc_model none: no punctuation model is loaded
    del fake_models[:]
    assert infer_cli(dict(infer.DEFAULTS), argv + ["--punc_model", "none", "--output_dir", str(tmp_path / "b")]) == 2
    assert [kind for kind, _, _ in fake_models] == ["vad"]
    assert "，" not in (tmp_path / "b" / "1best_recog" / "text").read_text(encoding="utf-8")
    # infer_after_finetune: the finetuned dir with the recipe's VAD / punctuation
    del fake_models[:]
    ft = tmp_path / "ft"
    shutil.copytree(model, ft)
    argv = ["--output_dir", str(ft), "--data_dir", data, "--device", "cpu", "--ncpu", "1"]
    argv += ["--modelscope_model_name", model]
    assert infer_after_finetune_cli(dict(after.DEFAULTS), argv) == 2
    assert [kind for kind, _, _ in fake_models] == ["vad", "punc"]
    assert os.path.isfile(ft / "decode_results" / "1best_recog" / "subtitles" / "long.srt")
    # help lists the flags with their meaning
    with pytest.raises(SystemExit):
        infer_cli(dict(infer.DEFAULTS), ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--vad_model", "--punc_model", "--batch_size_s", "--batch_size_threshold_s"):
        assert flag in text
    assert "recipe default: fsmn-vad" in text


def test_without_vad_the_whole_file_is_decoded_as_by_transcribe(setup, synth_data_dir):
    """No VAD: one segment, every sample of it (not the length in whole ms), so the text and times are those of
    a plain decode of the file."""
    from funasr_lite.data.audio import load_audio
    from funasr_lite.decode.transcribe import load_model
    from funasr_lite.pipeline.long_audio import LongAudioPipeline

    asr = load_model(setup[0], device="cpu")
    with open(os.path.join(synth_data_dir, "wav.scp"), encoding="utf-8") as f:
        paths = [line.split(maxsplit=1)[1].strip() for line in f if line.strip()]
    plain = asr.transcribe(paths)
    odd = 0
    for path, ref in zip(paths, plain):
        wav = load_audio(path, asr.sample_rate)
        odd += wav.numel() % 16 != 0
        r = LongAudioPipeline(asr).transcribe_waveform(wav)
        assert (r["text"], r["timestamp"], r["tokens"]) == (ref["text"], ref["timestamp"], ref["tokens"])
        assert r["vad_segments"] == [[0, wav.numel() * 1000 // asr.sample_rate]]
    assert odd and len({r["text"] for r in plain}) > 1


def test_bad_python_api_input_is_a_typed_error(setup):
    """Hotwords for a model without hotword support failed every batch, then every segment alone (a warning each)
    before a PipelineError; a numpy array raised AttributeError; batch_size_s NaN raised ValueError and 0 or -5 were
    taken as 1. Each is now a typed error at once."""
    from funasr_lite.decode.transcribe import load_model
    from funasr_lite.errors import AudioError, ConfigError
    from funasr_lite.pipeline.long_audio import LongAudioPipeline

    asr = load_model(setup[0], device="cpu")
    pipe = LongAudioPipeline(asr, EnergyVad())
    wav = np.zeros(16000, dtype=np.float32)
    with pytest.raises(AudioError, match="must be a 1-D float32 torch.Tensor at 16000 Hz, got ndarray"):
        pipe.transcribe_waveform(wav)
    calls = []
    asr_decode = asr.decode_waveforms
    asr.decode_waveforms = lambda *a, **k: calls.append(1) or asr_decode(*a, **k)
    with pytest.raises(ConfigError, match="takes no hotwords"):
        pipe.transcribe_waveform(torch.from_numpy(wav), hotwords=[[3]])
    assert calls == []
    for kw in (
        {"batch_size_s": 0},
        {"batch_size_s": -5},
        {"batch_size_s": float("nan")},
        {"batch_size_threshold_s": True},
        {"batch_size_threshold_s": 10**9},
        {"max_segment_seconds": float("nan")},
        {"max_segment_seconds": 0},
    ):
        with pytest.raises(ConfigError, match=next(iter(kw))):
            LongAudioPipeline(asr, **kw)


def test_an_offline_hub_id_names_the_stage_flag(monkeypatch):
    """The advice at the end of the offline message said ``pass --model DIR`` for a VAD / punctuation model."""
    import funasr_lite.hub.download as download
    from funasr_lite.errors import HubError
    from funasr_lite.pipeline.long_audio import resolve_stage_model

    monkeypatch.setattr(download, "hub_reachable", lambda: False)
    with pytest.raises(HubError) as e:
        resolve_stage_model("ct-punc", "--punc_model")
    msg = str(e.value)
    assert msg.startswith(f"--punc_model ct-punc (alias of {MODEL_ALIASES['ct-punc']}): not in the local")
    assert msg.endswith("and pass --punc_model DIR.") and "--model DIR" not in msg


def test_failures_name_the_file_once_and_a_failed_job_leaves_no_dirs(setup, fake_models, tmp_path, monkeypatch):
    """A one-sample file's reason named its path twice. A job stopped by a subtitle write error before any
    recording was done left an empty ``1best_recog/subtitles/`` (so also ``1best_recog/`` and the output dir)."""
    import funasr_lite.pipeline.job as job
    from funasr_lite.decode.outputs import OutputError

    model, data, vad_dir, punc_dir = setup
    odd = tmp_path / "odd"
    os.makedirs(odd)
    sf.write(str(odd / "one.wav"), np.full(1, 0.1, dtype=np.float32), 16000)
    (odd / "wav.scp").write_text(f"one {odd / 'one.wav'}\nquiet {data}/wav/quiet.wav\n", encoding="utf-8")
    opts = dict(model=model, data_dir=str(odd), device="cpu", ncpu=1, vad_model=vad_dir, punc_model=punc_dir)
    result = run_inference(InferOptions(output_dir=str(tmp_path / "a"), **opts))
    assert set(result.failed) == {"one"} and result.failed["one"].count(str(odd / "one.wav")) == 1
    assert "too short" in result.failed["one"]

    def full_disk(result_dir, name, content):
        os.makedirs(os.path.join(result_dir, "subtitles"), exist_ok=True)
        raise OutputError(f"cannot write {name}: No space left on device (the disk is full)")

    monkeypatch.setattr(job, "write_subtitles", full_disk)
    with pytest.raises(OutputError, match="No space left"):
        run_inference(InferOptions(output_dir=str(tmp_path / "b"), **opts))
    assert not os.path.exists(tmp_path / "b")


def test_any_error_of_one_recording_fails_only_it(setup, fake_models, tmp_path, monkeypatch):
    """A ValueError / IndexError (not a RuntimeError or one of ours) from the ASR or punctuation model stopped the
    whole job (exit 1, no outputs) instead of failing the recording; a batch failing so was not retried."""
    from funasr_lite.decode.transcribe import Transcriber

    model, data, vad_dir, punc_dir = setup
    two = tmp_path / "two"
    os.makedirs(two)
    (two / "wav.scp").write_text(f"a {data}/wav/long.wav\nb {data}/wav/long.wav\n", encoding="utf-8")
    real_decode, real_punctuate = Transcriber.decode_waveforms, EveryKPunc.punctuate
    batches, calls = [], []

    def decode(self, wavs, hotwords=None):
        batches.append(len(wavs))
        if len(wavs) > 1:
            raise ValueError("a batch the model cannot take")
        return real_decode(self, wavs, hotwords)

    def punctuate(self, text):
        calls.append(text)
        if len(calls) == 1:
            raise IndexError()
        return real_punctuate(self, text)

    monkeypatch.setattr(Transcriber, "decode_waveforms", decode)
    monkeypatch.setattr(EveryKPunc, "punctuate", punctuate)
    opts = InferOptions(
        model=model, data_dir=str(two), output_dir=str(tmp_path / "o"), device="cpu", ncpu=1, vad_model=vad_dir,
        punc_model=punc_dir, batch_size_s=20,
    )  # fmt: skip
    result = run_inference(opts)
    assert max(batches) > 1 and 1 in batches  # batches failed and were decoded segment by segment
    assert set(result.failed) == {"a"} and result.failed["a"].endswith("long.wav: IndexError")
    texts = _by_key(tmp_path / "o" / "1best_recog" / "text")
    assert set(texts) == {"b"} and texts["b"].endswith("。")
    assert os.listdir(tmp_path / "o" / "1best_recog" / "subtitles") == ["b.srt"]


def test_load_pipeline_takes_none_and_refuses_blank_stage_names_before_loading(setup, monkeypatch):
    """``vad_model="none"`` (the recipes' word for no model) went to the hub as a model name, and ``vad_model=5``
    raised AttributeError, each after the ASR model had been loaded."""
    import funasr_lite.pipeline.long_audio as long_audio
    from funasr_lite.errors import ConfigError

    pipe = long_audio.load_pipeline(setup[0], vad_model="none", punc_model="None", device="cpu")
    assert pipe.vad is None and pipe.punc is None
    monkeypatch.setattr(long_audio, "Transcriber", lambda *a, **k: pytest.fail("the ASR model was loaded"))
    for kw in ({"vad_model": 5}, {"punc_model": ""}, {"punc_model": "  "}, {"vad_model": ["fsmn-vad"]}):
        with pytest.raises(ConfigError, match=f"{next(iter(kw))} .*must be a model dir, a hub id or an alias"):
            long_audio.load_pipeline(setup[0], device="cpu", **kw)


def test_load_pipeline_quantize_takes_an_int8_only_dir(setup, tmp_path):
    """load_pipeline(quantize="int8") decodes a dir that holds only funasr-lite quantize's int8 weights, as
    load_model(dir, quantize="int8") does; without quantize the dir is refused, saying how to decode it."""
    from funasr_lite.data.audio import load_audio
    from funasr_lite.decode.quantized_dir import save_quantized
    from funasr_lite.decode.transcribe import load_model
    from funasr_lite.errors import ModelDirError
    from funasr_lite.pipeline.long_audio import load_pipeline

    int8_dir = str(tmp_path / "int8")
    save_quantized(setup[0], output_dir=int8_dir)
    wav = load_audio(os.path.join(setup[1], "wav", "long.wav"), 16000)[: 16000 * 12]
    ours = load_pipeline(int8_dir, device="cpu", quantize="int8").transcribe_waveform(wav)
    ref = load_pipeline(
        int8_dir, device="cpu", asr=load_model(setup[0], device="cpu", quantize="int8")
    ).transcribe_waveform(wav)
    assert ours["text"] and ours == ref
    with pytest.raises(ModelDirError, match="--quantize int8"):
        load_pipeline(int8_dir, device="cpu")
