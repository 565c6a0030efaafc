"""funasr_lite.vad against FunASR 1.4.16's AutoModel on the same FSMN-VAD dir and samples.

The dir has the real model's size, FunASR's own class and init, and its silence output calibrated to follow
loudness (vad_dirs.calibrate), so the VAD finds several segments in synthesized speech with pauses.
"""

import json
import os
import shutil

import pytest
import torch

from funasr_lite.errors import AudioError, ConfigError, ModelDirError
from funasr_lite.vad import VadModel, load_vad

# Pauses between utterances, cycled (s): short ones the VAD bridges, long ones it cuts at.
PAUSES_S = [0.3, 1.2, 2.5, 0.6, 3.0]
MINUTE = 60 * 16000


@pytest.fixture(scope="module")
def vad_audio():
    """float32 16 kHz waveforms: ``speech`` (~57 s, 12 utterances with pauses, low noise), ``long`` (~118.6 s:
    two chunks, the second starting inside speech), ``edge`` (60.047 s: a second chunk of 752 samples),
    ``exact`` (60.000 s: an empty last chunk)."""
    synth = pytest.importorskip("synth_data")
    if not synth.espeak_available():
        pytest.skip("espeak-ng is not installed")
    from vad_dirs import UTTERANCES, concat_with_pauses

    speech = concat_with_pauses([synth.synthesize(t, speed=s) for t in UTTERANCES for s in (140, 190)], PAUSES_S, 0)
    return {
        "speech": speech,
        "long": torch.cat([speech, speech, speech[: 5 * 16000]]),
        "edge": torch.cat([speech, speech[: MINUTE + 752 - speech.numel()]]),
        "exact": torch.cat([speech, speech[: MINUTE - speech.numel()]]),
    }


@pytest.fixture(scope="module")
def vad_dir(vad_audio, tmp_path_factory):
    """A 1.x dir (config.yaml, model.pt, am.mvn) built with FunASR's FsmnVADStreaming."""
    pytest.importorskip("funasr")
    from vad_dirs import VAD_CONFIG, calibrate, cmvn_of, funasr_vad, lfr_feats, write_vad_dir

    wav = vad_audio["speech"]
    mean, std = cmvn_of(wav)
    model = funasr_vad(VAD_CONFIG, seed=0)
    calibrate(model, (lfr_feats(wav) - mean.float()) / std.float(), speech_share=0.6)
    return write_vad_dir(str(tmp_path_factory.mktemp("fsmn_vad")), model, mean, std)


@pytest.fixture(scope="module")
def funasr_segments(vad_dir):
    """run(wav, **overrides) -> FunASR AutoModel's res[0]["value"] (one AutoModel per override set)."""
    from funasr import AutoModel

    models = {}

    def run(wav, **overrides):
        key = tuple(sorted(overrides.items()))
        if key not in models:
            models[key] = AutoModel(
                model=vad_dir, disable_update=True, device="cpu", disable_pbar=True, disable_log=True, **overrides
            )
        return models[key].generate(input=wav)[0]["value"]

    return run


@pytest.fixture(scope="module")
def vad(vad_dir):
    return load_vad(vad_dir, device="cpu")


@pytest.mark.parametrize("name", ["speech", "long", "edge", "exact"])
def test_segments_match_funasr(vad, vad_audio, funasr_segments, name):
    wav = vad_audio[name]
    got = vad.segments(wav)
    assert got == funasr_segments(wav)
    assert len(got) >= 3
    assert all(0 <= s < e for s, e in got) and all(a[1] <= b[0] for a, b in zip(got, got[1:]))


def test_dynamic_schedule_cuts_the_second_minute_finer(vad, vad_audio):
    """The second chunk starts inside speech, so the schedule ends its segments after 50 ms of silence or less:
    the same audio gives more segments after 60 s than before."""
    got = vad.segments(vad_audio["long"])
    first = [s for s in got if s[1] <= 60000]
    second = [s for s in got if s[0] >= 60000]
    assert len(second) > 2 * len(first) >= 6


def test_max_end_silence_time_turns_the_schedule_off(vad_dir, vad_audio, funasr_segments, vad):
    fixed = load_vad(vad_dir, device="cpu", max_end_silence_time=300)
    assert not fixed.dynamic_silence and vad.dynamic_silence
    for name in ("speech", "long"):
        got = fixed.segments(vad_audio[name])
        assert got == funasr_segments(vad_audio[name], max_end_silence_time=300)
        assert got != vad.segments(vad_audio[name])


def test_max_single_segment_time(vad_dir, vad_audio, funasr_segments):
    short = load_vad(vad_dir, device="cpu", max_single_segment_time=3000)
    got = short.segments(vad_audio["long"])
    assert got == funasr_segments(vad_audio["long"], max_single_segment_time=3000)
    assert (
        max(e - s for s, e in got) <= 3000 + 10 < max(e - s for s, e in load_vad(vad_dir).segments(vad_audio["long"]))
    )


@pytest.mark.parametrize("n", [400, 401, 560, 1000, 16000])
def test_short_audio_matches_funasr(vad, vad_audio, funasr_segments, n):
    wav = vad_audio["speech"][3 * 16000 : 3 * 16000 + n]
    assert vad.segments(wav) == funasr_segments(wav)


