#!/usr/bin/env python3
"""GPU decoding throughput and peak GPU memory: funasr-lite at --dtype bf16/fp16/fp32 vs FunASR's AutoModel.

Usage:
    python tools/bench_gpu.py                                  # 400 utts, lite bf16+fp32, FunASR batch 1..64
    python tools/bench_gpu.py --num_utts 400 --dtypes bf16,fp16,fp32 --batch_size 256 --batch_seconds 600 \\
        --funasr_batch_sizes 1,8,32,64,128 --device cuda:0 --work_dir /tmp/funasr_lite_bench --json /tmp/gpu.json
    # a smoke test of the tool itself on CPU (tests/tools/test_bench_gpu.py runs this on a tiny model):
    python tools/bench_gpu.py --device cpu --model_dir MODEL_DIR --data_dir DATA_DIR --funasr_batch_sizes 1,2 --warmup 1

What it does:

1. builds (cached in ``--work_dir``, shared with tools/bench_infer.py) the synthesized Mandarin data dir
   (espeak-ng, 2-6 s utterances) and the paraformer-large-shaped random model dir (~220 M parameters), unless
   ``--data_dir`` / ``--model_dir`` name ones to decode instead (the model dir must load in FunASR too);
2. runs each configuration in its own fresh Python process (``bench_common.run_child``, logs in
   ``--work_dir/logs``) on the same device:
   * ``lite-<dtype>``: ``funasr_lite.load_model(dir, dtype=...)`` with ``batch_size`` / ``batch_seconds``
     (length-sorted batches bounded by both), then the data-dir job (``run_inference``);
   * ``funasr-b<N>``: ``AutoModel(model=dir).generate(input=wav.scp, batch_size=N)`` for each N of
     ``--funasr_batch_sizes`` (without a VAD model AutoModel batches by utterance count; ``batch_size_s``
     applies only with a VAD), so FunASR is compared at its best setting;
   each side first decodes ``--warmup`` utterances (CUDA context, kernel selection), then the peak-memory counter
   is reset and the whole data dir is decoded and timed (``torch.cuda.synchronize`` around it);
3. prints a table: audio seconds per second, decode wall seconds, peak GPU memory allocated (MiB), how many texts
   equal funasr-lite fp32's (the bf16 target is >= 99%), and the ratio of each lite run's throughput to
   FunASR's best; ``--json`` writes it with every run's texts.

``--device cpu`` is a SMOKE run of this tool, not a measurement: the heading says so, the CUDA calls are skipped
(GPU peak "-"); AutoModel batches by ``batch_size`` on CPU too when it is asked for ``device="cpu"`` (it falls
back to batch 1 only when asked for a CUDA it does not find).
funasr-lite refuses ``--dtype fp16`` on CPU (``funasr_lite.utils.device.resolve_dtype``): such a run is listed as
skipped, with that reason, and the others run. ``--device cuda`` without CUDA, or a device string funasr-lite does
not know, stops at once with a message saying so.

On a lent device machine (one H200; its image has Python 3.12, torch 2.11 + torchaudio 2.11 and no network):
the image lacks soundfile (+ cffi) for funasr-lite and, for the FunASR side, funasr 1.4.16 and the part of its
requirements that a local Paraformer dir's AutoModel + generate imports: librosa, kaldiio, omegaconf +
antlr4-python3-runtime 4.9.3, hydra-core, websockets, jamo, jaconv, tensorboardX, torch-complex, rapidfuzz.
(Found by running this tool's CPU smoke here with every other distribution missing from the image's package
list made unimportable. Not needed on this path, though listed as requirements: modelscope, editdistance (setup.py),
jieba, umap_learn, oss2 (funasr); it imports them only inside try blocks or not at all. Versions are not
emulated: the image's numpy, transformers and huggingface_hub differ from this machine's.) 14 wheels, 6.4 MiB,
all binary for cp312 manylinux or pure Python, except antlr4-python3-runtime 4.9.3 (omegaconf 2.3 pins 4.9.*),
which is an sdist on PyPI: ``pip wheel`` builds its pure-Python wheel here. The device tree (this checkout's
tracked files, ~37 MiB) plus the carried paths must stay under 64 MiB, so the data dir is 240 utterances
(762 s of audio, 14.4 MiB of 16-bit FLAC; 400 would not fit), synthesized here (there is no espeak-ng there)
with its wav.scp made relative so it resolves there; the random 220 M-parameter model (~880 MB) is too big to
carry and is built there (``--work_dir``, from the carried data's CMVN). Here, with the network:

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
        --platform any -d .whl funasr==1.4.16 soundfile==0.14.0 cffi==2.0.0 librosa==0.11.0 kaldiio==2.18.1 \\
        omegaconf==2.3.1 hydra-core==1.3.8 websockets==17.4 jamo==0.4.1 jaconv==0.5.0 tensorboardX==2.6.5 \\
        torch-complex==0.4.4 rapidfuzz==3.14.6
    python3 -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
    python3 -c "import sys; sys.path[:0] = ['.', 'tools']; import bench_common; bench_common.ensure_data_dir('.gpu_bench/data', 240)"
    sed -i "s| $PWD/.gpu_bench/data/| |" .gpu_bench/data/wav.scp

(``.whl/`` and ``.gpu_bench/`` are git-ignored: never commit them.) There, with ``carry=[".whl", ".gpu_bench"]``:

    python3 -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    python3 tools/bench_gpu.py --data_dir .gpu_bench/data --dtypes bf16,fp16,fp32 \\
        --funasr_batch_sizes 1,8,32,64 --work_dir /tmp/gpu_bench --json $OUT/gpu.json

The random model's logits are nearly tied, so its bf16-vs-fp32 agreement says nothing; that figure comes from the
trained demo model, already in the tree. Its funasr-bN rows differ from lite fp32 on a few texts, for two reasons
of FunASR's: it applies the config's dither 1.0 while decoding (funasr-lite never dithers then), and its batched
decode is not padding-invariant. With the dither set to 0 in a copy of the dir, AutoModel at batch 1 gives lite's
texts on 60/60 and at batch 8 on 57/60 (CPU, checked here), while lite's own texts are the same at batch 1, 16
and 256:

    D=egs_modelscope/asr/paraformer/speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo
    python3 tools/bench_gpu.py --model_dir $D/model --data_dir $D/data/test --dtypes bf16,fp16,fp32 \\
        --funasr_batch_sizes 1,8 --work_dir /tmp/gpu_demo --json $OUT/gpu_demo.json

The script puts this checkout first on its own and its children's import path, so funasr_lite needs no install.

Exit status: 0; 1 for bad arguments or device, or when a child failed (the others still run; each failure is
printed with its log path, ``--work_dir/logs/<run>.log``).
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import bench_common as bc  # a sibling in tools/ (no torch import at module level)

# ----------------------------------------------------------------------------- children (fresh interpreters)


def _warmup_wavs(spec: Dict[str, Any]) -> List[str]:
    return list(bc.read_scp(spec["data_dir"]).values())[: spec["warmup"]]


def child_lite(spec: Dict[str, Any]) -> Dict[str, Any]:
    """funasr-lite at spec['dtype']: warm up, then the data-dir job over the whole data dir."""
    import torch

    torch.set_num_threads(spec["threads"])
    from funasr_lite.decode.infer import run_inference
    from funasr_lite.decode.options import InferOptions
    from funasr_lite.decode.transcribe import load_model

    overrides = {"batch_size": spec["batch_size"], "batch_seconds": spec["batch_seconds"]}
    device = spec["device"]
    asr = load_model(spec["model_dir"], device=device, dtype=spec["dtype"], config_overrides=overrides)
    if spec["warmup"]:
        asr.transcribe(_warmup_wavs(spec))
    bc.sync(device)
    bc.reset_gpu_peak(device)
    opts = InferOptions(
        model=spec["model_dir"],
        data_dir=spec["data_dir"],
        output_dir=os.path.join(spec["work_dir"], f"gpu_out_{spec['name']}"),
        device=device,
        dtype=spec["dtype"],
        ncpu=spec["threads"],
    )
    t0 = time.perf_counter()
    result = run_inference(opts, asr=asr)
    bc.sync(device)
    decode_s = time.perf_counter() - t0
    return {
        "decode_s": decode_s,
        "gpu_peak_mb": bc.gpu_peak_mb(device),
        "failed": len(result.failed),
        "texts": bc.read_kv(os.path.join(result.result_dir, "text")),
    }


def child_funasr(spec: Dict[str, Any]) -> Dict[str, Any]:
    """FunASR AutoModel at batch_size spec['funasr_batch_size'] (fp32): warm up, then generate(wav.scp)."""
    import torch

    torch.set_num_threads(spec["threads"])
    from funasr import AutoModel

    device = spec["device"]
    model = AutoModel(
        model=spec["model_dir"],
        disable_update=True,
        device=device,
        disable_pbar=True,
        ncpu=spec["threads"],
        batch_size=spec["funasr_batch_size"],
        log_level="ERROR",
    )
    if spec["warmup"]:
        model.generate(input=_warmup_wavs(spec))
    scp = bc.write_absolute_scp(spec["data_dir"], os.path.join(spec["work_dir"], "logs", f"{spec['name']}.wav.scp"))
    bc.sync(device)
    bc.reset_gpu_peak(device)
    t0 = time.perf_counter()
    res = model.generate(input=scp)
    bc.sync(device)
    decode_s = time.perf_counter() - t0
    return {
        "decode_s": decode_s,
        "gpu_peak_mb": bc.gpu_peak_mb(device),
        "failed": 0,
        "texts": {r["key"]: r.get("text", "") for r in res},
    }


# a run's name is SIDE-SETTING (lite-bf16, funasr-b8); its child is CHILDREN[SIDE]
CHILDREN: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {"lite": child_lite, "funasr": child_funasr}


def child_env() -> Dict[str, str]:
    """The children's environment: ours, with this checkout first on PYTHONPATH (a device machine has no
    installed funasr_lite) and OMP_WAIT_POLICY=PASSIVE unless set (FunASR's LSTMs spin-wait otherwise)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (bc.ROOT, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


# ----------------------------------------------------------------------------- parent


def check_device(device: str) -> Tuple[Optional[str], Optional[str]]:
    """(the device's canonical name, None), or (None, why it cannot be used here)."""
    from funasr_lite.errors import ConfigError
    from funasr_lite.utils.device import resolve_device

    try:
        return str(resolve_device(device)), None
    except ConfigError as e:
        return None, f"{e} (--device cpu runs this tool as a CPU smoke test, not a GPU measurement)"


def dtype_problem(dtype: str, device: str) -> Optional[str]:
    """Why funasr-lite refuses ``--dtype dtype`` on ``device`` (None when it decodes with it)."""
    from funasr_lite.errors import ConfigError
    from funasr_lite.utils.device import resolve_dtype

    try:
        resolve_dtype(dtype, device)
    except ConfigError as e:
        return str(e)
    return None


def count_same(ref: Optional[Dict[str, str]], texts: Dict[str, str]) -> Optional[Tuple[int, int]]:
    """(keys of ``ref`` whose text in ``texts`` is the same, keys of ``ref``); None without a reference."""
    if ref is None:
        return None
    return sum(texts.get(k) == v for k, v in ref.items()), len(ref)


def audio_durations(data_dir: str) -> Dict[str, float]:
    """key -> seconds of each utterance of a given data dir's wav.scp."""
    import soundfile as sf

    return {k: sf.info(p).duration for k, p in bc.read_scp(data_dir).items()}


def prepare(args: argparse.Namespace, work: str) -> Tuple[str, str, Dict[str, float], Optional[int]]:
    """(model dir, data dir, key -> seconds, #params or None for a given model dir)."""
    if args.data_dir:
        data_dir = os.path.abspath(args.data_dir)
        durations = audio_durations(data_dir)
    else:
        data_dir = os.path.join(work, f"data_{args.num_utts}_s{args.seed}")
        durations = bc.ensure_data_dir(data_dir, args.num_utts, seed=args.seed)
    if args.model_dir:
        return os.path.abspath(args.model_dir), data_dir, durations, None
    model_dir, params = bc.build_model_dir(os.path.join(work, f"model_large_s{args.seed}"), data_dir, seed=args.seed)
    return model_dir, data_dir, durations, params


def smoke_heading(device: str) -> Optional[str]:
    """The warning printed above a CPU run's table (None on a GPU)."""
    if device.startswith("cuda"):
        return None
    return (
        "CPU SMOKE RUN: these are CPU figures, not GPU figures; they only show that the tool works (GPU peak is '-')."
    )


def report(results: Dict[str, Dict[str, Any]]) -> str:
    """The table: throughput, decode seconds, GPU peak, texts equal to lite fp32's, ratio to FunASR's best."""
    best = max((r["throughput"] for n, r in results.items() if n.startswith("funasr")), default=None)
    rows = [("run", "audio-s/s", "decode s", "GPU peak MiB", "= lite fp32 text", "x FunASR best")]
    for name, r in results.items():
        same = r.get("same_as_lite_fp32")
        rows.append(
            (
                name,
                f"{r['throughput']:.1f}",
                f"{r['decode_s']:.2f}",
                "-" if r["gpu_peak_mb"] is None else f"{r['gpu_peak_mb']:.0f}",
                "-" if same is None else f"{same[0]}/{same[1]}",
                "-" if best is None or name.startswith("funasr") else f"{r['throughput'] / best:.2f}",
            )
        )
    return bc.format_table(rows)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--device", default="cuda", help="cuda or cuda:N; cpu runs a smoke test of this tool")
    p.add_argument("--num_utts", type=int, default=400, help="utterances in the synthesized data dir (2-6 s each)")
    p.add_argument("--dtypes", default="bf16,fp32", help="funasr-lite --dtype values to run (comma-separated)")
    p.add_argument("--batch_size", type=int, default=256, help="funasr-lite's max utterances per batch")
    p.add_argument("--batch_seconds", type=float, default=600.0, help="funasr-lite's max audio seconds per batch")
    p.add_argument("--funasr_batch_sizes", default="1,8,32,64", help="AutoModel batch sizes to try (its best counts)")
    p.add_argument("--warmup", type=int, default=8, help="utterances decoded before timing")
    p.add_argument("--threads", type=int, default=4, help="torch CPU threads in each child (AutoModel's ncpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the corpus")
    p.add_argument("--model_dir", default=None, help="decode this model dir instead of the paraformer-large one")
    p.add_argument("--data_dir", default=None, help="decode this data dir instead of the synthesized one")
    p.add_argument("--skip_funasr", action="store_true", help="funasr-lite only")
    p.add_argument("--work_dir", default="/tmp/funasr_lite_bench", help="cache for the model/data dirs, logs, outputs")
    p.add_argument("--json", default=None, help="write the results (and each run's texts) here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--_spec", help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _usage_problem(args: argparse.Namespace) -> Optional[str]:
    dtypes = [d for d in args.dtypes.split(",") if d]
    try:
        sizes = [int(n) for n in args.funasr_batch_sizes.split(",") if n]
    except ValueError:
        sizes = [0]
    if not dtypes or not sizes or min(sizes) < 1:
        return "--dtypes and --funasr_batch_sizes must be non-empty comma-separated lists (batch sizes >= 1)"
    if min(args.num_utts, args.batch_size, args.threads) < 1 or args.warmup < 0:
        return "--num_utts, --batch_size and --threads must be >= 1 and --warmup >= 0"
    from funasr_lite.decode.options import DTYPES

    unknown = [d for d in dtypes if d not in DTYPES]
    return f"--dtypes: unknown {', '.join(unknown)} (one of {', '.join(DTYPES)})" if unknown else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args._child:
        side = args._child.split("-", 1)[0]
        return bc.child_main({args._child: CHILDREN[side]}, args._child, args._spec, args._result)
    if bc.ROOT not in sys.path:  # this checkout's funasr_lite (a device machine has none installed)
        sys.path.insert(0, bc.ROOT)
    problem = _usage_problem(args)
    device, bad_device = check_device(args.device)
    if problem or bad_device:
        print(f"bench_gpu.py: error: {problem or bad_device}", file=sys.stderr)
        return 1
    smoke = smoke_heading(device)
    if smoke:
        print(smoke, flush=True)
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    try:
        model_dir, data_dir, durations, params = prepare(args, work)
    except (OSError, RuntimeError) as e:
        print(f"bench_gpu.py: error: cannot prepare the benchmark in {work}: {e}", file=sys.stderr)
        return 1
    audio_s = sum(durations.values())
    common = {"model_dir": model_dir, "data_dir": data_dir, "work_dir": work, "device": device}
    common.update(warmup=args.warmup, threads=args.threads)
    skipped: Dict[str, str] = {}
    specs = []
    for d in (d for d in args.dtypes.split(",") if d):
        why = dtype_problem(d, device)
        if why:
            skipped[f"lite-{d}"] = why
            continue
        specs.append(
            dict(
                common,
                side="lite",
                name=f"lite-{d}",
                dtype=d,
                batch_size=args.batch_size,
                batch_seconds=args.batch_seconds,
            )
        )
    if not args.skip_funasr:
        specs += [
            dict(common, side="funasr", name=f"funasr-b{n}", funasr_batch_size=int(n))
            for n in args.funasr_batch_sizes.split(",")
            if n
        ]
    results: Dict[str, Dict[str, Any]] = {}
    failed: Dict[str, str] = {}
    for name, why in skipped.items():
        print(f"skipping {name}: funasr-lite refuses it on {device}: {why}", flush=True)
    for spec in specs:
        print(f"running {spec['name']} ...", flush=True)
        try:
            r = bc.run_child(__file__, spec["name"], spec, child_env())
        except RuntimeError as e:
            failed[spec["name"]] = str(e).splitlines()[0]
            print(f"bench_gpu.py: {failed[spec['name']]}", file=sys.stderr, flush=True)
            continue
        r["throughput"] = audio_s / r["decode_s"]
        results[spec["name"]] = r
    ref = (results.get("lite-fp32") or {}).get("texts")
    for r in results.values():
        r["same_as_lite_fp32"] = count_same(ref, r["texts"])
    size = "given model dir" if params is None else f"{params / 1e6:.0f} M params"
    print(f"\n{len(durations)} utterances, {audio_s:.1f} s audio, {size} ({model_dir}), {device}")
    if smoke:
        print(smoke)
    print(report(results))
    for name, why in list(skipped.items()) + list(failed.items()):
        print(f"{'skipped' if name in skipped else 'FAILED'} {name}: {why}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            out = {
                "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
                "device": device,
                "smoke": smoke is not None,
                "audio_seconds": audio_s,
                "params": params,
                "model_dir": model_dir,
                "data_dir": data_dir,
                "results": {n: {k: v for k, v in r.items() if k != "texts"} for n, r in results.items()},
                "skipped": skipped,
                "failed": failed,
                "texts": {n: r["texts"] for n, r in results.items()},
            }
            json.dump(out, f, ensure_ascii=False, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
