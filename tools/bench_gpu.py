#!/usr/bin/env python3
"""GPU decoding throughput and peak GPU memory: funasr-lite at --dtype bf16/fp32 vs FunASR's AutoModel.

Usage (needs CUDA; without it the script stops at once with a message saying so):
    python tools/bench_gpu.py                                  # 400 utts, lite bf16+fp32, FunASR batch 1..64
    python tools/bench_gpu.py --num_utts 400 --dtypes bf16,fp16,fp32 --batch_size 256 --batch_seconds 600 \\
        --funasr_batch_sizes 1,8,32,64,128 --device cuda:0 --work_dir /tmp/funasr_lite_bench --json /tmp/gpu.json

What it does:

1. builds (cached in ``--work_dir``, shared with tools/bench_infer.py) the synthesized Mandarin data dir
   (espeak-ng, 2-6 s utterances) and the paraformer-large-shaped random model dir (~220 M parameters);
2. runs each configuration in its own fresh Python process on the same GPU:
   * ``lite-<dtype>``: ``funasr_lite.load_model(dir, dtype=...)`` with ``batch_size`` / ``batch_seconds``
     (length-sorted batches bounded by both), then the data-dir job (``run_inference``);
   * ``funasr-b<N>``: ``AutoModel(model=dir).generate(input=wav.scp, batch_size=N)`` for each N of
     ``--funasr_batch_sizes`` (without a VAD model AutoModel batches by utterance count; ``batch_size_s``
     applies only with a VAD), so FunASR is compared at its best setting;
   each side first decodes ``--warmup`` utterances (CUDA context, kernel selection), then the peak-memory counter
   is reset and the whole data dir is decoded and timed (``torch.cuda.synchronize`` around it);
3. prints a table: audio seconds per second, decode wall seconds, peak GPU memory allocated (MiB), how many texts
   equal funasr-lite fp32's, and the ratio of each lite run's throughput to FunASR's best; ``--json`` writes it.

Exit status: 0, or 1 when CUDA is missing or a child failed (its log is in ``--work_dir/gpu_logs``).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import bench_common as bc  # a sibling in tools/ (no torch import at module level)


def _warmup_wavs(spec: Dict[str, Any]) -> List[str]:
    with open(os.path.join(spec["data_dir"], "wav.scp"), encoding="utf-8") as f:
        paths = [line.split(maxsplit=1)[1].strip() for line in f if line.strip()][: spec["warmup"]]
    return [p if os.path.isabs(p) else os.path.join(spec["data_dir"], p) for p in paths]


def child_lite(spec: Dict[str, Any]) -> Dict[str, Any]:
    """funasr-lite at spec['dtype']: warm up, then the data-dir job over the whole data dir."""
    import torch

    from funasr_lite.decode.infer import run_inference
    from funasr_lite.decode.options import InferOptions
    from funasr_lite.decode.transcribe import load_model

    overrides = {"batch_size": spec["batch_size"], "batch_seconds": spec["batch_seconds"]}
    asr = load_model(spec["model_dir"], device=spec["device"], dtype=spec["dtype"], config_overrides=overrides)
    asr.transcribe(_warmup_wavs(spec))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    out_dir = os.path.join(spec["work_dir"], f"gpu_out_{spec['name']}")
    opts = InferOptions(
        model=spec["model_dir"],
        data_dir=spec["data_dir"],
        output_dir=out_dir,
        device=spec["device"],
        dtype=spec["dtype"],
    )
    t0 = time.perf_counter()
    result = run_inference(opts, asr=asr)
    torch.cuda.synchronize()
    decode_s = time.perf_counter() - t0
    return {
        "decode_s": decode_s,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20,
        "failed": len(result.failed),
        "texts": bc.read_kv(os.path.join(result.result_dir, "text")),
    }


def child_funasr(spec: Dict[str, Any]) -> Dict[str, Any]:
    """FunASR AutoModel at batch_size spec['funasr_batch_size'] (fp32): warm up, then generate(wav.scp)."""
    import torch
    from funasr import AutoModel

    model = AutoModel(
        model=spec["model_dir"],
        disable_update=True,
        device=spec["device"],
        disable_pbar=True,
        batch_size=spec["funasr_batch_size"],
        log_level="ERROR",
    )
    model.generate(input=_warmup_wavs(spec))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = model.generate(input=os.path.join(spec["data_dir"], "wav.scp"))
    torch.cuda.synchronize()
    decode_s = time.perf_counter() - t0
    return {
        "decode_s": decode_s,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20,
        "failed": 0,
        "texts": {r["key"]: r.get("text", "") for r in res},
    }


def run_child(spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    logs = os.path.join(spec["work_dir"], "gpu_logs")
    os.makedirs(logs, exist_ok=True)
    base = os.path.join(logs, spec["name"])
    with open(base + ".spec.json", "w", encoding="utf-8") as f:
        json.dump(spec, f)
    if os.path.exists(base + ".result.json"):
        os.unlink(base + ".result.json")
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", base]
    with open(base + ".log", "w", encoding="utf-8") as log:
        env = dict(os.environ, PYTHONPATH=bc.ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=bc.ROOT, env=env)
    if rc != 0 or not os.path.exists(base + ".result.json"):
        print(f"bench_gpu.py: {spec['name']} failed (exit {rc}); see {base}.log", file=sys.stderr)
        return None
    with open(base + ".result.json", encoding="utf-8") as f:
        return json.load(f)


def child_main(base: str) -> int:
    with open(base + ".spec.json", encoding="utf-8") as f:
        spec = json.load(f)
    res = (child_lite if spec["side"] == "lite" else child_funasr)(spec)
    with open(base + ".result.json", "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=False)
    return 0


def cuda_problem(device: str) -> Optional[str]:
    """Why ``device`` cannot be benchmarked here (None when it can)."""
    import torch

    if not device.startswith("cuda"):
        return f"--device {device!r}: this benchmark measures a GPU; use cuda or cuda:N (tools/bench_infer.py is the CPU one)"
    if not torch.cuda.is_available():
        return "CUDA is not available on this machine (no GPU or no CUDA build of torch): nothing to measure"
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return f"--device {device}: there is no GPU {index} ({torch.cuda.device_count()} visible)"
    return None


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda", help="cuda or cuda:N")
    p.add_argument("--num_utts", type=int, default=400, help="utterances in the synthesized data dir (2-6 s each)")
    p.add_argument("--dtypes", default="bf16,fp32", help="funasr-lite --dtype values to run (comma-separated)")
    p.add_argument("--batch_size", type=int, default=256, help="funasr-lite's max utterances per batch")
    p.add_argument("--batch_seconds", type=float, default=600.0, help="funasr-lite's max audio seconds per batch")
    p.add_argument("--funasr_batch_sizes", default="1,8,32,64", help="AutoModel batch sizes to try (its best counts)")
    p.add_argument("--warmup", type=int, default=8, help="utterances decoded before timing")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the corpus")
    p.add_argument("--skip_funasr", action="store_true", help="funasr-lite only")
    p.add_argument("--work_dir", default="/tmp/funasr_lite_bench", help="cache for the model/data dirs, logs, outputs")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args._child:
        return child_main(args._child)
    problem = cuda_problem(args.device)
    if problem:
        print(f"bench_gpu.py: error: {problem}", file=sys.stderr)
        return 1
    work = os.path.abspath(args.work_dir)
    data_dir = os.path.join(work, f"data_{args.num_utts}_s{args.seed}")
    durations = bc.ensure_data_dir(data_dir, args.num_utts, seed=args.seed)
    audio_s = sum(durations.values())
    model_dir, params = bc.build_model_dir(os.path.join(work, f"model_large_s{args.seed}"), data_dir, seed=args.seed)
    common = {"model_dir": model_dir, "data_dir": data_dir, "work_dir": work, "device": args.device}
    common["warmup"] = args.warmup
    specs = [
        dict(
            common, side="lite", name=f"lite-{d}", dtype=d, batch_size=args.batch_size, batch_seconds=args.batch_seconds
        )
        for d in args.dtypes.split(",")
    ]
    if not args.skip_funasr:
        specs += [
            dict(common, side="funasr", name=f"funasr-b{n}", funasr_batch_size=int(n))
            for n in args.funasr_batch_sizes.split(",")
        ]
    results: Dict[str, Dict[str, Any]] = {}
    for spec in specs:
        print(f"running {spec['name']} ...", flush=True)
        r = run_child(spec)
        if r is not None:
            r["throughput"] = audio_s / r["decode_s"]
            results[spec["name"]] = r
    ref = (results.get("lite-fp32") or {}).get("texts")
    funasr = [r for n, r in results.items() if n.startswith("funasr")]
    best = max((r["throughput"] for r in funasr), default=None)
    rows = [("run", "audio-s/s", "decode s", "GPU peak MiB", "= lite fp32 text", "x FunASR best")]
    for name, r in results.items():
        same = "-" if ref is None else f"{sum(ref.get(k) == v for k, v in r['texts'].items())}/{len(ref)}"
        rows.append(
            (
                name,
                f"{r['throughput']:.1f}",
                f"{r['decode_s']:.2f}",
                f"{r['gpu_peak_mb']:.0f}",
                same,
                "-" if best is None or name.startswith("funasr") else f"{r['throughput'] / best:.2f}",
            )
        )
    print(f"\n{len(durations)} utterances, {audio_s:.1f} s audio, {params / 1e6:.0f} M params, {args.device}")
    print(bc.format_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            out = {n: {k: v for k, v in r.items() if k != "texts"} for n, r in results.items()}
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "_child"}, "results": out}, f, indent=1)
    return 0 if len(results) == len(specs) else 1


if __name__ == "__main__":
    sys.exit(main())