@pytest.mark.parametrize("n", [0, 1, 399])
def test_shorter_than_one_frame_gives_no_segments(vad, n):
    # FunASR's AutoModel raises ZeroDivisionError below one 25 ms frame (its speed statistics divide by 0 s).
    assert vad.segments(torch.full((n,), 0.1)) == []


def test_silence_and_noise_only_match_funasr(vad, funasr_segments):
    gen = torch.Generator().manual_seed(1)
    for wav in (torch.zeros(3 * 16000), 0.003 * torch.randn(70 * 16000, generator=gen)):
        assert vad.segments(wav) == funasr_segments(wav)


def test_memory_follows_the_chunk(vad, vad_audio, monkeypatch):
    """No call builds features or runs the encoder on more than one 60 s chunk (plus LFR context)."""
    from funasr_lite.vad.frontend import VadFrontend

    rows = []
    accept = VadFrontend.accept

    def spy(self, chunk, final):
        out = accept(self, chunk, final)
        rows.append(0 if out is None else out[0].shape[1])
        return out

    monkeypatch.setattr(VadFrontend, "accept", spy)
    vad.segments(vad_audio["long"])
    assert len(rows) == 2 and max(rows) <= 6000 + 2 and sum(rows) == vad_audio["long"].numel() // 160 - 1


def test_bad_input_is_refused(vad):
    with pytest.raises(AudioError, match="1-D"):
        vad.segments(torch.zeros(2, 16000))
    with pytest.raises(AudioError, match="float32"):
        vad.segments(torch.zeros(16000, dtype=torch.float64))
    with pytest.raises(AudioError, match="NaN"):
        vad.segments(torch.full((16000,), float("nan")))
    assert isinstance(vad, VadModel) and vad.sample_rate == 16000


def _copy(vad_dir, tmp_path):
    out = tmp_path / "vad"
    shutil.copytree(vad_dir, out)
    return out


def test_unknown_config_key_names_file_line_and_key(vad_dir, tmp_path):
    d = _copy(vad_dir, tmp_path)
    text = (d / "config.yaml").read_text().replace("max_end_silence_time:", "max_end_silense_time:")
    (d / "config.yaml").write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "max_end_silense_time" in s)
    with pytest.raises(ConfigError, match=rf"config.yaml:{line}: unknown key 'model_conf.max_end_silense_time'.*"):
        load_vad(str(d))
    (d / "config.yaml").write_text(text.replace("max_end_silense_time:", "max_end_silence_time:") + "vad_conf: {}\n")
    with pytest.raises(ConfigError, match="unknown key 'vad_conf'"):
        load_vad(str(d))


def test_bad_override_is_refused(vad_dir):
    with pytest.raises(ConfigError, match="override: unknown key 'model_conf.max_end_silence'.*did you mean"):
        load_vad(vad_dir, max_end_silence=500)
    with pytest.raises(ConfigError, match="override: model_conf.max_single_segment_time: expected an integer"):
        load_vad(vad_dir, max_single_segment_time="long")


def test_file_path_metas_dir_matches_funasr(vad_dir, vad_audio, tmp_path):
    """The layout ModelScope ships: configuration.json names the files."""
    from funasr import AutoModel

    d = _copy(vad_dir, tmp_path)
    for old, new in (("config.yaml", "vad.yaml"), ("model.pt", "vad.pt"), ("am.mvn", "vad.mvn")):
        os.rename(d / old, d / new)
    metas = {"init_param": "vad.pt", "config": "vad.yaml", "frontend_conf": {"cmvn_file": "vad.mvn"}}
    (d / "configuration.json").write_text(json.dumps({"framework": "pytorch", "file_path_metas": metas}))
    wav = vad_audio["speech"]
    ref = AutoModel(model=str(d), disable_update=True, device="cpu", disable_pbar=True, disable_log=True)
    assert load_vad(str(d)).segments(wav) == ref.generate(input=wav)[0]["value"]


def test_file_path_metas_without_cmvn_file_means_no_cmvn_as_in_funasr(vad_dir, vad_audio, tmp_path, vad):
    """FunASR takes the CMVN file only from file_path_metas when the dir has them: am.mvn beside them is
    not used (funasr-lite used it)."""
    from funasr import AutoModel

    d = _copy(vad_dir, tmp_path)
    metas = {"init_param": "model.pt", "config": "config.yaml"}
    (d / "configuration.json").write_text(json.dumps({"framework": "pytorch", "file_path_metas": metas}))
    wav = vad_audio["speech"]
    ref = AutoModel(model=str(d), disable_update=True, device="cpu", disable_pbar=True, disable_log=True)
    got = load_vad(str(d)).segments(wav)
    assert got == ref.generate(input=wav)[0]["value"]
    assert got != vad.segments(wav)


def test_asr_loader_points_to_load_vad(vad_dir):
    import funasr_lite

    with pytest.raises(ConfigError, match="voice activity detector.*funasr_lite.vad.load_vad"):
        funasr_lite.load_model(vad_dir, device="cpu")


def test_legacy_dir_is_refused_clearly(tmp_path):
    (tmp_path / "vad.yaml").write_text("model: e2evad\n")
    (tmp_path / "vad.pb").write_bytes(b"")
    with pytest.raises(ModelDirError, match="0.x dir"):
        load_vad(str(tmp_path))
