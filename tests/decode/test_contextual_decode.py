"""ContextualParaformer decoding: text and token parity with funasr.AutoModel with and without hotwords, the
data-dir job's --hotword and per-utterance hotword file, and hotwords refused for models without support."""

import os

import pytest
import torch

from funasr_lite.decode.infer import run_inference
from funasr_lite.decode.options import InferOptions
from funasr_lite.decode.transcribe import load_model
from funasr_lite.errors import ConfigError
from tiny_model import build_tiny_contextual_dir, build_tiny_model_dir

HOTWORD_SETS = (None, "电话 号码 下午", "开会 九十")


@pytest.fixture(scope="module")
def contextual_dir(synth_data_dir, tmp_path_factory):
    pytest.importorskip("funasr")
    return build_tiny_contextual_dir(str(tmp_path_factory.mktemp("contextual")), synth_data_dir)


def _wavs(data_dir):
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        return dict(line.split(maxsplit=1) for line in f.read().splitlines())


def _read(path):
    with open(path, encoding="utf-8") as f:
        return dict(line.split(maxsplit=1) if " " in line else (line, "") for line in f.read().splitlines())


def test_matches_funasr_automodel_with_and_without_hotwords(contextual_dir, synth_data_dir, tmp_path):
    funasr = pytest.importorskip("funasr")
    wavs = _wavs(synth_data_dir)
    oracle = funasr.AutoModel(
        model=contextual_dir, disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR"
    )
    asr = load_model(contextual_dir, device="cpu")
    texts = {}
    for n, hotword in enumerate(HOTWORD_SETS):
        ours = asr.transcribe(list(wavs.values()), batch_size=4, hotword=hotword)
        out = tmp_path / str(n)
        for (key, path), mine in zip(wavs.items(), ours):
            ref = oracle.generate(input=path, hotword=hotword, output_dir=str(out))[0]
            assert mine["text"] == ref["text"], (hotword, key)
            assert len(mine["timestamp"]) == len(mine["tokens"])  # FunASR gives none; ours are CIF times
        oracle.model.writer.close()  # funasr's DatadirWriter keeps its files open
        del oracle.model.writer
        ref_tokens = _read(out / "1best_recog" / "token")
        for key, mine in zip(wavs, ours):
            assert mine["tokens"] == ref_tokens[key].split(), (hotword, key)
        texts[hotword] = [r["text"] for r in ours]
    plain = texts[None]
    assert len(set(plain)) == len(plain) and all(len(t) >= 3 for t in plain)  # varied, non-empty output
    for hotword in HOTWORD_SETS[1:]:  # each hotword list changes texts: the bias path is exercised
        changed = sum(a != b for a, b in zip(plain, texts[hotword]))
        assert 0 < changed, hotword


def test_hotword_file_and_data_job(contextual_dir, synth_data_dir, tmp_path):
    asr = load_model(contextual_dir, device="cpu")
    wavs = _wavs(synth_data_dir)
    hotword_file = tmp_path / "hotwords.txt"
    hotword_file.write_text("电话\n\n号码\n下午\n", encoding="utf-8")
    from_string = asr.transcribe(list(wavs.values()), hotword="电话 号码 下午")
    from_file = asr.transcribe(list(wavs.values()), hotword=str(hotword_file))
    assert [r["text"] for r in from_string] == [r["text"] for r in from_file]

    # the data job: --hotword for all, data_dir/hotword adds per-utterance words (batched apart)
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("".join(f"{k} {p}\n" for k, p in wavs.items()), encoding="utf-8")
    keys = list(wavs)
    (data / "hotword").write_text(f"{keys[0]} 开会 九十\n{keys[1]}\n", encoding="utf-8")
    opts = InferOptions(model=contextual_dir, data_dir=str(data), output_dir=str(tmp_path / "out"), device="cpu")
    result = run_inference(opts, asr=asr)
    assert not result.failed
    got = _read(tmp_path / "out" / "1best_recog" / "text")
    both = asr.transcribe([wavs[keys[0]]], hotword="开会 九十")[0]["text"]
    plain = asr.transcribe(list(wavs.values()))
    assert got[keys[0]] == both
    assert [got[k] for k in keys[1:]] == [r["text"] for r in plain[1:]]

    opts = InferOptions(
        model=contextual_dir, data_dir=str(data), output_dir=str(tmp_path / "out2"), device="cpu", hotword="电话 号码"
    )
    run_inference(opts, asr=asr)
    got = _read(tmp_path / "out2" / "1best_recog" / "text")
    assert got[keys[0]] == asr.transcribe([wavs[keys[0]]], hotword="电话 号码 开会 九十")[0]["text"]
    assert got[keys[2]] == asr.transcribe([wavs[keys[2]]], hotword="电话 号码")[0]["text"]


def test_hotwords_need_a_hotword_model(synth_data_dir, tmp_path, capsys):
    from funasr_lite.cli.recipes import infer_cli

    plain = build_tiny_model_dir(str(tmp_path / "plain"), synth_data_dir)
    argv = ["--model", plain, "--data_dir", synth_data_dir, "--output_dir", str(tmp_path / "out"), "--device", "cpu"]
    assert infer_cli({}, argv + ["--hotword", "电话"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --hotword: the model") and "takes no hotwords" in err
    asr = load_model(plain, device="cpu")
    assert not asr.supports_hotwords
    wav = next(iter(_wavs(synth_data_dir).values()))
    with pytest.raises(ConfigError, match="takes no hotwords"):
        asr.transcribe([wav], hotword="电话")
    with pytest.raises(ConfigError, match="takes no hotwords"):
        asr.decode_features(torch.zeros(1, 20, 560), torch.tensor([20]), hotwords=[[5]])


def test_legacy_0x_layout_and_names_decode_identically(contextual_dir, synth_data_dir, tmp_path):
    import yaml

    from funasr_lite.hub.model_init import write_model_dir
    from tiny_model import CHARS, cmvn_from_data_dir, tiny_contextual_config, tiny_token_list

    config = tiny_contextual_config()
    state = torch.load(os.path.join(contextual_dir, "model.pt"), weights_only=True)
    mean, std = cmvn_from_data_dir(synth_data_dir, config)
    legacy = write_model_dir(
        str(tmp_path / "legacy"),
        config,
        tiny_token_list(),
        cmvn_mean=mean,
        cmvn_std=std,
        state_dict=state,
        seg_dict={c: [c] for c in CHARS},
        layout="0.x",
    )
    with open(os.path.join(legacy, "config.yaml"), encoding="utf-8") as f:
        written = yaml.safe_load(f)
    assert (written["model"], written["decoder"]) == ("contextual_paraformer", "contextual_paraformer_decoder")
    wavs = list(_wavs(synth_data_dir).values())
    a = load_model(contextual_dir).transcribe(wavs, hotword="电话 号码")
    b = load_model(legacy).transcribe(wavs, hotword="电话 号码")
    assert [r["token_ids"] for r in a] == [r["token_ids"] for r in b]
