#!/usr/bin/env python3
"""Benchmark funasr-lite against FunASR's AutoModel on a paraformer-large-shaped model.

Usage:
    # SeACo (paraformer-zh) / Contextual Paraformer-large shapes with 50 hotwords, the same hotword file both sides
    python tools/bench_infer.py --model_kind seaco --num_hotwords 50
    python tools/bench_infer.py --model_kind contextual --num_hotwords 50
    # defaults: 60 utterances of 2-6 s, 2 threads, CPU, cache in /tmp/funasr_lite_bench
    python tools/bench_infer.py
    python tools/bench_infer.py --num_utts 60 --threads 2 --batch_size 16 \\
        --work_dir /tmp/funasr_lite_bench --json /tmp/funasr_lite_bench/bench_infer.json
    python tools/bench_infer.py --device cuda --batch_size 32          # GPU
    python tools/bench_infer.py --skip_funasr                          # funasr-lite only
    python tools/bench_infer.py --repeat 3        # each side 3 times, report each side's fastest run
    python tools/bench_infer.py --profile                              # + cProfile of each decode

What it does:

1. builds, once (cached in ``--work_dir``), a synthesized Mandarin data dir
   (espeak-ng, ``--num_utts`` utterances of 2-6 s) and a FunASR 1.x model dir
   shaped like paraformer-large: SANM encoder 50 x 512 (4 heads, FFN 2048,
   kernel 11), CIF predictor, SANM decoder 16 blocks, 8404 tokens, ~220 M
   parameters, random weights made non-degenerate (CIF fires about every third
   frame, the output layer is scaled so the argmax varies), dither 0;
   With ``--model_kind seaco`` or ``contextual`` the model dir is built from FunASR's own
   ``SeacoParaformer`` / ``ContextualParaformer`` class at the sizes of
   speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch /
   speech_paraformer-large-contextual_asr_nat-zh-cn-16k-common-vocab8404 (hotword paths
   scaled so that hotwords change outputs), with a character ``seg_dict``, and both sides
   decode with the same ``--num_hotwords`` hotwords (a .txt file, one per line:
   ``--hotword FILE`` for funasr-lite, ``generate(..., hotword=FILE)`` for FunASR);
2. runs funasr-lite's data-dir job (``funasr_lite.decode.infer.run_inference``, batches of
   ``--batch_size``) and FunASR's ``AutoModel.generate(input=wav.scp)`` (batch size 1:
   AutoModel forces it on CPU) each in its own fresh Python process with
   ``torch.set_num_threads(--threads)``, so import+load time and peak RSS
   (``ru_maxrss`` of that process) are measured separately; both children run with
   ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (FunASR's BiLSTM heads
   are many times slower with OpenMP's default spin-waiting on a busy machine);
3. prints a table (import+load s, decode wall s, RTF, peak RSS MiB, ratio
   lite/funasr) and whether every text is identical, and writes it all as JSON.

Exit status: 0 when the texts are identical (or --skip_funasr), 3 when they
differ, 1 when a child process failed (its log is in ``--work_dir/logs``).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, Optional, Sequence

import bench_common as bc  # a sibling in tools/ (no torch import at module level)

# ----------------------------------------------------------------------------- children


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _gpu_peak_mb(device: str) -> Optional[float]:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def _profiled(spec: Dict[str, Any], name: str, fn):
    """Run ``fn()``; with spec['profile'], under cProfile, dumping stats next to the logs."""
    if not spec.get("profile"):
        return fn()
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    out = prof.runcall(fn)
    base = os.path.join(spec["work_dir"], "logs", f"{name}.prof")
    prof.dump_stats(base)
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    with open(base + ".txt", "w", encoding="utf-8") as f:
        f.write(text.getvalue())
    return out


def child_lite(spec: Dict[str, Any]) -> Dict[str, Any]:
    """funasr-lite: load_model, then the data-dir job; texts from 1best_recog/text."""
    t0, c0 = time.perf_counter(), bc.cpu_seconds()
    import torch

    torch.set_num_threads(spec["threads"])
    from funasr_lite.decode.infer import run_inference
    from funasr_lite.decode.options import InferOptions
    from funasr_lite.decode.transcribe import load_model

    asr = load_model(spec["model_dir"], device=spec["device"], config_overrides={"batch_size": spec["batch_size"]})
    _sync(spec["device"])
    t1, c1 = time.perf_counter(), bc.cpu_seconds()
    rss_load = bc.peak_rss_mb()
    out_dir = os.path.join(spec["work_dir"], "out_lite")
    opts = InferOptions(
        model=spec["model_dir"],
        data_dir=spec["data_dir"],
        output_dir=out_dir,
        device=spec["device"],
        ncpu=spec["threads"],
        hotword=spec.get("hotword"),
    )
    result = _profiled(spec, "lite", lambda: run_inference(opts, asr=asr))
    _sync(spec["device"])
    t2, c2 = time.perf_counter(), bc.cpu_seconds()
    texts: Dict[str, str] = {}
    with open(os.path.join(result.result_dir, "text"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 1)
            texts[parts[0]] = parts[1] if len(parts) > 1 else ""
    return {
        "load_s": t1 - t0,
        "decode_s": t2 - t1,
        "load_cpu_s": c1 - c0,
        "decode_cpu_s": c2 - c1,
        "rss_after_load_mb": rss_load,
        "peak_rss_mb": bc.peak_rss_mb(),
        "gpu_peak_mb": _gpu_peak_mb(spec["device"]),
        "threads": torch.get_num_threads(),
        "failed": result.failed,
        "texts": texts,
    }


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
    _sync(spec["device"])
    t1, c1 = time.perf_counter(), bc.cpu_seconds()
    rss_load = bc.peak_rss_mb()
    scp = os.path.join(spec["data_dir"], "wav.scp")
    extra = {"hotword": spec["hotword"]} if spec.get("hotword") else {}
    res = _profiled(spec, "funasr", lambda: model.generate(input=scp, **extra))
    _sync(spec["device"])
    t2, c2 = time.perf_counter(), bc.cpu_seconds()
    return {
        "load_s": t1 - t0,
        "decode_s": t2 - t1,
        "load_cpu_s": c1 - c0,
        "decode_cpu_s": c2 - c1,
        "rss_after_load_mb": rss_load,
        "peak_rss_mb": bc.peak_rss_mb(),
        "gpu_peak_mb": _gpu_peak_mb(spec["device"]),
        "threads": torch.get_num_threads(),
        "failed": {},
        "texts": {r["key"]: r.get("text", "") for r in res},
    }


CHILDREN = {"lite": child_lite, "funasr": child_funasr}


def run_child(name: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one side in a fresh interpreter; returns its result dict (plus process wall time)."""
    logs = os.path.join(spec["work_dir"], "logs")
    os.makedirs(logs, exist_ok=True)
    spec_path = os.path.join(logs, f"{name}.spec.json")
    result_path = os.path.join(logs, f"{name}.result.json")
    log_path = os.path.join(logs, f"{name}.log")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    if os.path.exists(result_path):
        os.unlink(result_path)
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", name, "--_spec", spec_path, "--_result", result_path]
    busy0, own0 = bc.system_busy_seconds(), bc.children_cpu_seconds()
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False, cwd=bc.ROOT, env=child_env())
    wall = time.perf_counter() - start
    busy1, own1 = bc.system_busy_seconds(), bc.children_cpu_seconds()
    if proc.returncode != 0 or not os.path.exists(result_path):
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{name} child failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    with open(result_path, encoding="utf-8") as f:
        result = json.load(f)
    result["process_s"] = wall
    # CPU time other processes used while this child ran: > 0 means the timings are not clean
    result["other_cpu_s"] = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0))
    return result


