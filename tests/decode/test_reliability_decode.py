"""Reliability of the decoding job, in process (fast): non-finite numbers, stale or mixed outputs, the output
dir lock, a full disk, an interruption, and options/devices that must be refused with a clear message.

The recipe-level (subprocess) counterparts are in ``test_reliability_infer.py`` and ``test_reliability_flags``
cases at the end of this file (marked slow).
"""

import errno
import math
import os
import shutil

import pytest
import torch

from funasr_lite.decode import outputs as outputs_mod
from funasr_lite.decode.infer import run_after_finetune, run_inference
from funasr_lite.decode.options import AfterFinetuneOptions, DecodingOptions, InferOptions
from funasr_lite.decode.outputs import OutputError, is_our_output
from funasr_lite.decode.transcribe import load_model
from funasr_lite.errors import ConfigError, NonFiniteError
from funasr_lite.hub.model_dir import NonFiniteWeightsError
from funasr_lite.utils.device import resolve_device
from funasr_lite.utils.lock import DirLockedError, dir_lock
from tiny_model import build_tiny_model_dir


@pytest.fixture(scope="module")
def tiny(synth_data_dir, tmp_path_factory):
    return build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny")), synth_data_dir)


@pytest.fixture(scope="module")
def asr(tiny):
    return load_model(tiny, device="cpu", decoding=DecodingOptions(batch_size=2))


def _opts(tiny, data, out, **kw):
    return InferOptions(model=tiny, data_dir=data, output_dir=str(out), device="cpu", ncpu=1, **kw)


def _keys(path):
    with open(path, encoding="utf-8") as f:
        return [line.split(" ", 1)[0] for line in f.read().splitlines()]


def _partition(data, result_dir):
    wav = set(_keys(os.path.join(data, "wav.scp")))
    text, failed = set(_keys(os.path.join(result_dir, "text"))), set(_keys(os.path.join(result_dir, "failed")))
    assert not text & failed and text | failed == wav
    return text, failed


# ------------------------------------------------------------------------------------- 1. non-finite numbers
def _poisoned(tiny, tmp_path, tensor, value, where=0):
    d = tmp_path / "model"
    shutil.copytree(tiny, d)
    state = torch.load(d / "model.pt", weights_only=True)
    name = [k for k in state if tensor in k and state[k].is_floating_point()][0]
    state[name].view(-1)[where] = value
    torch.save(state, d / "model.pt")
    return str(d), name


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("tensor", ["encoder.", "predictor.", "decoder.output_layer", "decoder.decoders.0"])
def test_non_finite_weights_are_refused_at_load(tiny, tmp_path, tensor, value):
    model, name = _poisoned(tiny, tmp_path, tensor, value, where=-1)
    with pytest.raises(NonFiniteWeightsError) as e:
        load_model(model, device="cpu")
    assert os.path.join(model, "model.pt") in str(e.value) and f"tensor {name} " in str(e.value)


def _rows_poisoned(monkeypatch, asr, stage, bad_len):
    """Make ``stage`` of the model NaN (or raise an unexpected error) for the utterance whose feature count is
    ``bad_len``, in any batch it is part of."""
    model = asr.model
    state = {}

    def encode(feats, lens, _orig=model.encode):
        enc, enc_lens = _orig(feats, lens)
        state["rows"] = (lens == bad_len).nonzero().flatten()
        if stage == "encoder":
            enc = enc.clone()
            enc[state["rows"]] = math.nan
        if stage == "bug" and len(state["rows"]):
            raise TypeError("something unexpected")
        return enc, enc_lens

    def calc_predictor(enc, enc_lens, _orig=model.calc_predictor):
        if stage == "cif":
            enc = enc.clone()
            enc[state["rows"]] = math.inf
        return _orig(enc, enc_lens)

    def decode_logits(*args, _orig=model.decode_logits):
        out = _orig(*args).clone()
        if stage == "decoder":
            out[state["rows"]] = math.nan
        return out

    monkeypatch.setattr(model, "encode", encode)
    monkeypatch.setattr(model, "calc_predictor", calc_predictor)
    monkeypatch.setattr(model, "decode_logits", decode_logits)


