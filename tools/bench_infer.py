#!/usr/bin/env python3
"""Benchmark funasr-lite against FunASR's AutoModel on a paraformer-large-shaped model.

Usage:
    # SeACo (paraformer-zh) / Contextual Paraformer-large shapes with 50 hotwords, the same hotword file both sides
    python tools/bench_infer.py --model_kind seaco --num_hotwords 50 --repeat 2
    python tools/bench_infer.py --model_kind contextual --num_hotwords 50 --repeat 2
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
   scaled so that hotwords change outputs), with a character ``seg_dict``, and the lite and
   funasr sides (the only ones run for these kinds) decode with the same ``--num_hotwords``
   hotwords (a .txt file, one per line: ``--hotword FILE`` for funasr-lite,
   ``generate(..., hotword=FILE)`` for FunASR);
2. runs funasr-lite's data-dir job (``funasr_lite.decode.infer.run_inference``, batches of
   ``--batch_size``) and FunASR's ``AutoModel.generate(input=wav.scp)`` (``--funasr_batch_size``,
   default 1: AutoModel's batched decode is not padding-invariant, so only batch 1 gives texts to compare) each in its own fresh Python process with
   ``torch.set_num_threads(--threads)``, so import+load time and peak RSS
   (``ru_maxrss`` of that process) are measured separately;
3. prints a table (import+load s, decode wall s, RTF, peak RSS MiB, ratio
   lite/funasr) and whether every text is identical, and writes it all as JSON.

Exit status: 0 when the texts are identical (or --skip_funasr), 3 when they
differ, 1 when a child process failed (its log is in ``--work_dir/logs``).
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import bench_common as bc  # siblings in tools/ (no torch import at module level)
from bench_profile import format_profile
from bench_sides import CHILDREN

# ----------------------------------------------------------------------------- children


def run_child(name: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one side in a fresh interpreter; returns its result dict (plus process wall time)."""
    return bc.run_child(__file__, name, spec, child_env())


def child_env() -> Dict[str, str]:
    """The children's environment: ours, with OMP_WAIT_POLICY=PASSIVE unless it is set (FunASR's BiLSTM heads
    are many times slower with OpenMP's default spin-waiting on a busy machine)."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


# ----------------------------------------------------------------------------- parent


def warm_page_cache(path: str) -> None:
    """Read a file once so the first child does not pay the disk read alone."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def compare_texts(a: Dict[str, str], b: Dict[str, str]) -> Dict[str, Any]:
    """How many of the keys of ``a`` and ``b`` have the same text, with up to 5 differing examples."""
    keys = sorted(set(a) | set(b))
    diff = [k for k in keys if a.get(k) != b.get(k)]
    return {
        "identical": not diff,
        "num_compared": len(keys),
        "num_different": len(diff),
        "examples": [{"key": k, "a": a.get(k), "b": b.get(k)} for k in diff[:5]],
    }


