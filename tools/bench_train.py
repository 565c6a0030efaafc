#!/usr/bin/env python3
"""Benchmark funasr-lite's training step against FunASR 1.4.16's on the same weights and batches.

Usage:
    # defaults: the demo's tiny config (d=128, 4/2 blocks), the bundled demo train set, 2 threads, CPU
    python tools/bench_train.py
    python tools/bench_train.py --size medium          # d=256, 6 encoder / 3 decoder blocks, 4 heads, FFN 1024
    python tools/bench_train.py --config conf/my_paraformer.yaml --data_dir data/train --batch_bins 1500 \\
        --threads 2 --passes 1 --repeat 2 --work_dir /tmp/funasr_lite_bench_train --json /tmp/bench_train.json
    python tools/bench_train.py --skip_funasr          # funasr-lite only
    python tools/bench_train.py --profile              # + torch.profiler op table of each side's timed steps
    python tools/bench_train.py --no_dropout           # dropout 0: the mean losses of both sides agree to ~0.2%
    python tools/bench_train.py --interleave --threads 1 --passes 3   # on a loaded machine: one process, A/B

What it does:

1. in this process, once: reads ``--data_dir`` (default: the bundled demo corpus'
   ``data/train``, 500 utterances), computes features ONCE with funasr-lite's
   WavFrontend (fbank + LFR, dither 0, global CMVN of these features), tokenizes the
   text (token list = the data's characters), and cuts length-sorted batches of at most
   ``--batch_bins`` padded LFR frames (batch order shuffled with ``--seed``); builds a
   randomly initialised Paraformer from the config and saves its weights.  So both
   frameworks see identical weights and identical feature batches (feature extraction
   and data loading are NOT part of the timing);
2. runs each side in its own fresh Python process (``torch.set_num_threads(--threads)``),
   so peak RSS (``ru_maxrss``) is per framework:
   * ``funasr``: ``funasr.models.paraformer.model.Paraformer`` built from the same
     config, weights loaded strictly, then FunASR's trainer step: ``model(**batch)``,
     ``loss.backward()``, ``clip_grad_norm_(grad_clip)``, Adam ``step``, FunASR's
     ``WarmupLR.step``, ``zero_grad(set_to_none=True)``;
   * ``lite``: the same step with ``funasr_lite.models.paraformer.Paraformer``,
     ``funasr_lite.train.scheduler.build_optimizer`` (a fused Adam, as finetune builds it) + WarmupLR;
   * ``lite-trainer``: funasr-lite's whole loop, ``funasr_lite.train.trainer.Trainer.fit``
     (NaN checks, stats, logging, checkpoint files), its throughput as the trainer
     itself reports it;
   each side first trains ``--warmup_passes`` untimed passes over all batches, then
   ``--passes`` timed ones; model dropout as configured, no SpecAug;
3. prints a table (audio seconds per wall second, ms per step, peak RSS, RSS before
   training, mean loss of the timed steps, and "other load": the CPU cores other
   processes kept busy meanwhile, from /proc/stat; above ~0.3 the timing is noisy)
   with ratios lite/funasr, and the forward / backward / optimizer split of each
   step; ``--json`` writes it all.  With dropout on, the RNG streams differ (FunASR's
   layer containers draw extra random numbers), so the mean losses agree only
   roughly; with ``--no_dropout`` funasr's and lite's agree to about 0.2% (3.225 vs 3.230 on the
   demo config: ours runs fused kernels, scaled_dot_product_attention and fused Adam, which round differently)
   (lite-trainer reseeds every epoch, so its sampler draws differ).  Single runs
   spread by up to ~15% on a 2-core VM even at "other load" ~0: use --repeat 3.

Measured on the 2-core dev box (torch 2.14.1, 500 demo utterances, best of 2-3 runs), before
funasr-lite's cheaper dropout mask and fused Adam: demo tiny d=128 4/2: funasr 457, lite 462,
lite-trainer 465 audio-s/s; peak RSS 1272 / 1043 / 1026 MiB.  d=256 6/3 (--size medium): 126 /
126 / 127 audio-s/s; peak RSS 1723 / 1519 / 1524 MiB.  Dropout masks (``aten::bernoulli_``, a
serial kernel) took ~25% of a CPU step in both; with --no_dropout both ran ~1.5x faster.
Since (funasr_lite/models/dropout.py, fused Adam), measured only on a loaded box (load ~10):
same batches and weights, both models in ONE process, interleaved, CPU seconds of 1 thread
(4 mid-length batches, min of 3 rounds): lite/funasr x1.046 before, x1.239 after, with the
same loss curve (mean losses per round 5.640/5.424/5.022 funasr, 5.637/5.441/5.018 lite).
On 2 threads the ratio should be higher (the random draws are serial, the GEMMs are not).
Wall-clock figures on 2 threads need a quiet machine; the command for the table is:

    python tools/bench_train.py --repeat 3 --json /tmp/bench_train_tiny.json
    python tools/bench_train.py --repeat 3 --size medium --json /tmp/bench_train_medium.json
    python tools/bench_train.py --repeat 2 --no_dropout     # the loss check; speed without dropout

``--repeat N`` runs each child N times and keeps each side's fastest run (other load
on the machine only ever slows a run down).  Exit status 0, or 1 when a child failed
(its log is in ``--work_dir/logs``).
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import bench_common as bc  # a sibling in tools/ (no torch import at module level)

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)
DEMO_CONFIG = os.path.join(DEMO, "conf", "paraformer_tiny.yaml")
DEMO_TRAIN = os.path.join(DEMO, "data", "train")
# --size medium: the d=256 model of the training notes (8 M parameters with the demo vocabulary)
MEDIUM = {"d": 256, "heads": 4, "ffn": 1024, "enc": 6, "dec": 3}
SIDES = ("funasr", "lite", "lite-trainer")


# ---------------------------------------------------------------------------------------- setup
def load_config(path: str, size: str, no_dropout: bool = False) -> Dict[str, Any]:
    """The model config (a FunASR config.yaml dict), resized for ``--size medium``; no SpecAug, dither 0."""
    from funasr_lite.config.yaml_io import load_yaml

    cfg = copy.deepcopy(dict(load_yaml(path)))
    if size == "medium":
        m = MEDIUM
        cfg["encoder_conf"].update(
            output_size=m["d"], attention_heads=m["heads"], linear_units=m["ffn"], num_blocks=m["enc"]
        )
        cfg["decoder_conf"].update(
            attention_heads=m["heads"], linear_units=m["ffn"], num_blocks=m["dec"], att_layer_num=m["dec"]
        )
        cfg["predictor_conf"]["idim"] = m["d"]
    if no_dropout:
        for section in ("encoder_conf", "decoder_conf"):
            for key in cfg.get(section) or {}:
                if "dropout" in key:
                    cfg[section][key] = 0.0
    cfg["specaug"], cfg["specaug_conf"] = None, {}
    cfg.setdefault("frontend_conf", {})["dither"] = 0.0
    return cfg


def prepare(args: argparse.Namespace, work: str) -> Dict[str, Any]:
    """Features, batches and init weights under ``work``; returns the setup summary."""
    import random

    import torch

    from funasr_lite.data.audio import load_audio
    from funasr_lite.data.datadir import load_data_dir
    from funasr_lite.data.frontend import WavFrontend, compute_cmvn_stats
    from funasr_lite.data.tokenizer import Tokenizer
    from funasr_lite.hub.model_init import token_list_from_texts
    from funasr_lite.models.paraformer import Paraformer

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.size, args.no_dropout)
    dd = load_data_dir(args.data_dir)
    keys = sorted(dd.good_keys())
    if args.num_utts:
        keys = keys[: args.num_utts]
    tokens = token_list_from_texts(dd.texts[k] for k in keys)
    tok = Tokenizer(tokens)
    fconf = {k: v for k, v in cfg["frontend_conf"].items() if k != "cmvn_file"}
    fe = WavFrontend(**fconf)
    feats: List[torch.Tensor] = []
    for k in keys:
        wav = load_audio(dd.wavs[k], int(fconf.get("fs", 16000)))
        f, n = fe(wav[None], torch.tensor([wav.numel()]))
        feats.append(f[0, : int(n[0])])
    mean, std, _ = compute_cmvn_stats(feats)
    feats = [(f - mean) / std for f in feats]
    ids = [tok.encode(dd.texts[k]) for k in keys]
    # length-sorted buckets: batch_size x longest <= batch_bins (padded LFR frames), shuffled order
    order = sorted(range(len(keys)), key=lambda i: feats[i].size(0))
    buckets, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * feats[i].size(0) > args.batch_bins:
            buckets.append(cur)
            cur = []
        cur.append(i)
    if cur:
        buckets.append(cur)
    random.Random(args.seed).shuffle(buckets)
    batches = []
    for b in buckets:
        t = max(feats[i].size(0) for i in b)
        l_max = max(len(ids[i]) for i in b)
        speech = torch.zeros(len(b), t, feats[b[0]].size(1))
        text = torch.full((len(b), l_max), -1, dtype=torch.long)
        for j, i in enumerate(b):
            speech[j, : feats[i].size(0)] = feats[i]
            text[j, : len(ids[i])] = torch.tensor(ids[i])
        batches.append(
            {
                "speech": speech,
                "speech_lengths": torch.tensor([feats[i].size(0) for i in b]),
                "text": text,
                "text_lengths": torch.tensor([len(ids[i]) for i in b]),
            }
        )
    torch.manual_seed(args.seed)
    model = Paraformer.from_config(cfg, vocab_size=len(tokens))
    params = sum(p.numel() for p in model.parameters())
    torch.save(model.state_dict(), os.path.join(work, "init.pt"))
    torch.save(batches, os.path.join(work, "batches.pt"))
    frame_s = float(fconf.get("frame_shift", 10)) * int(fconf.get("lfr_n", 6)) / 1000.0
    audio = sum(float(b["speech_lengths"].sum()) for b in batches) * frame_s
    setup = {
        "config": cfg,
        "vocab_size": len(tokens),
        "params": params,
        "num_utts": len(keys),
        "num_batches": len(batches),
        "audio_seconds_per_pass": audio,
        "frame_seconds": frame_s,
    }
    with open(os.path.join(work, "setup.json"), "w", encoding="utf-8") as f:
        json.dump(setup, f, ensure_ascii=False)
    return setup


# ---------------------------------------------------------------------------------------- children
def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _build_model(side: str, cfg: Dict[str, Any], vocab: int, state: Dict[str, Any]):
    if side == "funasr":
        from funasr.models.paraformer.model import Paraformer as FunasrParaformer

        fc = cfg.get("frontend_conf") or {}
        kwargs = {
            k: cfg[k]
            for k in ("encoder", "encoder_conf", "decoder", "decoder_conf", "predictor", "predictor_conf", "ctc_conf")
            if k in cfg
        }
        kwargs.update(cfg.get("model_conf") or {})
        model = FunasrParaformer(
            **kwargs,
            specaug=None,
            normalize=None,
            vocab_size=vocab,
            input_size=int(fc.get("n_mels", 80)) * int(fc.get("lfr_m", 7)),
        )
    else:
        from funasr_lite.models.paraformer import Paraformer

        model = Paraformer.from_config(cfg, vocab_size=vocab)
    model.load_state_dict(state, strict=True)
    return model


def _optim(side: str, model, args: argparse.Namespace):
    import torch

    if side == "funasr":  # FunASR's trainer: optim_classes["adam"](model.parameters(), **optim_conf)
        from funasr.schedulers.warmup_lr import WarmupLR

        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:  # funasr-lite's finetune: build_optimizer (a fused Adam)
        from funasr_lite.train.scheduler import WarmupLR, build_optimizer

        opt = build_optimizer("adam", model.parameters(), {"lr": args.lr})
    return opt, WarmupLR(opt, warmup_steps=args.warmup_steps)


def _step_loop(side: str, model, batches, args: argparse.Namespace, frame_s: float) -> Dict[str, Any]:
    """Warmup passes, then timed passes of forward / backward / clip / step / scheduler / zero_grad."""
    import torch

    opt, sched = _optim(side, model, args)
    model.train()
    params = list(model.parameters())
    split = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    losses: List[float] = []
    audio = wall = 0.0
    steps = 0
    prof = None
    for p in range(args.warmup_passes + args.passes):
        timed = p >= args.warmup_passes
        if timed and args.profile and prof is None:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()
        for batch in batches:
            t0 = time.perf_counter()
            out = model(batch["speech"], batch["speech_lengths"], batch["text"], batch["text_lengths"])
            loss = out[0]
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm=args.grad_clip)
            if torch.isfinite(norm):
                opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            lv = float(loss.detach())  # both trainers read the loss back every step
            t3 = time.perf_counter()
            if timed:
                split["forward"] += t1 - t0
                split["backward"] += t2 - t1
                split["optimizer"] += t3 - t2
                wall += t3 - t0
                audio += float(batch["speech_lengths"].sum()) * frame_s
                losses.append(lv)
                steps += 1
    res: Dict[str, Any] = {
        "audio_s": audio,
        "wall_s": wall,
        "steps": steps,
        "split_s": split,
        "mean_loss": sum(losses) / max(len(losses), 1),
    }
    if prof is not None:
        prof.__exit__(None, None, None)
        res["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows)
    return res


def interleaved(args: argparse.Namespace, work: str, setup: Dict[str, Any]) -> str:
    """``--interleave``: funasr and lite in THIS process, one pass each in turn, each pass reseeded alike.

    Machine load then hits both sides alike; CPU seconds (``time.process_time``) are also reported,
    which on 1 thread barely depend on other processes. Returns the report lines.
    """
    import torch

    torch.set_num_threads(args.threads)
    state = torch.load(os.path.join(work, "init.pt"), weights_only=True)
    batches = torch.load(os.path.join(work, "batches.pt"), weights_only=True)
    sides = {}
    for side in ("funasr", "lite"):
        model = _build_model(side, setup["config"], setup["vocab_size"], state)
        model.train()
        sides[side] = (model, list(model.parameters()), *_optim(side, model, args))
    audio = sum(float(b["speech_lengths"].sum()) for b in batches) * setup["frame_seconds"]
    wall: Dict[str, List[float]] = {s: [] for s in sides}
    cpu: Dict[str, List[float]] = {s: [] for s in sides}
    losses: Dict[str, List[float]] = {s: [] for s in sides}
    for r in range(args.warmup_passes + args.passes):
        for side, (model, params, opt, sched) in sides.items():
            torch.manual_seed(args.seed + r)
            w0, c0, pass_losses = time.perf_counter(), time.process_time(), []
            for b in batches:
                loss = model(b["speech"], b["speech_lengths"], b["text"], b["text_lengths"])[0]
                loss.backward()
                if torch.isfinite(torch.nn.utils.clip_grad_norm_(params, max_norm=args.grad_clip)):
                    opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                pass_losses.append(float(loss.detach()))
            if r >= args.warmup_passes:
                wall[side].append(time.perf_counter() - w0)
                cpu[side].append(time.process_time() - c0)
                losses[side].append(sum(pass_losses) / len(pass_losses))
    lines = [f"interleaved in one process, {args.threads} thread(s), {args.passes} timed pass(es) per side:"]
    for side in sides:
        lines.append(
            f"  {side:6s}: {audio / min(wall[side]):.1f} audio-s/s wall (best pass), "
            f"{audio / min(cpu[side]):.1f} audio-s per CPU-s; mean loss per pass "
            + " ".join(f"{v:.3f}" for v in losses[side])
        )
    lines.append(
        f"lite/funasr: throughput x{min(wall['funasr']) / min(wall['lite']):.3f} (wall), "
        f"x{min(cpu['funasr']) / min(cpu['lite']):.3f} (CPU time)"
    )
    return "\n".join(lines)


class _Batches:
    """A precomputed batch list the Trainer can iterate like a DataLoader (no sampler, no workers)."""

    batch_sampler = None
    dataset = None
    generator = None
    num_workers = 0

    def __init__(self, batches: List[Dict[str, Any]]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _trainer_loop(model, batches, args: argparse.Namespace, frame_s: float, out_dir: str) -> Dict[str, Any]:
    """funasr-lite's Trainer.fit over the batches: warmup epochs, then the timed ones (trainer's own timing)."""
    from funasr_lite.train.distributed import setup_distributed
    from funasr_lite.train.options import TrainConf
    from funasr_lite.train.trainer import Trainer

    opt, sched = _optim("lite", model, args)
    epochs = args.warmup_passes + args.passes
    conf = TrainConf(
        max_epoch=epochs, grad_clip=args.grad_clip, keep_nbest_models=[1], log_interval=10**9, seed=args.seed
    )
    trainer = Trainer(
        model,
        opt,
        sched,
        _Batches(batches),
        None,
        conf,
        setup_distributed("cpu"),
        output_dir=out_dir,
        best_model_criterion=["loss"],
        frame_seconds=frame_s,
        progress_bar=False,
        tensorboard=False,
        plot=False,
    )
    t0 = time.perf_counter()
    result = trainer.fit()
    total = time.perf_counter() - t0
    timed = result.records[args.warmup_passes :]
    per_pass = sum(float(b["speech_lengths"].sum()) for b in batches) * frame_s
    audio = per_pass * len(timed)
    wall = sum(per_pass / r.throughput for r in timed)  # the trainer's own training-loop time
    return {
        "audio_s": audio,
        "wall_s": wall,
        "steps": len(batches) * len(timed),
        "split_s": None,
        "mean_loss": sum(r.train_loss for r in timed) / len(timed),
        "fit_total_s": total,
    }


def child_main(side: str, work: str, args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    with open(os.path.join(work, "setup.json"), encoding="utf-8") as f:
        setup = json.load(f)
    state = torch.load(os.path.join(work, "init.pt"), weights_only=True)
    batches = torch.load(os.path.join(work, "batches.pt"), weights_only=True)
    model = _build_model(side, setup["config"], setup["vocab_size"], state)
    del state
    torch.manual_seed(args.seed)
    rss0 = _rss_mb()
    if side == "lite-trainer":
        import tempfile

        with tempfile.TemporaryDirectory(dir=work) as out_dir:
            res = _trainer_loop(model, batches, args, setup["frame_seconds"], out_dir)
    else:
        res = _step_loop(side, model, batches, args, setup["frame_seconds"])
    res.update(side=side, rss_before_mb=rss0, peak_rss_mb=bc.peak_rss_mb(), threads=torch.get_num_threads())
    with open(os.path.join(work, f"result_{side}.json"), "w", encoding="utf-8") as f:
        json.dump(res, f)
    return 0


# ---------------------------------------------------------------------------------------- parent
def run_child(side: str, work: str, argv: List[str]) -> Optional[Dict[str, Any]]:
    log = os.path.join(work, "logs", f"{side}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(_arg(argv, "--threads", "2")),
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    result = os.path.join(work, f"result_{side}.json")
    if os.path.exists(result):
        os.remove(result)
    busy0, own0, t0 = bc.system_busy_seconds(), bc.children_cpu_seconds(), time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        rc = subprocess.call(
            [sys.executable, os.path.abspath(__file__), "--child", side, *argv],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    busy1, own1, wall = bc.system_busy_seconds(), bc.children_cpu_seconds(), time.perf_counter() - t0
    if rc != 0 or not os.path.exists(result):
        print(f"bench_train: {side} failed (exit {rc}); see {log}", file=sys.stderr)
        return None
    with open(result, encoding="utf-8") as f:
        res = json.load(f)
    # CPU cores other processes kept busy while this child ran: > ~0.3 means the timing is noisy
    res["other_load"] = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0)) / wall
    return res


def _arg(argv: List[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def _fmt(v: Optional[float], spec: str) -> str:
    return "-" if v is None else format(v, spec)


def report(setup: Dict[str, Any], results: Dict[str, Dict[str, Any]], args: argparse.Namespace) -> str:
    enc, dec = setup["config"]["encoder_conf"], setup["config"]["decoder_conf"]
    lines = [
        f"model: d={enc['output_size']}, {enc['num_blocks']} enc / {dec['num_blocks']} dec blocks, "
        f"{enc['attention_heads']} heads, FFN {enc['linear_units']}, vocab {setup['vocab_size']}, "
        f"{setup['params'] / 1e6:.2f} M params",
        f"data: {setup['num_utts']} utts, {setup['num_batches']} batches of <= {args.batch_bins} LFR frames, "
        f"{setup['audio_seconds_per_pass']:.0f} s audio per pass; {args.warmup_passes} warmup + {args.passes} "
        f"timed pass(es); {args.threads} threads; features precomputed once (same batches for both)",
    ]
    rows = [("side", "audio-s/s", "ms/step", "peak RSS MiB", "RSS before MiB", "mean loss", "other load")]
    for side in SIDES:
        r = results.get(side)
        if r is None:
            continue
        r["throughput"] = r["audio_s"] / r["wall_s"] if r["wall_s"] else None
        rows.append(
            (
                side,
                _fmt(r["throughput"], ".1f"),
                _fmt(1000 * r["wall_s"] / max(r["steps"], 1), ".0f"),
                _fmt(r["peak_rss_mb"], ".0f"),
                _fmt(r["rss_before_mb"], ".0f"),
                _fmt(r["mean_loss"], ".3f"),
                _fmt(r.get("other_load"), ".2f"),
            )
        )
    lines.append(bc.format_table(rows))
    base = results.get("funasr")
    for side in ("lite", "lite-trainer"):
        r = results.get(side)
        if r is not None and base is not None:
            lines.append(
                f"{side}/funasr: throughput x{_fmt(bc.ratio(r['throughput'], base['throughput']), '.2f')}, "
                f"peak RSS x{_fmt(bc.ratio(r['peak_rss_mb'], base['peak_rss_mb']), '.2f')}"
            )
    for side in ("funasr", "lite"):
        r = results.get(side)
        if r is not None and r.get("split_s"):
            s = r["split_s"]
            lines.append(
                f"{side} per step: " + ", ".join(f"{k} {1000 * v / max(r['steps'], 1):.0f} ms" for k, v in s.items())
            )
    return "\n".join(lines)


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default=DEMO_CONFIG, help="FunASR config.yaml of the model (default: the demo's)")
    p.add_argument(
        "--size",
        choices=("config", "medium"),
        default="config",
        help="config: as --config says; medium: d=256, 6/3 blocks, 4 heads, FFN 1024",
    )
    p.add_argument("--data_dir", default=DEMO_TRAIN, help="Kaldi data dir (wav.scp, text)")
    p.add_argument("--num_utts", type=int, default=0, help="use the first N utterances (0 = all)")
    p.add_argument("--batch_bins", type=int, default=1500, help="padded LFR frames per batch")
    p.add_argument("--threads", type=int, default=2, help="torch threads in each child")
    p.add_argument("--passes", type=int, default=1, help="timed passes over all batches")
    p.add_argument("--warmup_passes", type=int, default=1, help="untimed passes first")
    p.add_argument("--repeat", type=int, default=1, help="run each side N times, keep its fastest run")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam peak lr")
    p.add_argument("--warmup_steps", type=int, default=300, help="WarmupLR warmup steps")
    p.add_argument("--grad_clip", type=float, default=5.0, help="max gradient norm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no_dropout", action="store_true", help="all dropout rates 0 (the mean losses then agree to about 0.2%%)"
    )
    p.add_argument("--skip_funasr", action="store_true", help="funasr-lite only")
    p.add_argument("--skip_trainer", action="store_true", help="no lite-trainer run")
    p.add_argument(
        "--interleave",
        action="store_true",
        help="instead of child processes: funasr and lite in this process, passes alternating (for a loaded machine)",
    )
    p.add_argument("--profile", action="store_true", help="torch.profiler op table of the timed steps")
    p.add_argument("--profile_rows", type=int, default=25)
    p.add_argument("--work_dir", default="/tmp/funasr_lite_bench_train")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--child", choices=SIDES, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    tag = f"{os.path.splitext(os.path.basename(args.config))[0]}-{args.size}" + ("-nodrop" if args.no_dropout else "")
    work = os.path.join(args.work_dir, tag)
    if args.child:
        return child_main(args.child, work, args)
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    setup = prepare(args, work)
    print(f"bench_train: setup {time.time() - t0:.0f} s ({work})", flush=True)
    if args.interleave:
        print(interleaved(args, work, setup))
        return 0
    child_argv = list(argv)
    sides = [
        s for s in SIDES if not (s == "funasr" and args.skip_funasr) and not (s == "lite-trainer" and args.skip_trainer)
    ]
    results: Dict[str, Dict[str, Any]] = {}
    failed = False
    for _ in range(args.repeat):
        for side in sides:  # interleaved, so slow phases of machine load hit both sides
            r = run_child(side, work, child_argv)
            if r is None:
                failed = True
                continue
            best = results.get(side)
            if best is None or r["audio_s"] / r["wall_s"] > best["audio_s"] / best["wall_s"]:
                results[side] = r
    text = report(setup, results, args)
    print(text)
    for side in ("funasr", "lite"):
        if results.get(side, {}).get("profile"):
            print(f"\n== {side}: ops by self CPU time (timed steps) ==\n{results[side]['profile']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"setup": setup, "results": results, "table": text}, f, ensure_ascii=False, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
