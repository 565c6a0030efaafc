"""The measured sides of ``tools/bench_infer.py``, each run in its own fresh interpreter.

A helper module, not a command. Each ``child_*`` function gets the benchmark spec (model dir, data dir,
threads, ...), starts its import+load clock before its first heavy import, decodes every utterance of the
data dir and returns timings, peak RSS and the texts. Nothing here imports torch at module level.
"""

import os
import time
from typing import Any, Callable, Dict

import bench_common as bc  # a sibling in tools/

__all__ = ["CHILDREN"]


def _timed_decode(spec: Dict[str, Any], t0: float, c0: float, decode: Callable[[], Dict[str, str]], profile=None):
    """Common tail of a child: time ``decode()`` (which returns key -> text) after the load phase."""
    t1, c1 = time.perf_counter(), bc.cpu_seconds()
    rss_load = bc.peak_rss_mb()
    decode_only = bc.reset_peak_rss()  # from here VmHWM is the peak while decoding
    texts = decode()
    bc.sync(spec["device"])
    t2, c2 = time.perf_counter(), bc.cpu_seconds()
    out = {
        "load_s": t1 - t0,
        "decode_s": t2 - t1,
        "load_cpu_s": c1 - c0,
        "decode_cpu_s": c2 - c1,
        "rss_after_load_mb": rss_load,
        "peak_rss_mb": max(rss_load, bc.peak_rss_mb()),
        "decode_peak_rss_mb": bc.peak_rss_mb() if decode_only else None,
        "gpu_peak_mb": bc.gpu_peak_mb(spec["device"]) if spec["device"] != "cpu" else None,
        "failed": {},
        "texts": texts,
    }
    if profile is not None:
        from bench_profile import gemm_peak_gflops

        out["profile"] = profile.as_dict(t2 - t1, gemm_peak_gflops(spec["threads"]))
    return out


def child_lite(spec: Dict[str, Any]) -> Dict[str, Any]:
    """funasr-lite: load_model, then the data-dir job; texts from 1best_recog/text."""
    t0, c0 = time.perf_counter(), bc.cpu_seconds()
    import torch

    torch.set_num_threads(spec["threads"])
    from funasr_lite.decode.infer import run_inference
    from funasr_lite.decode.options import InferOptions
    from funasr_lite.decode.transcribe import load_model

    quantize = spec.get("quantize")
    asr = load_model(
        spec["model_dir"],
        device=spec["device"],
        config_overrides={"batch_size": spec["batch_size"]},
        **({"quantize": quantize} if quantize else {}),
    )
    bc.sync(spec["device"])
    profile = None
    if spec.get("profile"):
        import funasr_lite.decode.infer as infer_mod
        import funasr_lite.decode.transcribe as transcribe_mod
        from bench_profile import StageProfile

        profile = StageProfile()
        profile.wrap_module("frontend", asr.frontend)
        for stage in ("encoder", "predictor", "decoder"):
            profile.wrap_module(stage, getattr(asr.model, stage))
        profile.wrap_function("search", transcribe_mod, "decode_batch_nbest")
        profile.wrap_function("audio", infer_mod, "load_audio")
    out_dir = os.path.join(spec["work_dir"], f"out_{spec['side']}")
    opts = InferOptions(
        model=spec["model_dir"],
        data_dir=spec["data_dir"],
        output_dir=out_dir,
        device=spec["device"],
        ncpu=spec["threads"],
        hotword=spec.get("hotword"),
    )
    failed: Dict[str, str] = {}

    def decode() -> Dict[str, str]:
        result = run_inference(opts, asr=asr)
        failed.update(result.failed)
        return bc.read_kv(os.path.join(result.result_dir, "text"))

    out = _timed_decode(spec, t0, c0, decode, profile)
    out.update(failed=failed, threads=torch.get_num_threads())
    return out


def child_funasr(spec: Dict[str, Any]) -> Dict[str, Any]:
    """FunASR: AutoModel(model=DIR), then generate(input=wav.scp)."""
    t0, c0 = time.perf_counter(), bc.cpu_seconds()
    import torch

    torch.set_num_threads(spec["threads"])
    from funasr import AutoModel

    model = AutoModel(
        model=spec["model_dir"],
        disable_update=True,
        device=spec["device"],
        disable_pbar=True,
        ncpu=spec["threads"],
        batch_size=spec["funasr_batch_size"],
        log_level="ERROR",
    )
    bc.sync(spec["device"])
    profile = None
    if spec.get("profile"):
        from bench_profile import StageProfile

        profile = StageProfile()
        profile.wrap_module("frontend", model.kwargs["frontend"])
        for stage in ("encoder", "predictor", "decoder"):
            profile.wrap_module(stage, getattr(model.model, stage))
    scp = bc.write_absolute_scp(spec["data_dir"], os.path.join(spec["work_dir"], "logs", "funasr.wav.scp"))

    def decode() -> Dict[str, str]:
        extra = {"hotword": spec["hotword"]} if spec.get("hotword") else {}
        return {r["key"]: r.get("text", "") for r in model.generate(input=scp, **extra)}

    out = _timed_decode(spec, t0, c0, decode, profile)
    out["threads"] = torch.get_num_threads()
    return out


def onnx_dir(spec: Dict[str, Any]) -> str:
    """Where FunASR's ONNX export of the benchmark model goes: a dir of links to the model's files."""
    return os.path.join(spec["work_dir"], "onnx_" + os.path.basename(os.path.normpath(spec["model_dir"])))