def _fmt(v: Optional[float], digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def report(results: Dict[str, Dict[str, Any]], refs: Optional[Dict[str, str]]) -> str:
    """One column per side; ratios against FunASR torch (``funasr``) when it ran."""
    metrics = [
        ("import+load (s)", "load_s", 2),
        ("decode wall (s)", "decode_s", 2),
        ("RTF", "rtf", 4),
        ("decode CPU (s)", "decode_cpu_s", 1),
        ("peak RSS (MiB)", "peak_rss_mb", 0),
        ("peak RSS decoding (MiB)", "decode_peak_rss_mb", 0),
        ("RSS after load (MiB)", "rss_after_load_mb", 0),
    ]
    if any(r.get("gpu_peak_mb") is not None for r in results.values()):
        metrics.append(("GPU peak alloc (MiB)", "gpu_peak_mb", 0))
    names = list(results)
    base = results.get("funasr")
    rows = [("",) + tuple(LABELS.get(n, n) for n in names)]
    for label, key, digits in metrics:
        rows.append((label,) + tuple(_fmt(results[n].get(key), digits) for n in names))
        if base is not None and key in ("load_s", "decode_s", "peak_rss_mb", "decode_peak_rss_mb"):
            rows.append(("  / funasr",) + tuple(_fmt(bc.ratio(results[n].get(key), base.get(key)), 3) for n in names))
    if base is not None:
        rows.append(
            ("same text as funasr",)
            + tuple(
                f"{c['num_compared'] - c['num_different']}/{c['num_compared']}"
                for c in (compare_texts(results[n]["texts"], base["texts"]) for n in names)
            )
        )
    if "lite" in results:
        rows.append(
            ("same text as lite fp32",)
            + tuple(
                f"{c['num_compared'] - c['num_different']}/{c['num_compared']}"
                for c in (compare_texts(results[n]["texts"], results["lite"]["texts"]) for n in names)
            )
        )
    if refs:
        rows.append(("CER vs reference (%)",) + tuple(_fmt(cer_percent(refs, results[n]["texts"]), 2) for n in names))
    rows.append(("other CPU s meanwhile",) + tuple(_fmt(results[n].get("other_cpu_s"), 1) for n in names))
    rows.append(
        ("load avg before/after",)
        + tuple(f"{results[n]['loadavg_before']:.2f}/{results[n]['loadavg_after']:.2f}" for n in names)
    )
    return bc.format_table(rows)


# the column names of the table
LABELS = {
    "lite": "lite fp32",
    "lite_int8": "lite int8",
    "lite_int8_saved": "lite int8 saved",
    "funasr": "funasr torch",
    "onnx": "funasr-onnx fp32",
    "onnx_int8": "funasr-onnx int8",
    "sherpa": "sherpa-onnx fp32",
    "sherpa_int8": "sherpa-onnx int8",
}
DEFAULT_SIDES = ("lite", "lite_int8", "lite_int8_saved", "funasr", "onnx", "onnx_int8", "sherpa", "sherpa_int8")


def cer_percent(refs: Dict[str, str], hyps: Dict[str, str]) -> Optional[float]:
    """The project's CER (%) of ``hyps`` against ``refs`` (``funasr_lite.decode.cer``, as text.cer scores it)."""
    from funasr_lite.decode.cer import score_corpus

    report = score_corpus(refs, hyps)
    return 100.0 * report.wrong / report.nwords if report.nwords else None


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--num_utts", type=int, default=60, help="utterances in the synthesized data dir")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for both sides")
    p.add_argument("--batch_size", type=int, default=16, help="funasr-lite's utterances per batch")
    p.add_argument(
        "--funasr_batch_size",
        type=int,
        default=1,
        help="AutoModel's batch_size (it batches on device=cpu too; its texts then depend on the batch)",
    )
    p.add_argument(
        "--model_kind",
        default="paraformer",
        choices=["paraformer", *bc.HOTWORD_KINDS],
        help="paraformer: Paraformer-large; seaco: SeacoParaformer (paraformer-zh); contextual: ContextualParaformer "
        "(these two run the lite and funasr sides only)",
    )
    p.add_argument("--num_hotwords", type=int, default=50, help="hotwords given to both sides (seaco/contextual only)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both sides)")
    p.add_argument("--work_dir", default="/tmp/funasr_lite_bench", help="cache for the model/data dirs, logs, outputs")
    p.add_argument("--json", default=None, help="result JSON (default WORK_DIR/bench_infer.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the corpus")
    p.add_argument(
        "--model_dir",
        default=None,
        help="decode this model dir (e.g. the bundled demo model) instead of the synthesized paraformer-large one",
    )
    p.add_argument(
        "--data_dir", default=None, help="decode this data dir instead of the synthesized one (its text gives a CER)"
    )
    p.add_argument(
        "--sides",
        default=",".join(DEFAULT_SIDES),
        help="comma-separated sides to run, in this order: " + ", ".join(DEFAULT_SIDES) + " (onnx/sherpa sides "
        "need the 'bench' extra; one that cannot run is reported and skipped)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each side this many times (alternating) and report each side's fastest run",
    )
    p.add_argument("--skip_funasr", action="store_true", help="run funasr-lite fp32 only (same as --sides lite)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="time each stage (frontend, encoder, predictor, decoder, search, audio reading) and the Linear "
        "layers inside them against the measured fp32 GEMM peak; the timers cost microseconds per call",
    )
    p.add_argument("--_child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--_spec", help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def loadavg() -> float:
    """The 1-minute load average (0.0 where /proc/loadavg is missing)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def prepare(args: argparse.Namespace, work: str) -> Tuple[str, str, float, Optional[Dict[str, str]], int]:
    """(model dir, data dir, audio seconds, reference texts or None, #params) of the benchmark."""
    t = time.perf_counter()
    if args.data_dir:
        data_dir = os.path.abspath(args.data_dir)
        durations = {}
        import soundfile as sf

        with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
            for line in f.read().splitlines():
                if line.strip():
                    key, path = line.split(maxsplit=1)
                    durations[key] = sf.info(path if os.path.isabs(path) else os.path.join(data_dir, path)).duration
    else:
        data_dir = os.path.join(work, f"data_{args.num_utts}_s{args.seed}")
        durations = bc.ensure_data_dir(data_dir, args.num_utts, seed=args.seed)
    audio_s = sum(durations.values())
    print(
        f"data dir: {data_dir}: {len(durations)} utterances, {audio_s:.1f} s of audio "
        f"({min(durations.values()):.1f}-{max(durations.values()):.1f} s)",
        flush=True,
    )
    if args.model_dir:
        model_dir, params = os.path.abspath(args.model_dir), 0
    elif args.model_kind != "paraformer":
        model_dir, params = bc.build_hotword_model_dir(
            os.path.join(work, f"model_{args.model_kind}_s{args.seed}"), data_dir, args.model_kind, seed=args.seed
        )
    else:
        model_dir, params = bc.build_model_dir(
            os.path.join(work, f"model_large_s{args.seed}"), data_dir, seed=args.seed
        )
    print(f"model dir: {model_dir}: {params / 1e6:.1f} M parameters (ready in {time.perf_counter() - t:.0f} s)")
    refs = None  # a CER only for a real model on a given data dir (the random model's is meaningless)
    if args.data_dir and os.path.isfile(os.path.join(data_dir, "text")):
        refs = bc.read_kv(os.path.join(data_dir, "text"))
    return model_dir, data_dir, audio_s, refs, params


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args._child:
        return bc.child_main(CHILDREN, args._child, args._spec, args._result)
    sides = ["lite"] if args.skip_funasr else [s for s in args.sides.split(",") if s]
    unknown = [s for s in sides if s not in CHILDREN]
    if args.model_kind != "paraformer":
        sides = [s for s in sides if s in ("lite", "funasr")]
    counts = (args.num_utts, args.threads, args.batch_size, args.funasr_batch_size, args.repeat, args.num_hotwords)
    if min(counts) < 1 or unknown:
        print(
            "bench_infer.py: error: --num_utts, --threads, --batch_size, --funasr_batch_size, --repeat and "
            f"--num_hotwords must be >= 1, and --sides a list of {', '.join(DEFAULT_SIDES)}",
            file=sys.stderr,
        )
        return 1
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    try:
        model_dir, data_dir, audio_s, refs, params = prepare(args, work)
    except (OSError, RuntimeError) as e:
        print(f"bench_infer.py: error: cannot prepare the benchmark in {work}: {e}", file=sys.stderr)
        return 1
    hotword_file = None
    if args.model_kind != "paraformer":
        hotword_file = os.path.join(work, f"hotwords_{args.num_hotwords}_s{args.seed}.txt")
        with open(hotword_file, "w", encoding="utf-8") as f:
            f.writelines(w + "\n" for w in bc.make_hotwords(args.num_hotwords, args.seed))
        print(
            f"model: {args.model_kind}, {args.num_hotwords} hotwords ({hotword_file}); "
            f"OMP_WAIT_POLICY={child_env()['OMP_WAIT_POLICY']} in every child",
            flush=True,
        )
    warm_page_cache(os.path.join(model_dir, "model.pt"))
    spec = {
        "hotword": hotword_file,
        "model_dir": model_dir,
        "data_dir": data_dir,
        "work_dir": work,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "funasr_batch_size": args.funasr_batch_size,
        "device": args.device,
        "profile": args.profile,
    }
    runs: Dict[str, list] = {name: [] for name in sides}
    skipped: Dict[str, str] = {}
    if any(n.startswith(("onnx", "sherpa")) for n in sides):
        print("exporting the model with FunASR's ONNX exporter (once; cached) ...", flush=True)
        try:
            print(f"  ONNX export: {run_child('export', dict(spec, side='export'))['onnx_dir']}", flush=True)
        except RuntimeError as e:
            why = "FunASR's ONNX export failed: " + str(e).splitlines()[-1][:300]
            skipped.update({n: why for n in sides if n.startswith(("onnx", "sherpa"))})
            print(f"  {why}; skipping the ONNX sides", flush=True)
    if "lite_int8_saved" in sides:
        print("saving the int8 model dir with funasr-lite quantize (untimed) ...", flush=True)
        try:
            r = run_child("quantize", dict(spec, side="quantize"))
            print(f"  {r['int8_dir']} in {r['quantize_s']:.1f} s", flush=True)
        except RuntimeError as e:
            skipped["lite_int8_saved"] = "funasr-lite quantize failed: " + str(e).splitlines()[-1][:300]
    for rep in range(args.repeat):
        for name in sides:
            if name in skipped:
                continue
            print(f"running {name}{f' (repeat {rep + 1}/{args.repeat})' if args.repeat > 1 else ''} ...", flush=True)
            before = loadavg()
            try:
                r = run_child(name, dict(spec, side=name))
            except RuntimeError as e:
                skipped[name] = str(e).splitlines()[-1][:300]
                print(f"  {name}: could not run, skipped: {skipped[name]}", flush=True)
                continue
            r.update(rtf=r["decode_s"] / audio_s, loadavg_before=before, loadavg_after=loadavg())
            runs[name].append(r)
            other = r["other_cpu_s"]
            print(
                f"  {name}: load {r['load_s']:.1f} s, decode {r['decode_s']:.1f} s, process {r['process_s']:.1f} s; "
                f"other processes used {'?' if other is None else f'{other:.1f}'} CPU s meanwhile; "
                f"load avg {before:.2f} -> {r['loadavg_after']:.2f}",
                flush=True,
            )
            if other is not None and other > 0.1 * r["process_s"]:
                print(
                    f"  warning: other processes competed for the CPUs during the {name} run "
                    f"({other / r['process_s']:.2f} CPUs on average): its timings are not clean",
                    flush=True,
                )
    # per side, the run with the least wall time (load + decode): the least disturbed one
    results = {n: min(rs, key=lambda r: r["load_s"] + r["decode_s"]) for n, rs in runs.items() if rs}
    if not results:
        print("bench_infer.py: error: no side could run", file=sys.stderr)
        return 1
    print(
        f"\n{len(next(iter(results.values()))['texts'])} utterances, {audio_s:.1f} s audio, device {args.device}, "
        f"{args.threads} threads, funasr-lite batch_size {args.batch_size}, funasr batch_size "
        f"{1 if args.device == 'cpu' else args.funasr_batch_size}{' (profiled)' if args.profile else ''}"
    )
    print(report(results, refs))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    noisy = [n for n, r in results.items() if r["other_cpu_s"] is not None and r["other_cpu_s"] > 0.1 * r["process_s"]]
    print(
        "timings clean: "
        + (
            "yes (no other process competed for the CPUs)"
            if not noisy
            else f"NO: other processes competed during {', '.join(noisy)} (try --repeat 3)"
        )
    )
    for name, r in results.items():
        if r.get("profile"):
            print(format_profile(name, r["profile"]))
    cmp = (
        compare_texts(results["lite"]["texts"], results["funasr"]["texts"])
        if {"lite", "funasr"} <= set(results)
        else None
    )
    if cmp is not None:
        print(f"lite fp32 vs funasr texts identical: {'yes' if cmp['identical'] else 'NO'}")
        for ex in cmp["examples"]:
            print(f"  {ex['key']}: lite={ex['a']!r} funasr={ex['b']!r}")
    if {"lite_int8", "lite_int8_saved"} <= set(results):
        same = results["lite_int8"]["texts"] == results["lite_int8_saved"]["texts"]
        print(f"lite int8 (quantized in memory) vs int8 saved texts identical: {'yes' if same else 'NO'}")
    out = {
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "audio_seconds": audio_s,
        "params": params,
        "model_dir": model_dir,
        "data_dir": data_dir,
        "results": {n: {k: v for k, v in r.items() if k != "texts"} for n, r in results.items()},
        "all_runs": {
            n: [{k: v for k, v in r.items() if k not in ("texts", "failed", "profile")} for r in rs]
            for n, rs in runs.items()
        },
        "skipped": skipped,
        "timings_clean": not noisy,
        "texts": {n: r["texts"] for n, r in results.items()},
    }
    json_path = args.json or os.path.join(work, "bench_infer.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(f"JSON: {json_path}")
    return 0 if cmp is None or cmp["identical"] else 3


if __name__ == "__main__":
    sys.exit(main())