def child_env() -> Dict[str, str]:
    """The children's environment: ours, with OMP_WAIT_POLICY=PASSIVE unless it is set."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def child_main(name: str, spec_path: str, result_path: str) -> int:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    result = CHILDREN[name](spec)
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    return 0


# ----------------------------------------------------------------------------- parent


def warm_page_cache(path: str) -> None:
    """Read a file once so the first child does not pay the disk read alone."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def compare_texts(a: Dict[str, str], b: Dict[str, str]) -> Dict[str, Any]:
    keys = sorted(set(a) | set(b))
    diff = [k for k in keys if a.get(k) != b.get(k)]
    return {
        "identical": not diff,
        "num_compared": len(keys),
        "num_different": len(diff),
        "examples": [{"key": k, "lite": a.get(k), "funasr": b.get(k)} for k in diff[:5]],
    }


def _fmt(v: Optional[float], digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def report(results: Dict[str, Dict[str, Any]], audio_s: float) -> str:
    metrics = [
        ("import+load (s)", "load_s", 2),
        ("decode wall (s)", "decode_s", 2),
        ("RTF", "rtf", 4),
        ("decode CPU (s)", "decode_cpu_s", 1),
        ("peak RSS (MiB)", "peak_rss_mb", 0),
        ("RSS after load (MiB)", "rss_after_load_mb", 0),
    ]
    if any(r.get("gpu_peak_mb") is not None for r in results.values()):
        metrics.append(("GPU peak alloc (MiB)", "gpu_peak_mb", 0))
    lite, fun = results.get("lite", {}), results.get("funasr", {})
    rows = [("", "funasr-lite", "funasr", "lite/funasr")]
    for label, key, digits in metrics:
        a, b = lite.get(key), fun.get(key)
        rows.append((label, _fmt(a, digits), _fmt(b, digits), _fmt(bc.ratio(a, b), 3)))
    return bc.format_table(rows)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--num_utts", type=int, default=60, help="utterances in the synthesized data dir")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for both sides")
    p.add_argument("--batch_size", type=int, default=16, help="funasr-lite's utterances per batch")
    p.add_argument(
        "--funasr_batch_size", type=int, default=1, help="AutoModel's batch_size (it forces 1 on CPU anyway)"
    )
    p.add_argument(
        "--model_kind",
        default="paraformer",
        choices=["paraformer", *bc.HOTWORD_KINDS],
        help="paraformer: Paraformer-large; seaco: SeacoParaformer (paraformer-zh); contextual: ContextualParaformer",
    )
    p.add_argument("--num_hotwords", type=int, default=50, help="hotwords given to both sides (seaco/contextual only)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both sides)")
    p.add_argument("--work_dir", default="/tmp/funasr_lite_bench", help="cache for the model/data dirs, logs, outputs")
    p.add_argument("--json", default=None, help="result JSON (default WORK_DIR/bench_infer.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the corpus")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each side this many times (alternating) and report each side's fastest run",
    )
    p.add_argument("--skip_funasr", action="store_true", help="run funasr-lite only")
    p.add_argument(
        "--profile",
        action="store_true",
        help="cProfile each decode; stats in WORK_DIR/logs/{lite,funasr}.prof[.txt]. Profiling slows "
        "FunASR's many small calls more than ours: compare timings of unprofiled runs only",
    )
    p.add_argument("--_child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--_spec", help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args._child:
        return child_main(args._child, args._spec, args._result)
    if min(args.num_utts, args.threads, args.batch_size, args.funasr_batch_size, args.repeat, args.num_hotwords) < 1:
        print(
            "bench_infer.py: error: --num_utts, --threads, --batch_size, --funasr_batch_size, --repeat and "
            "--num_hotwords must be >= 1",
            file=sys.stderr,
        )
        return 1
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    t = time.perf_counter()
    data_dir = os.path.join(work, f"data_{args.num_utts}_s{args.seed}")
    try:
        durations = bc.ensure_data_dir(data_dir, args.num_utts, seed=args.seed)
        audio_s = sum(durations.values())
        print(
            f"data dir: {data_dir}: {len(durations)} utterances, {audio_s:.1f} s of audio "
            f"({min(durations.values()):.1f}-{max(durations.values()):.1f} s)",
            flush=True,
        )
        hotword_file = None
        if args.model_kind == "paraformer":
            model_dir, params = bc.build_model_dir(
                os.path.join(work, f"model_large_s{args.seed}"), data_dir, seed=args.seed
            )
        else:
            model_dir, params = bc.build_hotword_model_dir(
                os.path.join(work, f"model_{args.model_kind}_s{args.seed}"), data_dir, args.model_kind, seed=args.seed
            )
            hotword_file = os.path.join(work, f"hotwords_{args.num_hotwords}_s{args.seed}.txt")
            with open(hotword_file, "w", encoding="utf-8") as f:
                f.writelines(w + "\n" for w in bc.make_hotwords(args.num_hotwords, args.seed))
    except (OSError, RuntimeError) as e:
        print(f"bench_infer.py: error: cannot prepare the benchmark in {work}: {e}", file=sys.stderr)
        return 1
    print(
        f"model dir: {model_dir}: {params / 1e6:.1f} M parameters (ready in {time.perf_counter() - t:.0f} s)",
        flush=True,
    )
    warm_page_cache(os.path.join(model_dir, "model.pt"))
    spec = {
        "model_dir": model_dir,
        "data_dir": data_dir,
        "work_dir": work,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "funasr_batch_size": args.funasr_batch_size,
        "device": args.device,
        "profile": args.profile,
        "hotword": hotword_file,
    }
    sides = ["lite"] + ([] if args.skip_funasr else ["funasr"])
    runs: Dict[str, list] = {name: [] for name in sides}
    for rep in range(args.repeat):
        for name in sides:
            print(f"running {name}{f' (repeat {rep + 1}/{args.repeat})' if args.repeat > 1 else ''} ...", flush=True)
            try:
                r = run_child(name, spec)
            except RuntimeError as e:
                print(f"bench_infer.py: error: {e}", file=sys.stderr)
                return 1
            r["rtf"] = r["decode_s"] / audio_s
            runs[name].append(r)
            other = r["other_cpu_s"]
            print(
                f"  {name}: load {r['load_s']:.1f} s, decode {r['decode_s']:.1f} s, process {r['process_s']:.1f} s; "
                f"other processes used {'?' if other is None else f'{other:.1f}'} CPU s meanwhile",
                flush=True,
            )
            if other is not None and other > 0.1 * r["process_s"]:
                print(
                    f"  warning: other processes competed for the CPUs during the {name} run "
                    f"({other / r['process_s']:.2f} CPUs on average): its timings are not clean",
                    flush=True,
                )
    # per side, the run with the least wall time (load + decode): the least disturbed one
    results = {name: min(rs, key=lambda r: r["load_s"] + r["decode_s"]) for name, rs in runs.items()}
    print(
        f"\n{len(durations)} utterances, {audio_s:.1f} s audio, device {args.device}, {args.threads} threads, "
        f"funasr-lite batch_size {args.batch_size}, funasr batch_size "
        f"{1 if args.device == 'cpu' else args.funasr_batch_size}{' (cProfile on)' if args.profile else ''}"
    )
    print(
        f"model: {args.model_kind}, {params / 1e6:.1f} M parameters"
        + (f", {args.num_hotwords} hotwords ({hotword_file})" if hotword_file else "")
        + f"; OMP_WAIT_POLICY={child_env()['OMP_WAIT_POLICY']} both sides; load average before: "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print(report(results, audio_s))
    noisy = [n for n, r in results.items() if r["other_cpu_s"] is not None and r["other_cpu_s"] > 0.1 * r["process_s"]]
    print(
        "timings clean: "
        + (
            "yes (no other process competed for the CPUs)"
            if not noisy
            else f"NO: other processes competed during {', '.join(noisy)} (try --repeat 3)"
        )
    )
    texts = results["lite"]["texts"]
    nonempty = sum(1 for v in texts.values() if v)
    print(
        f"funasr-lite texts: {nonempty}/{len(texts)} non-empty, {len(set(texts.values()))} distinct, "
        f"{len(results['lite']['failed'])} failed"
    )
    cmp: Optional[Dict[str, Any]] = None
    if "funasr" in results:
        cmp = compare_texts(texts, results["funasr"]["texts"])
        print(
            f"texts identical: {'yes' if cmp['identical'] else 'NO'} "
            f"({cmp['num_compared'] - cmp['num_different']}/{cmp['num_compared']} equal)"
        )
        for ex in cmp["examples"]:
            print(f"  {ex['key']}: lite={ex['lite']!r} funasr={ex['funasr']!r}")
    out = {
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "audio_seconds": audio_s,
        "num_utts": len(durations),
        "params": params,
        "model_dir": model_dir,
        "data_dir": data_dir,
        "results": {n: {k: v for k, v in r.items() if k != "texts"} for n, r in results.items()},
        "all_runs": {
            n: [{k: v for k, v in r.items() if k not in ("texts", "failed")} for r in rs] for n, rs in runs.items()
        },
        "ratios": {
            k: bc.ratio(results.get("lite", {}).get(k), results.get("funasr", {}).get(k))
            for k in ("load_s", "decode_s", "rtf", "peak_rss_mb")
        },
        "timings_clean": not noisy,
        "load_average_at_end": os.getloadavg(),
        "hotword_file": hotword_file,
        "texts_compare": cmp,
    }
    json_path = args.json or os.path.join(work, "bench_infer.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(f"JSON: {json_path}")
    return 0 if cmp is None or cmp["identical"] else 3


if __name__ == "__main__":
    sys.exit(main())
