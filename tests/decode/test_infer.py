"""Inference: parity with funasr's AutoModel, layouts, padding invariance, the data-dir job."""

import json
import os
import shutil

import pytest
import torch

from funasr_lite.decode.infer import run_inference
from funasr_lite.decode.options import DecodingOptions, InferOptions
from funasr_lite.decode.transcribe import load_model
from funasr_lite.errors import CheckpointError, ModelDirError
from tiny_model import TINY_CONFIG, build_tiny_model_dir, tiny_token_list


def _funasr_state_dict(seed: int = 0):
    """Random weights from funasr's own Paraformer class (the oracle's parameter names)."""
    fp = pytest.importorskip("funasr.models.paraformer.model")
    torch.manual_seed(seed)
    cfg = TINY_CONFIG
    model = fp.Paraformer(
        encoder=cfg["encoder"],
        encoder_conf=cfg["encoder_conf"],
        decoder=cfg["decoder"],
        decoder_conf=cfg["decoder_conf"],
        predictor=cfg["predictor"],
        predictor_conf=cfg["predictor_conf"],
        ctc_conf=cfg["ctc_conf"],
        input_size=560,
        vocab_size=len(tiny_token_list()),
        **cfg["model_conf"],
    )
    return model.state_dict()


@pytest.fixture(scope="module")
def funasr_dir(synth_data_dir, tmp_path_factory):
    """A 1.x model dir holding weights made by funasr's Paraformer class."""
    out = str(tmp_path_factory.mktemp("model1x"))
    return build_tiny_model_dir(out, synth_data_dir, state_dict=_funasr_state_dict())


def _wavs(data_dir):
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        return dict(line.split(maxsplit=1) for line in f.read().splitlines())