@pytest.mark.parametrize(
    "stage,reason",
    [
        ("encoder", "the encoder output is NaN/Inf"),
        ("cif", "the CIF weights (alphas) are NaN/Inf"),
        ("decoder", "the decoder output is NaN/Inf"),
        ("bug", "TypeError: something unexpected"),
    ],
)
def test_non_finite_model_output_fails_only_that_utterance(asr, synth_data_dir, tmp_path, monkeypatch, stage, reason):
    from funasr_lite.data.audio import load_audio

    wavs = dict(line.split(" ", 1) for line in open(os.path.join(synth_data_dir, "wav.scp")).read().splitlines())
    victim = sorted(wavs)[1]
    n = load_audio(wavs[victim], 16000).numel()
    _, lens = asr.frontend(torch.zeros(1, n), torch.tensor([n]))
    _rows_poisoned(monkeypatch, asr, stage, int(lens[0]))
    result = run_inference(_opts(asr.model_dir.root, synth_data_dir, tmp_path), asr=asr)
    text, failed = _partition(synth_data_dir, result.result_dir)
    assert set(result.failed) == {victim}, result.failed
    assert reason in result.failed[victim] and "wav.scp:" in result.failed[victim]
    assert len(text) == len(wavs) - 1


def test_cif_refuses_nan_alphas_with_a_funasr_lite_error():
    from funasr_lite.models.cif import CifPredictorV2

    cif = CifPredictorV2(idim=8, l_order=1, r_order=1)
    hidden = torch.randn(2, 5, 8)
    hidden[1, 2] = math.nan
    with pytest.raises(NonFiniteError, match=r"CIF weights .* \(batch rows \[1\]\)"):
        cif(hidden, torch.tensor([5, 5]))


# ------------------------------------------------------------------------------- 2. stale or mixed outputs
STALE = ["text", "token", "score", "timestamp", "failed", "text.cer", "errs-old-beam4.txt", "text.part", ".text.x.tmp"]
USER = ["notes.txt", "text.bak", "errs.txt", "my_text", "text.cer.orig"]


def test_a_run_replaces_every_output_of_an_earlier_run_and_keeps_user_files(asr, synth_data_dir, tmp_path):
    rec = tmp_path / "1best_recog"
    rec.mkdir()
    for name in STALE + USER:
        (rec / name).write_text("stale zzz 1\n")
    data = tmp_path / "data"  # no text: this run writes no text.cer and no errs-*
    data.mkdir()
    shutil.copy(os.path.join(synth_data_dir, "wav.scp"), data / "wav.scp")
    run_inference(_opts(asr.model_dir.root, str(data), tmp_path), asr=asr)
    left = sorted(os.listdir(rec))
    assert left == sorted(["text", "token", "score", "timestamp", "failed"] + USER), left
    assert all("stale" not in (rec / n).read_text() for n in ("text", "failed"))
    assert all((rec / n).read_text() == "stale zzz 1\n" for n in USER)


@pytest.mark.parametrize("name", STALE + ["errs-test-greedy.txt", "failed.part", ".errs-a-b.txt.1.tmp"])
def test_our_names(name):
    assert is_our_output(name)


@pytest.mark.parametrize("name", USER + ["text.cer.bak", "texts", "errs-x.csv", ".hidden", "text.part.old"])
def test_not_our_names(name):
    assert not is_our_output(name)


def test_a_second_writer_is_refused(asr, synth_data_dir, tmp_path):
    with dir_lock(str(tmp_path), "test"):
        with pytest.raises(DirLockedError, match="in use"):
            run_inference(_opts(asr.model_dir.root, synth_data_dir, tmp_path), asr=asr)
    assert not (tmp_path / "1best_recog").exists()


def test_infer_after_finetune_locks_decode_results(tiny, synth_data_dir, tmp_path):
    ft = tmp_path / "ft"
    shutil.copytree(tiny, ft)
    shutil.copy(ft / "model.pt", ft / "valid.acc.ave.pb")
    opts = _opts(str(ft), synth_data_dir, tmp_path / "ignored")
    with dir_lock(str(ft / "decode_results"), "test"):
        with pytest.raises(DirLockedError):
            run_after_finetune(opts, AfterFinetuneOptions(output_dir=str(ft)))
    run_after_finetune(opts, AfterFinetuneOptions(output_dir=str(ft), required_files=["am.mvn", "config.yaml"]))
    _partition(synth_data_dir, str(ft / "decode_results" / "1best_recog"))