def child_export(spec: Dict[str, Any]) -> Dict[str, Any]:
    """FunASR's own exporter: ``AutoModel(model=DIR).export(type="onnx", quantize=False/True)``, which writes
    ``model.onnx`` and ``model_quant.onnx`` (onnxruntime's dynamic int8 quantization) into the dir."""
    out = onnx_dir(spec)
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(spec["model_dir"]):
        link = os.path.join(out, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(spec["model_dir"], name), link)
    t0 = time.perf_counter()
    import functools

    import torch
    from funasr import AutoModel

    # FunASR 1.4.16 calls torch.onnx.export without ``dynamo``; torch >= 2.9 then uses the torch.export-based
    # exporter, which fails on Paraformer's data-dependent shapes. FunASR's export was written for the
    # TorchScript exporter, so that is what it gets here (its graph, names and quantization are unchanged).
    torch.onnx.export = functools.partial(torch.onnx.export, dynamo=False)

    model = AutoModel(model=out, disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR")
    for quantize, name in ((False, "model.onnx"), (True, "model_quant.onnx")):
        if not os.path.exists(os.path.join(out, name)):
            model.export(type="onnx", quantize=quantize)
    return {"export_s": time.perf_counter() - t0, "onnx_dir": out, "texts": {}}


def child_onnx(spec: Dict[str, Any]) -> Dict[str, Any]:
    """funasr-onnx's Paraformer (onnxruntime) on FunASR's export; ``quantize`` picks model_quant.onnx."""
    t0, c0 = time.perf_counter(), bc.cpu_seconds()
    from funasr_onnx import Paraformer

    model = Paraformer(
        onnx_dir(spec),
        batch_size=spec["funasr_batch_size"],
        quantize=bool(spec.get("quantize")),
        intra_op_num_threads=spec["threads"],
    )
    scp = bc.read_scp(spec["data_dir"])

    def decode() -> Dict[str, str]:
        import soundfile as sf

        keys = sorted(scp)
        # one call, which decodes in batches of its batch_size; a list it takes as paths, and its reader would
        # convert any non-.wav file through pydub, so it is handed the arrays as its reader's result
        model.load_data = lambda wavs, fs=None: wavs
        results = model([sf.read(scp[key], dtype="float32")[0] for key in keys])
        return {
            key: res["preds"] if isinstance(res["preds"], str) else "".join(res["preds"][0])
            for key, res in zip(keys, results, strict=True)
        }

    out = _timed_decode(spec, t0, c0, decode)
    out["threads"] = spec["threads"]
    return out


def child_sherpa(spec: Dict[str, Any]) -> Dict[str, Any]:
    """sherpa-onnx's offline Paraformer recognizer on FunASR's export (it needs sherpa's model metadata)."""
    t0, c0 = time.perf_counter(), bc.cpu_seconds()
    import json

    import sherpa_onnx
    import soundfile as sf

    d = onnx_dir(spec)
    tokens = os.path.join(spec["work_dir"], "sherpa_tokens.txt")
    with open(os.path.join(d, "tokens.json"), encoding="utf-8") as f:
        token_list = json.load(f)
    with open(tokens, "w", encoding="utf-8") as f:
        f.writelines(f"{t} {i}\n" for i, t in enumerate(token_list))
    recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(
        paraformer=os.path.join(d, "model_quant.onnx" if spec.get("quantize") else "model.onnx"),
        tokens=tokens,
        num_threads=spec["threads"],
        sample_rate=16000,
        feature_dim=80,
        decoding_method="greedy_search",
    )
    scp = bc.read_scp(spec["data_dir"])

    def decode() -> Dict[str, str]:
        texts = {}
        for key in sorted(scp):
            audio, rate = sf.read(scp[key], dtype="float32")
            stream = recognizer.create_stream()
            stream.accept_waveform(rate, audio)
            recognizer.decode_stream(stream)
            texts[key] = stream.result.text
        return texts

    out = _timed_decode(spec, t0, c0, decode)
    out["threads"] = spec["threads"]
    return out


def int8_dir(spec: Dict[str, Any]) -> str:
    """Where ``funasr-lite quantize --output_dir`` writes the benchmark model's int8 model dir."""
    return os.path.join(spec["work_dir"], "int8_" + os.path.basename(os.path.normpath(spec["model_dir"])))


def child_quantize(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The setup of ``lite_int8_saved`` (untimed): ``save_quantized(model_dir, int8_dir)``, a complete model
    dir holding ``model_quant.pt`` instead of the fp32 weights."""
    t0 = time.perf_counter()
    from funasr_lite.decode.quantized_dir import save_quantized

    path = save_quantized(spec["model_dir"], int8_dir(spec))
    return {"quantize_s": time.perf_counter() - t0, "int8_dir": os.path.dirname(path), "texts": {}}


CHILDREN: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {
    "lite": child_lite,
    "lite_int8": lambda spec: child_lite(dict(spec, quantize="int8")),
    "quantize": child_quantize,
    "lite_int8_saved": lambda spec: child_lite(dict(spec, quantize="int8", model_dir=int8_dir(spec))),
    "funasr": child_funasr,
    "export": child_export,
    "onnx": child_onnx,
    "onnx_int8": lambda spec: child_onnx(dict(spec, quantize="int8")),
    "sherpa": child_sherpa,
    "sherpa_int8": lambda spec: child_sherpa(dict(spec, quantize="int8")),
}