def test_matches_funasr_automodel(funasr_dir, synth_data_dir, tmp_path):
    funasr = pytest.importorskip("funasr")
    wavs = _wavs(synth_data_dir)
    oracle = funasr.AutoModel(model=funasr_dir, disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR")
    ours = load_model(funasr_dir, device="cpu").transcribe(list(wavs.values()), batch_size=4)
    texts = set()
    for (key, path), mine in zip(wavs.items(), ours):
        ref = oracle.generate(input=path, output_dir=str(tmp_path))[0]
        assert mine["text"] == ref["text"], key
        texts.add(mine["text"])
    oracle.model.writer.close()  # funasr's DatadirWriter keeps its files open
    with open(tmp_path / "1best_recog" / "token", encoding="utf-8") as f:
        ref_tokens = dict(line.split(maxsplit=1) for line in f.read().splitlines())
    for key, mine in zip(wavs, ours):
        assert mine["tokens"] == ref_tokens[key].split(), key
    # the random weights must give varied, non-empty output, or this test proves nothing
    assert len(texts) == len(wavs) and all(len(t) >= 3 for t in texts)


def test_encoder_output_matches_funasr(funasr_dir, synth_data_dir):
    funasr = pytest.importorskip("funasr")
    from funasr.utils.load_utils import extract_fbank, load_audio_text_image_video

    oracle = funasr.AutoModel(model=funasr_dir, disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR")
    asr = load_model(funasr_dir, device="cpu")
    path = next(iter(_wavs(synth_data_dir).values()))
    frontend = oracle.kwargs["frontend"]
    audio = load_audio_text_image_video([path], fs=16000)
    feats, lens = extract_fbank(audio, data_type="sound", frontend=frontend)
    with torch.no_grad():
        ref, ref_lens = oracle.model.encode(feats, lens)
        mine, mine_lens = asr.model.encode(feats, lens)
    assert torch.equal(ref_lens.long(), mine_lens.long())
    assert (ref - mine).abs().max().item() < 1e-4


def test_legacy_layout_decodes_identically(funasr_dir, synth_data_dir, tmp_path):
    state = torch.load(os.path.join(funasr_dir, "model.pt"), weights_only=True)
    legacy = build_tiny_model_dir(str(tmp_path / "legacy"), synth_data_dir, state_dict=state, layout="0.x")
    assert sorted(os.listdir(legacy)) == sorted(
        ["am.mvn", "config.yaml", "configuration.json", "decoding.yaml", "finetune.yaml", "model.pb", "tokens.txt"]
    )
    # spread_weights is deterministic, so both dirs now hold the same tensors
    wavs = list(_wavs(synth_data_dir).values())
    a = load_model(funasr_dir).transcribe(wavs, batch_size=3)
    b = load_model(legacy).transcribe(wavs, batch_size=3)
    assert [r["token_ids"] for r in a] == [r["token_ids"] for r in b]
    assert load_model(legacy).model_dir.layout == "0.x"


def test_batched_equals_one_by_one(funasr_dir, synth_data_dir):
    asr = load_model(funasr_dir)
    wavs = list(_wavs(synth_data_dir).values())
    batched = asr.transcribe(wavs, batch_size=len(wavs))
    single = [asr.transcribe([w], batch_size=1)[0] for w in wavs]
    for b, s in zip(batched, single):
        assert b["token_ids"] == s["token_ids"]
        assert b["timestamp"] == s["timestamp"]
        assert b["score"] == pytest.approx(s["score"], abs=1e-4)


def test_transcribe_takes_path_objects_and_refuses_bad_rates_and_batch_sizes(funasr_dir, synth_data_dir):
    """pathlib.Path is a path (not "expected an array"); sample_rate=0/NaN is an AudioError, not
    silently the model's rate or a bare ValueError; batch_size must be a positive integer."""
    import pathlib

    import numpy as np

    from funasr_lite.errors import AudioError

    asr = load_model(funasr_dir)
    wav = list(_wavs(synth_data_dir).values())[0]
    assert asr.transcribe([pathlib.Path(wav)])[0]["token_ids"] == asr.transcribe([wav])[0]["token_ids"]
    assert asr.transcribe(pathlib.Path(wav))[0]["key"] == os.path.splitext(os.path.basename(wav))[0]
    arr = np.zeros(16000, np.float32)
    for bad in (0, -16000, float("nan"), float("inf"), "16000", 16000.5):
        with pytest.raises(AudioError, match="sample rate"):
            asr.transcribe([arr], sample_rate=bad)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            asr.transcribe([wav], batch_size=bad)


def test_result_fields_and_timestamps(funasr_dir, synth_data_dir):
    res = load_model(funasr_dir).transcribe(list(_wavs(synth_data_dir).values())[:1])[0]
    assert len(res["tokens"]) == len(res["token_ids"]) == len(res["timestamp"])
    ends = [e for _, e in res["timestamp"]]
    assert all(s <= e for s, e in res["timestamp"]) and ends == sorted(ends)
    assert res["score"] < 0


def test_array_input_and_beam_without_ctc(funasr_dir, synth_data_dir):
    import soundfile as sf

    path = next(iter(_wavs(synth_data_dir).values()))
    audio, sr = sf.read(path, dtype="float32")
    asr = load_model(funasr_dir)
    assert asr.transcribe([audio], sample_rate=sr)[0]["text"] == asr.transcribe([path])[0]["text"]
    beam = load_model(funasr_dir, decoding=DecodingOptions(beam_size=4)).transcribe([path])[0]
    assert beam["token_ids"]


def test_ctc_weight_without_ctc_head_is_a_clear_error(funasr_dir):
    with pytest.raises(CheckpointError, match="CTC head"):
        load_model(funasr_dir, decoding=DecodingOptions(beam_size=4, ctc_weight=0.3))


def test_vocabulary_mismatch_is_refused(funasr_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(funasr_dir, bad)
    tokens = json.loads((bad / "tokens.json").read_text(encoding="utf-8"))
    (bad / "tokens.json").write_text(json.dumps(tokens + ["多"]), encoding="utf-8")
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_model(str(bad))


def test_missing_and_truncated_files(funasr_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(funasr_dir, bad)
    os.unlink(bad / "am.mvn")
    with pytest.raises(ModelDirError, match="am.mvn"):
        load_model(str(bad))
    shutil.copy(os.path.join(funasr_dir, "am.mvn"), bad / "am.mvn")
    data = (bad / "model.pt").read_bytes()
    (bad / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(str(bad))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_code_is_refused(funasr_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(funasr_dir, bad)
    torch.save({"state_dict": _Evil()}, bad / "model.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_model(str(bad))


def test_offline_hub_id_fails_fast():
    import time

    from funasr_lite.errors import HubError

    start = time.time()
    with pytest.raises(HubError, match="--model DIR"):
        load_model("iic/no-such-model-for-funasr-lite-tests")
    assert time.time() - start < 15


def test_data_dir_job_writes_every_key(funasr_dir, synth_data_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    wavs = _wavs(synth_data_dir)
    lines = [f"{k} {v}" for k, v in wavs.items()] + [f"broken {tmp_path}/nope.wav"]
    (data / "wav.scp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(os.path.join(synth_data_dir, "text"), data / "text")
    with open(data / "text", "a", encoding="utf-8") as f:
        f.write("broken 一 二 三\n")
    out = tmp_path / "out"
    result = run_inference(
        InferOptions(model=funasr_dir, data_dir=str(data), output_dir=str(out)),
        [("test", {"decoding": {"batch_size": 4}})],
    )
    rec = out / "1best_recog"
    text_keys = [line.split(maxsplit=1)[0] for line in (rec / "text").read_text(encoding="utf-8").splitlines()]
    failed = (rec / "failed").read_text(encoding="utf-8").splitlines()
    assert text_keys == sorted(wavs)
    assert len(failed) == 1 and failed[0].startswith("broken ") and "nope.wav" in failed[0]
    for name in ("token", "score", "timestamp"):
        assert len((rec / name).read_text(encoding="utf-8").splitlines()) == len(wavs)
    cer = (rec / "text.cer").read_text(encoding="utf-8")
    # the failed utterance counts as 3 deletions
    assert "broken(nwords=3,cor=0,ins=0,del=3,sub=0)" in cer
    assert result.cer_summary.startswith("%WER")
    assert (rec / "errs-data-greedy.txt").exists()


def test_missing_token_list_names_the_file_configuration_json_asks_for(funasr_dir, tmp_path):
    """configuration.json names tokens.json; a tokens.txt beside it is not used, and the error said
    'no tokens.json/tokens.txt' although tokens.txt was right there."""
    d = str(tmp_path / "m")
    shutil.copytree(funasr_dir, d)
    with open(os.path.join(d, "tokens.json"), encoding="utf-8") as f:
        tokens = json.load(f)
    with open(os.path.join(d, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    os.remove(os.path.join(d, "tokens.json"))
    with pytest.raises(
        CheckpointError, match=rf"^{d}: no tokens\.json \(the token list this model dir names\) and no token_list in "
    ):
        load_model(d)