def test_a_full_disk_at_preflight_names_the_path(asr, synth_data_dir, tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(outputs_mod.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(OutputError, match=rf"{tmp_path} is not writable: .*disk is full.*are free"):
        run_inference(_opts(asr.model_dir.root, synth_data_dir, tmp_path), asr=asr)
    assert not (tmp_path / "1best_recog").exists()


@pytest.mark.parametrize("when", ["batch", "finish", "interrupt"])
def test_a_late_failure_keeps_the_decoded_part(asr, synth_data_dir, tmp_path, monkeypatch, when):
    """A disk that fills up (or a Ctrl-C) after the first batch: the error names the path, the decoded
    utterances stay in the .part files, and no final file of this run is half there."""
    rec = tmp_path / "1best_recog"
    calls = {"n": 0}
    real_add, real_fsync = outputs_mod.ResultWriter.add, os.fsync

    def add(self, results, failed):
        calls["n"] += 1
        if calls["n"] == 3 and when == "interrupt":
            raise KeyboardInterrupt
        if calls["n"] == 3 and when == "batch":
            monkeypatch.setattr(outputs_mod.os, "fsync", full)
        return real_add(self, results, failed)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def finish(self, files, _real=outputs_mod.ResultWriter.finish):
        monkeypatch.setattr(outputs_mod.os, "fsync", full)
        return _real(self, files)

    monkeypatch.setattr(outputs_mod.ResultWriter, "add", add)
    if when == "finish":
        monkeypatch.setattr(outputs_mod.ResultWriter, "finish", finish)
    with pytest.raises(KeyboardInterrupt if when == "interrupt" else OutputError) as e:
        run_inference(_opts(asr.model_dir.root, synth_data_dir, tmp_path), asr=asr)
    monkeypatch.setattr(outputs_mod.os, "fsync", real_fsync)
    if when != "interrupt":
        assert str(rec) in str(e.value) and "disk is full" in str(e.value) and ".part" in str(e.value)
    assert sorted(os.listdir(rec)) == sorted(n + ".part" for n in ("text", "token", "score", "timestamp", "failed"))
    assert len(_keys(rec / "text.part")) >= 2


def test_a_run_that_cannot_start_leaves_no_result_dir(synth_data_dir, tmp_path):
    with pytest.raises(Exception):
        run_inference(_opts(str(tmp_path / "no_model"), synth_data_dir, tmp_path / "out"))
    assert not (tmp_path / "out" / "1best_recog").exists()


# --------------------------------------------------------------------------------- 3. options and devices
BAD_INFER = (
    [("max_duration", v) for v in (math.nan, math.inf, -math.inf, -1.0, 0.0, 0, "10", True)]
    + [("ncpu", v) for v in (0, -1, 10**6, 2.5, True)]
    + [("checkpoint", v) for v in ("", "..", ".", "../model.pt", "/abs/model.pt", "sub/x.pb", " x.pb", "a\0b")]
    + [("device", 3), ("output_dir", ""), ("data_dir", None)]
)


@pytest.mark.parametrize("key,value", BAD_INFER, ids=[f"{k}={v!r}" for k, v in BAD_INFER])
def test_infer_options_refuse_bad_values(key, value):
    kw = {"model": "m", "data_dir": "d", "output_dir": "o", key: value}
    with pytest.raises(ConfigError, match=f"--{key}"):
        InferOptions(**kw)


BAD_AFTER = (
    [("decoding_model_name", v) for v in ("", "..", "../x.pb", "/x.pb", "a/b.pb", 5)]
    + [("required_files", v) for v in (["am.mvn", "../etc/passwd"], ["/abs"], [""], [".."], 3, ["a/b"])]
    + [("modelscope_model_name", ""), ("output_dir", "")]
)


@pytest.mark.parametrize("key,value", BAD_AFTER, ids=[f"{k}={v!r}" for k, v in BAD_AFTER])
def test_after_finetune_options_refuse_bad_values(key, value):
    kw = {"output_dir": "o", key: value}
    with pytest.raises(ConfigError, match=f"--{key}"):
        AfterFinetuneOptions(**kw)


def test_required_files_list_is_accepted_and_hashable():
    a = AfterFinetuneOptions(output_dir="o", required_files=["am.mvn", "config.yaml"])
    assert a.required_files == ("am.mvn", "config.yaml") and hash(a)
    assert AfterFinetuneOptions(output_dir="o", required_files="am.mvn").required_files == ("am.mvn",)


BAD_DECODING = (
    [(k, v) for k in ("beam_size", "nbest", "batch_size") for v in (0, -1, 1.5, True, "3")]
    + [("beam_size", 1001), ("batch_size", 10**6)]
    + [
        (k, v)
        for k in ("ctc_weight", "penalty", "lm_weight", "maxlenratio", "minlenratio")
        for v in (math.nan, math.inf)
    ]
    + [("ctc_weight", 1.5), ("ctc_weight", -0.1)]
    + [("batch_seconds", v) for v in (math.nan, math.inf, -1.0)]
)


@pytest.mark.parametrize("key,value", BAD_DECODING, ids=[f"{k}={v!r}" for k, v in BAD_DECODING])
def test_decoding_options_refuse_bad_values(key, value):
    with pytest.raises(ConfigError, match=f"decoding.{key}="):
        DecodingOptions(**{key: value})


def test_nbest_is_bounded_by_beam_size_and_beam_size_by_the_vocabulary(tiny):
    with pytest.raises(ConfigError, match="nbest.*<= beam_size"):
        DecodingOptions(beam_size=2, nbest=3)
    DecodingOptions(beam_size=3, nbest=3)
    with pytest.raises(ConfigError, match=r"beam_size=100: must be <= the model's vocabulary size \(43\)"):
        load_model(tiny, device="cpu", config_overrides={"beam_size": 100})


@pytest.mark.parametrize("device", ["foo", "cuda:x", "cpu:3", "meta", "mps", "cuda:-1", "", "  ", 7])
def test_bad_device_names_are_refused_listing_what_is_available(device):
    if device in ("", "  "):
        assert resolve_device(device).type in ("cpu", "cuda")  # empty = auto
        return
    with pytest.raises(ConfigError, match="available: auto, cpu"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7", "gpu", "CUDA"])
def test_cuda_without_a_gpu_is_refused(device):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device(device)


def test_gpu_index_beyond_the_visible_ones_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"no GPU 7; available: auto, cpu, cuda:0, cuda:1"):
        resolve_device("cuda:7")


def test_finetune_uses_the_same_device_check():
    from funasr_lite.train.distributed import resolve_device as train_resolve

    with pytest.raises(ConfigError, match="available: auto, cpu"):
        train_resolve("foo")
    assert train_resolve("cpu").type == "cpu"


def test_a_plain_run_after_a_long_audio_run_leaves_no_subtitles_dir(tmp_path):
    """The subtitles of an earlier long-audio run were removed but their empty ``subtitles/`` stayed; a dir that
    still holds a user's file is kept."""
    for keep in (False, True):
        rec = tmp_path / str(keep) / "1best_recog"
        os.makedirs(rec / "subtitles")
        (rec / "subtitles" / "a.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nx\n\n")
        if keep:
            (rec / "subtitles" / "notes.md").write_text("mine")
        writer = outputs_mod.ResultWriter(str(rec))
        writer.finish({"text": ""})
        assert os.path.isdir(rec / "subtitles") == keep and not os.path.exists(rec / "subtitles" / "a.srt")


def test_a_file_named_subtitles_stops_a_long_audio_writer_before_any_work(tmp_path):
    """A file ``1best_recog/subtitles`` made the long-audio job fail after decoding its first recording, with
    ``cannot write .../good.srt: File exists``; the writer now names it at once. A plain job does not need the dir."""
    rec = tmp_path / "1best_recog"
    os.makedirs(rec)
    (rec / "subtitles").write_text("mine")
    with pytest.raises(OutputError, match="subtitles/: it exists and is not a directory"):
        outputs_mod.ResultWriter(str(rec), fields=outputs_mod.LONG_AUDIO_FIELDS, subtitles=True)
    outputs_mod.ResultWriter(str(rec)).finish({"text": ""})
    assert (rec / "subtitles").read_text() == "mine"
