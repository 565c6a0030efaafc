#!/usr/bin/env python3
"""Benchmark funasr-lite's long-audio pipeline against FunASR's AutoModel(model, vad_model, punc_model).

Usage:
    # defaults: two recordings of 5 and 8 minutes, 2 threads, CPU, cache in /tmp/funasr_lite_bench_long
    python tools/bench_long.py
    python tools/bench_long.py --minutes 10 --threads 2 --json /tmp/bench_long.json
    python tools/bench_long.py --hour                   # one 60-minute recording (funasr-lite only: --skip_funasr)
    python tools/bench_long.py --skip_funasr             # funasr-lite only
    python tools/bench_long.py --skip_lite               # FunASR only (e.g. to check the model dirs)

What it does:

1. builds, once (cached in ``--work_dir``), long recordings of synthesized Mandarin sentences with pauses
   (espeak-ng; ``--minutes``), and three random-weight model dirs with FunASR's own classes
   (tools/pipeline_models.py): a BiCifParaformer shaped like paraformer-large (SANM 50 x 512 encoder, 16-block
   decoder, CifPredictorV3 timestamp head, 8404 tokens), the FSMN-VAD at its real size (its silence output
   steered by the frame energy, so the pauses give segments) and a CT-Transformer at the size of
   ``iic/punc_ct-transformer_zh-cn-common-vocab272727-pytorch`` (272727 tokens, 4 x 256 SANM);
2. runs each side in its own fresh Python process, with ``torch.set_num_threads(--threads)`` and
   ``OMP_WAIT_POLICY=PASSIVE`` on both (FunASR's BiLSTM crawls on 2 cores without it): funasr-lite's data-dir job
   (``infer.py --vad_model --punc_model``), FunASR's ``generate(input=wav, sentence_timestamp=True)`` per file;
3. prints load time, decode wall time, RTF and peak RSS of each, their ratios (lite/funasr), and whether the
   outputs are identical: punctuated text, token timestamps (max difference), sentences (text, start, end).

Exit status: 0 identical outputs (or one side skipped), 3 they differ, 1 a child failed (log in WORK_DIR/logs).
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import bench_common as bc  # a sibling in tools/ (no torch import at module level)

PUNC_VOCAB = 272727  # iic/punc_ct-transformer_zh-cn-common-vocab272727-pytorch
PUNC_SHAPE = dict(d_model=256, heads=8, ffn=1024, blocks=4)

# ----------------------------------------------------------------------------- children


def child_lite(spec: Dict[str, Any]) -> Dict[str, Any]:
    """funasr-lite: load the three models, then the data-dir job; outputs read back from 1best_recog/."""
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(spec["threads"])
    from funasr_lite.decode.infer import prepare_data
    from funasr_lite.decode.options import InferOptions
    from funasr_lite.pipeline.job import run_long_audio
    from funasr_lite.pipeline.long_audio import load_pipeline

    pipe = load_pipeline(spec["asr_dir"], vad_model=spec["vad_dir"], punc_model=spec["punc_dir"], device="cpu")
    t1 = time.perf_counter()
    rss_load = bc.peak_rss_mb()
    opts = InferOptions(
        model=spec["asr_dir"],
        data_dir=spec["data_dir"],
        output_dir=os.path.join(spec["work_dir"], "out_lite"),
        device="cpu",
        ncpu=spec["threads"],
        vad_model=spec["vad_dir"],
        punc_model=spec["punc_dir"],
    )
    os.makedirs(opts.output_dir, exist_ok=True)
    data, failed = prepare_data(opts)
    result = run_long_audio(opts, data, failed, pipe.asr, pipe=pipe)
    t2 = time.perf_counter()
    out = result.result_dir
    texts = bc.read_kv(os.path.join(out, "text"))
    stamps = {k: json.loads(v) for k, v in bc.read_kv(os.path.join(out, "timestamp")).items()}
    sentences: Dict[str, List] = {k: [] for k in texts}
    with open(os.path.join(out, "sentences"), encoding="utf-8") as f:
        for line in f:
            key, start, end, text = (line.rstrip("\n").split(" ", 3) + [""])[:4]
            sentences[key].append([int(start), int(end), text])
    return {
        "load_s": t1 - t0,
        "decode_s": t2 - t1,
        "stages_s": pipe.stage_seconds,
        "rss_after_load_mb": rss_load,
        "peak_rss_mb": bc.peak_rss_mb(),
        "failed": result.failed,
        "texts": texts,
        "timestamps": stamps,
        "sentences": sentences,
    }


def child_funasr(spec: Dict[str, Any]) -> Dict[str, Any]:
    """FunASR: AutoModel(model, vad_model, punc_model), then generate(sentence_timestamp=True) per recording."""
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(spec["threads"])
    from funasr import AutoModel

    from funasr_lite.pipeline.sentences import sentence_text  # as funasr-lite's sentences file writes it

    model = AutoModel(
        model=spec["asr_dir"],
        vad_model=spec["vad_dir"],
        punc_model=spec["punc_dir"],
        disable_update=True,
        device="cpu",
        disable_pbar=True,
        ncpu=spec["threads"],
        log_level="ERROR",
    )
    t1 = time.perf_counter()
    rss_load = bc.peak_rss_mb()
    texts, stamps, sentences = {}, {}, {}
    for key, path in bc.read_kv(os.path.join(spec["data_dir"], "wav.scp")).items():
        res = model.generate(input=path, sentence_timestamp=True)
        r = res[0] if res else {"text": "", "timestamp": [], "sentence_info": []}
        texts[key] = r.get("text", "")
        stamps[key] = [[int(a), int(b)] for a, b in r.get("timestamp", [])]
        sentences[key] = [[int(s["start"]), int(s["end"]), sentence_text(s["text"])] for s in r["sentence_info"]]
    t2 = time.perf_counter()
    return {
        "load_s": t1 - t0,
        "decode_s": t2 - t1,
        "rss_after_load_mb": rss_load,
        "peak_rss_mb": bc.peak_rss_mb(),
        "failed": {},
        "texts": texts,
        "timestamps": stamps,
        "sentences": sentences,
    }


CHILDREN = {"lite": child_lite, "funasr": child_funasr}


def run_child(name: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one side in a fresh interpreter (OMP_WAIT_POLICY=PASSIVE); its result dict plus process wall time."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(spec["threads"]))
    return bc.run_child(__file__, name, spec, env)


# ----------------------------------------------------------------------------- building


def build_inputs(work: str, minutes: Sequence[float], seed: int) -> Dict[str, Any]:
    """The recordings' data dir and the three model dirs (cached by a stamp of what they depend on)."""
    import random

    import synth_data
    from pipeline_models import bicif_config, build_bicif_dir, build_punc_dir, build_vad_dir

    stamp_path = os.path.join(work, "bench_long_stamp.json")
    stamp = {"minutes": list(minutes), "seed": seed, "v": 1}
    paths = {
        "data_dir": os.path.join(work, "long_data"),
        "asr_dir": os.path.join(work, "bicif_large"),
        "vad_dir": os.path.join(work, "fsmn_vad"),
        "punc_dir": os.path.join(work, "ct_punc"),
    }
    old = bc.cached_record(stamp_path, stamp)
    if old is not None:
        return {**paths, "durations": old["durations"]}
    cmvn_dir = os.path.join(work, "cmvn_data")
    bc.ensure_data_dir(cmvn_dir, bc.CMVN_UTTS, seed=seed)
    rng = random.Random(seed)
    sentences = [bc.make_sentence(rng, 6, 18) for _ in range(200)]
    data = paths["data_dir"]
    os.makedirs(os.path.join(data, "wav"), exist_ok=True)
    durations, scp, text = {}, [], []
    for i, m in enumerate(minutes):
        key = f"long{i:02d}_{m:g}min"
        wav = os.path.join(data, "wav", f"{key}.wav")
        spoken = synth_data.make_long_recording(
            wav, sentences[i::2] or sentences, m * 60.0, opts=synth_data.SynthOptions(seed=seed + i)
        )
        durations[key] = m * 60.0
        scp.append(f"{key} {wav}\n")
        text.append(f"{key} {spoken}\n")
        print(f"  recording {key}: {m:g} min", flush=True)
    with open(os.path.join(data, "wav.scp"), "w", encoding="utf-8") as f:
        f.writelines(scp)
    with open(os.path.join(data, "text"), "w", encoding="utf-8") as f:
        f.writelines(text)
    tokens = bc.token_list()
    build_bicif_dir(paths["asr_dir"], bicif_config(bc.large_config()), tokens, cmvn_dir, seed=seed)
    build_vad_dir(paths["vad_dir"], [os.path.join(data, "wav", f"{k}.wav") for k in durations][:1], seed=seed)
    chars = tokens[3:-1] + [f"w{i}" for i in range(PUNC_VOCAB - len(tokens[3:-1]) - 4)]
    build_punc_dir(paths["punc_dir"], chars, seed=seed, **PUNC_SHAPE)
    bc.write_record(stamp_path, stamp, durations=durations)
    return {**paths, "durations": durations}


