"""Saved int8 weights (``funasr-lite quantize``, :mod:`funasr_lite.decode.quantized_dir`): a saved and reloaded
model decodes exactly as the one quantized in memory; stale, incomplete or corrupt saves are caught.

The bundled demo model (trained, 1.6 M parameters) gives many different texts, so equal texts and scores mean
equal int8 weights.
"""

import json
import logging
import os
import shutil

import pytest
import torch

from funasr_lite.cli.main import main
from funasr_lite.decode import quantized_dir
from funasr_lite.decode.quantized_dir import SIDECAR_NAME, save_quantized
from funasr_lite.decode.transcribe import Transcriber, load_model
from funasr_lite.errors import CheckpointError, ModelDirError
from funasr_lite.hub.model_dir import QUANTIZED_NAME, detect_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)
WAVS = sorted(
    os.path.join(DEMO, "data", "test", "wav", f) for f in os.listdir(os.path.join(DEMO, "data", "test", "wav"))
)[:24]


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "model"
    shutil.copytree(os.path.join(DEMO, "model"), path)
    return str(path)


def _decode(asr):
    return [(r["text"], r["score"]) for r in asr.transcribe(WAVS, batch_size=8)]


def _messages(caplog):
    return "\n".join(r.getMessage() for r in caplog.records)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def torch_threads(request):
    """torch's CPU threads for the test: the saved layers are packed in a pool of 2, or in the loader with 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def test_saved_int8_decodes_exactly_as_int8_in_memory(model_dir, tmp_path, caplog, torch_threads):
    int8_dir = str(tmp_path / "int8")
    assert save_quantized(model_dir) == os.path.join(model_dir, QUANTIZED_NAME)
    assert save_quantized(model_dir, int8_dir) == os.path.join(int8_dir, QUANTIZED_NAME)
    # a complete model dir without the fp32 weights
    assert sorted(os.listdir(int8_dir)) == sorted(
        {"config.yaml", "am.mvn", "tokens.json", "configuration.json", QUANTIZED_NAME, SIDECAR_NAME}
    )
    in_memory = Transcriber(detect_model_dir(model_dir), "cpu", quantize="int8", reuse_saved=False)
    caplog.set_level(logging.INFO)
    caplog.clear()
    beside = load_model(model_dir, device="cpu", quantize="int8")
    alone = load_model(int8_dir, device="cpu", quantize="int8")
    log = _messages(caplog)
    assert f"loading the saved {os.path.join(model_dir, QUANTIZED_NAME)}" in log
    assert f"loading the saved {os.path.join(int8_dir, QUANTIZED_NAME)}" in log
    assert "in memory" not in log
    # the same module tree and state as quantize_dynamic's
    ref = in_memory.model.state_dict()
    for asr in (beside, alone):
        assert [type(m) for m in asr.model.modules()] == [type(m) for m in in_memory.model.modules()]
        assert repr(asr.model) == repr(in_memory.model)  # in/out features of every int8 Linear
        state = asr.model.state_dict()
        assert list(state) == list(ref)
        for key, value in ref.items():
            other = state[key]
            if isinstance(value, tuple):
                assert all(
                    torch.equal(a.int_repr() if a.is_quantized else a, b.int_repr() if b.is_quantized else b)
                    for a, b in zip(value, other)
                    if a is not None
                )
                assert torch.equal(value[0].q_per_channel_scales(), other[0].q_per_channel_scales())
            elif isinstance(value, torch.Tensor):
                assert torch.equal(value, other), key
            else:
                assert value == other
    # the fp32 rest was copied out of the memory-mapped files: their pages are not kept resident
    if os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps", encoding="utf-8") as f:
            maps = f.read()
        for path in (os.path.join(model_dir, "model.pt"), os.path.join(model_dir, QUANTIZED_NAME), int8_dir):
            assert path not in maps
    expected = _decode(in_memory)
    assert len({text for text, _ in expected}) > 20  # many different texts: equality proves something
    assert _decode(beside) == expected
    assert _decode(alone) == expected


def test_stale_or_foreign_save_falls_back_to_quantizing(model_dir, caplog):
    save_quantized(model_dir)
    weights = os.path.join(model_dir, "model.pt")
    st = os.stat(weights)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # the fp32 weights were rewritten
    caplog.set_level(logging.INFO)
    asr = load_model(model_dir, device="cpu", quantize="int8")
    stale = [r for r in caplog.records if r.levelno == logging.WARNING and "changed since" in r.getMessage()]
    assert len(stale) == 1
    assert weights in stale[0].getMessage() and os.path.join(model_dir, QUANTIZED_NAME) in stale[0].getMessage()
    assert f"int8: quantizing {weights} in memory" in _messages(caplog)
    assert asr.transcribe(WAVS[:2])[0]["text"]
    # other fp32 weights than the save was made from (--checkpoint): quantized in memory, said at INFO
    shutil.copy(weights, os.path.join(model_dir, "other.pt"))
    save_quantized(model_dir)
    caplog.clear()
    load_model(model_dir, device="cpu", quantize="int8", checkpoint="other.pt")
    assert "was made from model.pt, not other.pt" in _messages(caplog)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # a save without its sidecar (an interrupted save) is not trusted
    os.unlink(os.path.join(model_dir, SIDECAR_NAME))
    caplog.clear()
    load_model(model_dir, device="cpu", quantize="int8")
    assert f"{SIDECAR_NAME}: missing" in _messages(caplog) and "quantizing" in _messages(caplog)


def test_int8_only_dir_needs_the_flag_and_a_sound_save(model_dir, tmp_path):
    int8_dir = str(tmp_path / "int8")
    save_quantized(model_dir, int8_dir)
    with pytest.raises(ModelDirError, match=r"model.pt \(weights; the dir holds int8 weights only.*--quantize int8"):
        load_model(int8_dir, device="cpu")
    with pytest.raises(ModelDirError, match="model.pt"):  # finetuning and other tools need the fp32 weights
        detect_model_dir(int8_dir)
    # a config.yaml that describes other layers: every mis-shaped int8 layer is named
    config = os.path.join(int8_dir, "config.yaml")
    original = open(config, encoding="utf-8").read()
    open(config, "w", encoding="utf-8").write(original.replace("linear_units: 512", "linear_units: 256", 1))
    with pytest.raises(CheckpointError, match=r"feed_forward.w_1._packed_params._packed_params: weight \(512, 128\)"):
        load_model(int8_dir, device="cpu", quantize="int8")
    open(config, "w", encoding="utf-8").write(original)
    # the int8 file given as fp32 weights
    with pytest.raises(CheckpointError, match=r"holds int8-quantized weights .*--quantize int8"):
        load_model(model_dir, device="cpu", checkpoint=os.path.join(int8_dir, QUANTIZED_NAME))
    # corrupt bytes, same size: the load fails naming the file
    path = os.path.join(int8_dir, QUANTIZED_NAME)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\xff" * 4096
    data[-200:] = b"\x00" * 200  # the zip directory
    open(path, "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match=f"{path}: cannot load weights"):
        load_model(int8_dir, device="cpu", quantize="int8")
    # truncated: the sidecar's size no longer matches, and there is nothing to quantize instead
    open(path, "wb").write(bytes(data[:1000]))
    with pytest.raises(CheckpointError, match=f"{path} has 1000 bytes, but .*no fp32 weights"):
        load_model(int8_dir, device="cpu", quantize="int8")


def _nan_scales(w, b):
    scales = torch.full_like(w.q_per_channel_scales(), float("nan"))
    axis = w.q_per_channel_axis()
    return torch._make_per_channel_quantized_tensor(w.int_repr(), scales, w.q_per_channel_zero_points(), axis), b


@pytest.mark.parametrize(
    "packed, dtype, error",
    [
        (_nan_scales, None, r"NaN/Inf values"),
        (lambda w, b: (w, b.half()), None, r"bias \(208,\) float16 in file vs .* bias \(208,\) float32 from config"),
        (lambda w, b: (w, b), torch.float16, r"_packed_params.dtype: torch.float16 in file vs torch.qint8"),
        # malformed entries: refused by the shape check (the packing that started beside it is stopped)
        (
            lambda w, b: (w.dequantize(), b),
            None,
            r"weight \(208, 128\) float32, bias .* in file vs weight \(208, 128\) qint8",
        ),
        (lambda w, b: (w[:100], b[:100]), None, r"vocabulary has 100 tokens but the token list"),
        (lambda w, b: (w, b, b), None, r"decoder.output_layer._packed_params._packed_params: .* in file vs weight"),
    ],
    ids=["nan-scales", "fp16-bias", "fp16-dtype", "float-weight", "fewer-rows", "3-tuple"],
)
def test_saved_int8_with_bad_quantized_entries_is_refused_at_load(model_dir, tmp_path, packed, dtype, error):
    # entries torch would load and then fail on mid-decode (NaN scales), or reject with a bare RuntimeError /
    # NotImplementedError naming no file
    int8_dir = str(tmp_path / "int8")
    path = save_quantized(model_dir, int8_dir)
    state = torch.load(path, weights_only=True)
    key = "decoder.output_layer._packed_params"
    state[key + "._packed_params"] = packed(*state[key + "._packed_params"])
    if dtype is not None:
        state[key + ".dtype"] = dtype
    torch.save(state, path)
    sidecar = os.path.join(int8_dir, SIDECAR_NAME)
    info = json.load(open(sidecar, encoding="utf-8"))
    info["weights"]["size"] = os.path.getsize(path)
    json.dump(info, open(sidecar, "w", encoding="utf-8"))
    with pytest.raises(CheckpointError, match=error) as caught:
        load_model(int8_dir, device="cpu", quantize="int8")
    assert path in str(caught.value)


def test_failed_save_leaves_no_output(model_dir, tmp_path, monkeypatch):
    def broken(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_quantized(model_dir)
    assert sorted(os.listdir(model_dir)) == sorted(os.listdir(os.path.join(DEMO, "model")))  # no tmp file either
    out = tmp_path / "int8"
    with pytest.raises(OSError, match="disk full"):
        save_quantized(model_dir, str(out))
    assert QUANTIZED_NAME not in os.listdir(out) and SIDECAR_NAME not in os.listdir(out)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_save_interrupted_while_copying_leaves_no_sidecar(model_dir, tmp_path, monkeypatch):
    # the output dir holds an older save (possibly of another model); a new save dies after copying the
    # config but before model_quant.pt: the old sidecar must not vouch for the old weights next to the new files
    out = str(tmp_path / "int8")
    save_quantized(model_dir, out)
    copied = []

    def dying_copy(src, dst):
        if copied:
            raise KeyboardInterrupt
        copied.append(dst)
        shutil.copyfile(src, dst)

    monkeypatch.setattr(quantized_dir, "atomic_copy", dying_copy)
    with pytest.raises(KeyboardInterrupt):
        save_quantized(model_dir, out)
    assert copied and not os.path.exists(os.path.join(out, SIDECAR_NAME))
    with pytest.raises(CheckpointError, match=f"{SIDECAR_NAME}: missing"):
        load_model(out, device="cpu", quantize="int8")


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_checkpoint_naming_the_saved_int8_file_says_how_to_decode_it(model_dir, tmp_path, quantize, recwarn):
    int8_dir = str(tmp_path / "int8")
    save_quantized(model_dir)
    save_quantized(model_dir, int8_dir)
    for d in (model_dir, int8_dir):
        with pytest.raises(CheckpointError, match="names the int8 weights .* without --checkpoint"):
            load_model(d, device="cpu", quantize=quantize, checkpoint=QUANTIZED_NAME)
    assert not [w for w in recwarn if "deprecated" in str(w.message)]  # refused before torch reads it


def test_output_dir_with_other_fp32_weights_is_refused(model_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.pt").write_bytes(b"not these weights")
    with pytest.raises(ModelDirError, match="holds fp32 weights"):
        save_quantized(model_dir, str(other))
    assert sorted(os.listdir(other)) == ["model.pt"]


def test_output_dir_that_is_a_file_is_refused_before_loading(model_dir, tmp_path, monkeypatch):
    target = tmp_path / "int8"
    target.write_text("not a dir")

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("funasr_lite.decode.transcribe.Transcriber", no_load)
    with pytest.raises(ModelDirError, match=f"output dir {target}: exists and is not a directory"):
        save_quantized(model_dir, str(target))
    assert target.read_text() == "not a dir"


def test_cli(model_dir, tmp_path, capsys):
    out = str(tmp_path / "int8")
    assert main(["quantize", "--model_dir", model_dir, "--output_dir", out]) == 0
    assert f"{os.path.join(out, QUANTIZED_NAME)} (int8 of {model_dir}); decode with --quantize int8" in (
        capsys.readouterr().out
    )
    assert main(["quantize", "--model_dir", str(tmp_path / "missing")]) == 1
    assert "quantize: error: model dir" in capsys.readouterr().err


def test_modes_spelled_out_for_the_cli_match_the_library():
    from funasr_lite.cli.model_tools import QUANTIZE_MODES
    from funasr_lite.decode.options import QUANTIZE_MODES as LIBRARY

    assert QUANTIZE_MODES == LIBRARY
    assert quantized_dir.QUANTIZED_NAME == "model_quant.pt"


def test_legacy_layout(model_dir, tmp_path, caplog):
    """A 0.x dir (configuration.json's model.am_model_name names model.pb, tokens.txt): the save names model.pb
    as its source, and the int8-only copy keeps configuration.json, so it is read as 0.x too."""
    os.rename(os.path.join(model_dir, "model.pt"), os.path.join(model_dir, "model.pb"))
    with open(os.path.join(model_dir, "tokens.json"), encoding="utf-8") as f:
        tokens = json.load(f)
    os.unlink(os.path.join(model_dir, "tokens.json"))
    with open(os.path.join(model_dir, "tokens.txt"), "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in tokens)
    conf = {"model": {"am_model_name": "model.pb", "model_config": {"am_model_config": "config.yaml"}}}
    with open(os.path.join(model_dir, "configuration.json"), "w", encoding="utf-8") as f:
        json.dump(conf, f)
    int8_dir = str(tmp_path / "int8")
    save_quantized(model_dir)
    save_quantized(model_dir, int8_dir)
    with open(os.path.join(int8_dir, SIDECAR_NAME), encoding="utf-8") as f:
        assert json.load(f)["source"]["file"] == "model.pb"
    assert "tokens.txt" in os.listdir(int8_dir) and "model.pb" not in os.listdir(int8_dir)
    expected = _decode(Transcriber(detect_model_dir(model_dir), "cpu", quantize="int8", reuse_saved=False))
    caplog.set_level(logging.INFO)
    for path in (model_dir, int8_dir):
        asr = load_model(path, device="cpu", quantize="int8")
        assert asr.model_dir.layout == "0.x"
        assert _decode(asr) == expected
    assert "in memory" not in _messages(caplog)