# ----------------------------------------------------------------------------- parent


def compare(lite: Dict[str, Any], fun: Dict[str, Any]) -> Dict[str, Any]:
    """Identity of texts and sentences, and the largest token-timestamp difference (ms)."""
    keys = sorted(set(lite["texts"]) | set(fun["texts"]))
    text_diff = [k for k in keys if lite["texts"].get(k) != fun["texts"].get(k)]
    sent_diff = [k for k in keys if lite["sentences"].get(k) != fun["sentences"].get(k)]
    max_ms: Optional[int] = 0
    for k in keys:
        a, b = lite["timestamps"].get(k, []), fun["timestamps"].get(k, [])
        if len(a) != len(b):
            max_ms = None
            break
        max_ms = max([max_ms, *(max(abs(x[0] - y[0]), abs(x[1] - y[1])) for x, y in zip(a, b))])
    return {
        "texts_identical": not text_diff,
        "sentences_identical": not sent_diff,
        "timestamps_max_diff_ms": max_ms,
        "different_texts": text_diff,
        "different_sentences": sent_diff,
    }


def report(results: Dict[str, Dict[str, Any]]) -> str:
    metrics = [("load (s)", "load_s", 2), ("decode wall (s)", "decode_s", 1), ("RTF", "rtf", 4)]
    metrics += [("peak RSS (MiB)", "peak_rss_mb", 0), ("RSS after load (MiB)", "rss_after_load_mb", 0)]
    lite, fun = results.get("lite", {}), results.get("funasr", {})
    rows = [("", "funasr-lite", "funasr", "lite/funasr")]
    for label, key, digits in metrics:
        a, b = lite.get(key), fun.get(key)
        fmt = lambda v, d=digits: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
        rows.append((label, fmt(a), fmt(b), fmt(bc.ratio(a, b), 3)))
    return bc.format_table(rows)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--minutes", type=float, nargs="+", default=[5.0, 8.0], help="length of each recording")
    p.add_argument("--hour", action="store_true", help="one 60-minute recording instead of --minutes")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for both sides")
    p.add_argument("--work_dir", default="/tmp/funasr_lite_bench_long", help="cache for models, audio, logs")
    p.add_argument("--json", default=None, help="result JSON (default WORK_DIR/bench_long.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the recordings")
    p.add_argument("--skip_funasr", action="store_true", help="run funasr-lite only")
    p.add_argument("--skip_lite", action="store_true", help="run FunASR only")
    p.add_argument("--_child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--_spec", help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args._child:
        return bc.child_main(CHILDREN, args._child, args._spec, args._result)
    minutes = [60.0] if args.hour else args.minutes
    if args.threads < 1 or min(minutes) <= 0 or (args.skip_funasr and args.skip_lite):
        print("bench_long.py: error: --threads >= 1, --minutes > 0, and at most one side skipped", file=sys.stderr)
        return 1
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    t = time.perf_counter()
    print("preparing recordings and model dirs ...", flush=True)
    try:
        inputs = build_inputs(work, minutes, args.seed)
    except (OSError, RuntimeError) as e:
        print(f"bench_long.py: error: cannot prepare the benchmark in {work}: {e}", file=sys.stderr)
        return 1
    audio_s = sum(inputs["durations"].values())
    print(f"ready in {time.perf_counter() - t:.0f} s: {len(inputs['durations'])} recordings, {audio_s:.0f} s of audio")
    spec = {**{k: v for k, v in inputs.items() if k != "durations"}, "work_dir": work, "threads": args.threads}
    sides = [
        s for s in ("lite", "funasr") if not (s == "lite" and args.skip_lite or s == "funasr" and args.skip_funasr)
    ]
    results: Dict[str, Dict[str, Any]] = {}
    for name in sides:
        print(f"running {name} ...", flush=True)
        try:
            r = run_child(name, spec)
        except RuntimeError as e:
            print(f"bench_long.py: error: {e}", file=sys.stderr)
            return 1
        r["rtf"] = r["decode_s"] / audio_s
        results[name] = r
        other = r["other_cpu_s"]
        print(
            f"  {name}: load {r['load_s']:.1f} s, decode {r['decode_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MiB; "
            f"other processes used {'?' if other is None else f'{other:.1f}'} CPU s meanwhile",
            flush=True,
        )
    print(f"\n{audio_s:.0f} s of audio, {args.threads} threads, OMP_WAIT_POLICY=PASSIVE on both sides")
    print(report(results))
    if "lite" in results:
        print("funasr-lite stage wall seconds:", {k: round(v, 1) for k, v in results["lite"]["stages_s"].items()})
    noisy = [n for n, r in results.items() if r["other_cpu_s"] is not None and r["other_cpu_s"] > 0.1 * r["process_s"]]
    print("timings clean:", "yes" if not noisy else f"NO: other processes competed during {', '.join(noisy)}")
    cmp = compare(results["lite"], results["funasr"]) if len(results) == 2 else None
    if cmp:
        diff = cmp["timestamps_max_diff_ms"]
        print(
            f"texts identical: {'yes' if cmp['texts_identical'] else 'NO'}; sentences identical: "
            f"{'yes' if cmp['sentences_identical'] else 'NO'}; timestamps max difference: "
            + ("token counts differ" if diff is None else f"{diff} ms")
        )
    out = {
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "audio_seconds": audio_s,
        "results": {
            n: {k: v for k, v in r.items() if k not in ("texts", "timestamps", "sentences")} for n, r in results.items()
        },
        "ratios": {
            k: bc.ratio(results.get("lite", {}).get(k), results.get("funasr", {}).get(k))
            for k in ("load_s", "decode_s", "rtf", "peak_rss_mb")
        },
        "timings_clean": not noisy,
        "compare": cmp,
    }
    json_path = args.json or os.path.join(work, "bench_long.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=2)
    print(f"results: {json_path}")
    ok = cmp is None or (
        cmp["texts_identical"]
        and cmp["sentences_identical"]
        and cmp["timestamps_max_diff_ms"] is not None
        and cmp["timestamps_max_diff_ms"] <= 1
    )
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
