"""Shared pieces of the benchmark tools: a paraformer-large-shaped model dir with
random (but non-degenerate) weights, a synthesized data dir (both reused while their stamp
matches), the runner of a benchmark's sides in child processes, and measurement helpers.

Nothing here imports torch or funasr_lite at module level, so a benchmark child
process can import this module before it starts its import+load clock.

A helper module, not a command: ``tools/bench_infer.py`` (decoding, against FunASR's AutoModel) and
``tools/bench_train.py`` (the training step, against FunASR's) import it; run those (each has a real ``--help``).
"""

import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)

# FunASR's paraformer-large (speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404) sizes, applied to
# the demo's config.yaml (same classes and keys); dither 0 so both decoders see identical features.
DEMO_CONF = os.path.join(
    ROOT,
    "egs_modelscope",
    "asr",
    "paraformer",
    "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo",
    "conf",
    "paraformer_tiny.yaml",
)


def large_config() -> Dict[str, Any]:
    """The paraformer-large-shaped config.yaml dict (d=512, 4 heads, FFN 2048, 50/16 blocks)."""
    import yaml

    from model_shapes import scaled_config  # a sibling in tools/; imports torch

    with open(DEMO_CONF, encoding="utf-8") as f:
        return scaled_config(
            yaml.safe_load(f), d_model=512, heads=4, ffn=2048, enc_blocks=50, dec_blocks=16, dither=0.0
        )


NUM_CJK = 8400  # + <blank> <s> </s> <unk> = 8404 tokens
CMVN_UTTS = 16  # the first utterances of the data dir give the model's am.mvn

# Sentence material in the demo's domain (dates, numbers, times, money).
DIGITS = "零一二三四五六七八九"
PHRASES = [
    "今天",
    "明天",
    "下午",
    "早上",
    "晚上",
    "开会",
    "出发",
    "电话号码是",
    "一共是",
    "我的",
    "会议室在",
    "请在",
    "之前",
    "到达",
    "我们",
    "准备",
    "第",
    "号楼",
    "房间",
    "点",
    "分",
    "年",
    "月",
    "日",
    "元",
    "角",
    "百",
    "千",
    "万",
    "公里",
    "小时",
    "以后",
    "大家",
    "好",
]


def token_list() -> List[str]:
    """``<blank> <s> </s>``, 8400 CJK characters from U+4E00, ``<unk>``: 8404 tokens."""
    return ["<blank>", "<s>", "</s>"] + [chr(0x4E00 + i) for i in range(NUM_CJK)] + ["<unk>"]


def make_sentence(rng: random.Random, min_chars: int, max_chars: int) -> str:
    """A random sentence of phrases and digit strings with ``min_chars..max_chars`` characters."""
    target = rng.randint(min_chars, max_chars)
    out = ""
    while len(out) < target:
        if rng.random() < 0.4:
            out += "".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 4)))
        else:
            out += rng.choice(PHRASES)
    return out[:target]


def build_data_dir(
    out_dir: str, num_utts: int, *, seed: int = 0, min_sec: float = 2.0, max_sec: float = 6.0
) -> Dict[str, float]:
    """Synthesize ``num_utts`` utterances of ``min_sec..max_sec`` s into a Kaldi data dir.

    Utterance ``i`` depends only on ``(seed, i)``, so a larger ``num_utts`` extends a
    smaller corpus.  Returns ``key -> seconds``.
    """
    import soundfile as sf

    import synth_data  # a sibling in tools/, imported here because it imports torch

    voices, speeds, pitches = synth_data.DEFAULT_VOICES, [140, 165, 190], [35, 50, 65]
    wav_dir = os.path.join(os.path.abspath(out_dir), "wav")
    os.makedirs(wav_dir, exist_ok=True)
    durations: Dict[str, float] = {}
    scp, text = [], []
    for i in range(num_utts):
        rng = random.Random(seed * 1_000_003 + i)
        voice, speed, pitch = rng.choice(voices), rng.choice(speeds), rng.choice(pitches)
        for _attempt in range(50):
            sentence = make_sentence(rng, 4, 14)
            audio = synth_data.synthesize(sentence, voice=voice, speed=speed, pitch=pitch)
            seconds = len(audio) / 16000
            if min_sec <= seconds <= max_sec:
                break
        else:
            raise RuntimeError(f"could not synthesize a {min_sec}-{max_sec} s utterance for index {i}")
        key = f"bench{i:04d}"
        path = os.path.join(wav_dir, f"{key}.flac")
        sf.write(path, audio, 16000, subtype="PCM_16")
        durations[key] = seconds
        scp.append(f"{key} {path}\n")
        text.append(f"{key} {synth_data.spaced(sentence)}\n")
    with open(os.path.join(out_dir, "wav.scp"), "w", encoding="utf-8") as f:
        f.writelines(scp)
    with open(os.path.join(out_dir, "text"), "w", encoding="utf-8") as f:
        f.writelines(text)
    return durations


def _stamp(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def cached_record(stamp_path: str, stamp: Any) -> Optional[Dict[str, Any]]:
    """The record :func:`write_record` left at ``stamp_path`` for ``stamp``; None when there is none, or it was
    written for another stamp (what it describes must be built again)."""
    if not os.path.exists(stamp_path):
        return None
    with open(stamp_path, encoding="utf-8") as f:
        old = json.load(f)
    return old if old.get("stamp") == stamp else None


def write_record(stamp_path: str, stamp: Any, **record: Any) -> None:
    """Record that what ``stamp`` describes is built, with ``record`` (what a later run reuses)."""
    with open(stamp_path, "w", encoding="utf-8") as f:
        json.dump({"stamp": stamp, **record}, f)


def _model_dir_stamp(out_dir: str, data_dir: str, config: Dict[str, Any], seed: int, **extra: Any):
    """(stamp, stamp path, #params when ``out_dir`` already holds the model dir of this stamp, else None); the
    stamp covers the config, the seed, the vocabulary and the CMVN source utterances of ``data_dir``."""
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        cmvn_src = [line.split()[0] for line in f if line.strip()][:CMVN_UTTS]
    stamp = _stamp({"config": config, "seed": seed, "vocab": NUM_CJK, "cmvn": cmvn_src, "v": 1, **extra})
    stamp_path = os.path.join(out_dir, "bench_stamp.json")
    old = cached_record(stamp_path, stamp)
    built = old is not None and os.path.exists(os.path.join(out_dir, "model.pt"))
    return stamp, stamp_path, int(old["params"]) if built else None


def build_model_dir(out_dir: str, data_dir: str, *, seed: int = 0) -> Tuple[str, int]:
    """Write (or reuse) the paraformer-large-shaped model dir; returns (dir, #params).

    Reused when ``out_dir/bench_stamp.json`` matches the config, seed and the CMVN source.
    """
    config = large_config()
    stamp, stamp_path, params = _model_dir_stamp(out_dir, data_dir, config, seed)
    if params is not None:
        return out_dir, params
    import torch

    from funasr_lite.hub.model_init import data_dir_cmvn, write_model_dir
    from funasr_lite.models.paraformer import Paraformer
    from model_shapes import spread_weights

    tokens = token_list()
    torch.manual_seed(seed)
    model = Paraformer.from_config(config, vocab_size=len(tokens))
    params = sum(p.numel() for p in model.parameters())
    state = spread_weights(model.state_dict(), seed)
    del model
    # wav.scp is sorted by key: its first CMVN_UTTS utterances are cmvn_src
    mean, std, _, _ = data_dir_cmvn(data_dir, config["frontend_conf"], stats_on="lfr", max_utts=CMVN_UTTS)
    os.makedirs(out_dir, exist_ok=True)
    write_model_dir(out_dir, config, tokens, cmvn_mean=mean, cmvn_std=std, state_dict=state)
    write_record(stamp_path, stamp, params=params)
    return out_dir, params


# Hotword models at the sizes of their ModelScope configs (paraformer-zh =
# speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch, and
# speech_paraformer-large-contextual_asr_nat-zh-cn-16k-common-vocab8404): the keys that differ from paraformer-large.
HOTWORD_KINDS = ("seaco", "contextual")
SEACO_NO_BIAS = 8377


def hotword_config(kind: str) -> Dict[str, Any]:
    """The paraformer-large-shaped config turned into a SeacoParaformer or ContextualParaformer one."""
    config = large_config()
    if kind == "seaco":
        config["model"] = "SeacoParaformer"
        config["predictor"] = "CifPredictorV3"
        config["predictor_conf"].update(
            smooth_factor2=0.25, noise_threshold2=0.01, upsample_times=3, use_cif1_cnn=False, upsample_type="cnn_blstm"
        )
        config["model_conf"].update(
            inner_dim=512,
            bias_encoder_type="lstm",
            bias_encoder_bid=False,
            seaco_lsm_weight=0.1,
            seaco_length_normalized_loss=True,
            train_decoder=True,
            NO_BIAS=SEACO_NO_BIAS,
        )
        config["seaco_decoder"] = "ParaformerSANMDecoder"
        config["seaco_decoder_conf"] = dict(
            attention_heads=4,
            linear_units=1024,
            num_blocks=4,
            dropout_rate=0.1,
            positional_dropout_rate=0.1,
            self_attention_dropout_rate=0.1,
            src_attention_dropout_rate=0.1,
            kernel_size=21,
            sanm_shfit=0,
            use_output_layer=False,
            wo_input_layer=True,
        )
    elif kind == "contextual":
        config["model"] = "ContextualParaformer"
        config["decoder"] = "ContextualParaformerDecoder"
        config["model_conf"].update(inner_dim=512, bias_encoder_type="lstm")
    else:
        raise ValueError(f"unknown hotword model kind {kind!r}; one of {HOTWORD_KINDS}")
    return config


def _funasr_model_state(kind: str, config: Dict[str, Any], vocab_size: int, seed: int):
    """Random weights of FunASR's own class for ``kind`` (its parameter names), and the parameter count."""
    from model_shapes import funasr_model

    if kind == "seaco":
        from funasr.models.seaco_paraformer.model import SeacoParaformer as cls

        extra = {"seaco_decoder": config["seaco_decoder"], "seaco_decoder_conf": config["seaco_decoder_conf"]}
    else:
        from funasr.models.contextual_paraformer.model import ContextualParaformer as cls

        extra = {}
    model = funasr_model(cls, config, vocab_size, seed, **extra)
    return model.state_dict(), sum(p.numel() for p in model.parameters())


def spread_hotword_weights(kind: str, state: Dict[str, Any], seed: int) -> Dict[str, Any]:
    """Make the hotword path of random weights matter: SeACo's hotword head says "no bias" at most positions
    (NO_BIAS bias +3) and something else at some; Contextual's hotword attention gets a large share of
    ``bias_output`` and large hotword embeddings."""
    import torch

    g = torch.Generator().manual_seed(seed + 7)
    state = dict(state)
    if kind == "seaco":
        w = state["hotword_output_layer.weight"]
        state["hotword_output_layer.weight"] = torch.randn(w.shape, generator=g) * 0.5
        bias = state["hotword_output_layer.bias"].clone()
        bias[SEACO_NO_BIAS] += 3.0
        state["hotword_output_layer.bias"] = bias
    else:
        w = state["decoder.bias_output.weight"]
        d = w.shape[0]
        state["decoder.bias_output.weight"] = torch.cat([w[:, :d], torch.randn(d, d, 1, generator=g) * 0.1], dim=1)
        state["bias_embed.weight"] = torch.randn(state["bias_embed.weight"].shape, generator=g) * 3
    return state


def build_hotword_model_dir(out_dir: str, data_dir: str, kind: str, *, seed: int = 0) -> Tuple[str, int]:
    """Write (or reuse) a SeACo- or Contextual-large-shaped model dir with weights from FunASR's own class and a
    ``seg_dict`` mapping each character to itself (so hotwords tokenize into characters); returns (dir, #params)."""
    config = hotword_config(kind)
    stamp, stamp_path, params = _model_dir_stamp(out_dir, data_dir, config, seed, kind=kind)
    if params is not None:
        return out_dir, params
    from funasr_lite.hub.model_init import data_dir_cmvn, write_model_dir
    from model_shapes import spread_weights

    tokens = token_list()
    state, params = _funasr_model_state(kind, config, len(tokens), seed)
    state = spread_hotword_weights(kind, spread_weights(state, seed), seed)
    mean, std, _, _ = data_dir_cmvn(data_dir, config["frontend_conf"], stats_on="lfr", max_utts=CMVN_UTTS)
    os.makedirs(out_dir, exist_ok=True)
    seg = {t: [t] for t in tokens[3:-1]}
    write_model_dir(out_dir, config, tokens, cmvn_mean=mean, cmvn_std=std, state_dict=state, seg_dict=seg)
    write_record(stamp_path, stamp, params=params)
    return out_dir, params


def make_hotwords(num: int, seed: int = 0) -> List[str]:
    """``num`` distinct hotwords of 2-4 characters, all in :func:`token_list` (a hotword with a character outside
    it would be dropped by funasr-lite and kept as ``<unk>`` by FunASR, and the two would decode different lists)."""
    rng = random.Random(seed * 7919 + num)
    chars = token_list()[3:-1]
    words: List[str] = []
    seen = set()
    while len(words) < num:
        w = "".join(rng.choice(chars) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def ensure_data_dir(out_dir: str, num_utts: int, seed: int = 0) -> Dict[str, float]:
    """Build the data dir unless ``out_dir/bench_stamp.json`` says it is already there."""
    stamp = _stamp({"num_utts": num_utts, "seed": seed, "v": 1})
    stamp_path = os.path.join(out_dir, "bench_stamp.json")
    old = cached_record(stamp_path, stamp)
    if old is not None:
        return {k: float(v) for k, v in old["durations"].items()}
    durations = build_data_dir(out_dir, num_utts, seed=seed)
    write_record(stamp_path, stamp, durations=durations)
    return durations


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB: ``VmHWM`` of /proc/self/status on Linux.

    Not ``ru_maxrss``: Linux carries that over an exec from the forked parent, so a child started by a
    parent that holds a 2 GB model would report at least 2 GB. Elsewhere ru_maxrss (KiB) is the fallback.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: ``5`` into /proc/self/clear_refs), so that
    :func:`peak_rss_mb` then gives the peak of what follows; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_seconds() -> float:
    """User + system CPU seconds used so far by this process (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's waited-for children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def system_busy_seconds() -> Optional[float]:
    """CPU seconds all processes on the machine have used since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    ticks = [int(v) for v in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def run_child(script: str, name: str, spec: Dict[str, Any], env: Dict[str, str]) -> Dict[str, Any]:
    """Run side ``name`` of benchmark ``script`` in a fresh interpreter with environment ``env``
    (``script --_child NAME --_spec SPEC.json --_result RESULT.json``, output in ``work_dir/logs/NAME.log``).

    Returns the child's result dict plus ``process_s`` (the process's wall seconds) and ``other_cpu_s`` (CPU
    seconds other processes used while it ran: > 0 means the timings are not clean). Raises RuntimeError with
    the log's tail when the child fails."""
    logs = os.path.join(spec["work_dir"], "logs")
    os.makedirs(logs, exist_ok=True)
    spec_path, result_path = os.path.join(logs, f"{name}.spec.json"), os.path.join(logs, f"{name}.result.json")
    log_path = os.path.join(logs, f"{name}.log")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    if os.path.exists(result_path):
        os.unlink(result_path)
    cmd = [sys.executable, os.path.abspath(script), "--_child", name, "--_spec", spec_path, "--_result", result_path]
    busy0, own0 = system_busy_seconds(), children_cpu_seconds()
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    busy1, own1 = system_busy_seconds(), children_cpu_seconds()
    if proc.returncode != 0 or not os.path.exists(result_path):
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{name} child failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    with open(result_path, encoding="utf-8") as f:
        result = json.load(f)
    result["process_s"] = wall
    result["other_cpu_s"] = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0))
    return result


def child_main(
    children: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]], name: str, spec_path: str, result_path: str
) -> int:
    """The child side of :func:`run_child`: run ``children[name]`` on the spec, write its result."""
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    result = children[name](spec)
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    return 0


def read_scp(data_dir: str) -> Dict[str, str]:
    """key -> audio path of ``data_dir/wav.scp``, relative paths resolved against ``data_dir``."""
    return {
        k: p if os.path.isabs(p) else os.path.join(data_dir, p)
        for k, p in read_kv(os.path.join(data_dir, "wav.scp")).items()
    }


def write_absolute_scp(data_dir: str, path: str) -> str:
    """Write ``data_dir``'s wav.scp to ``path`` with absolute audio paths (FunASR reads a wav.scp's relative paths
    from its cwd); return ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{k} {p}\n" for k, p in read_scp(data_dir).items())
    return path


def sync(device: str) -> None:
    """Wait for ``device``'s queued work (a CUDA device; nothing to wait for on the CPU)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def reset_gpu_peak(device: str) -> None:
    """Restart ``device``'s peak-memory counter (a CUDA device; nothing on the CPU)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def gpu_peak_mb(device: str) -> Optional[float]:
    """Peak memory allocated on ``device`` since the last reset (MiB); None on the CPU."""
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else None


def read_kv(path: str) -> Dict[str, str]:
    """A Kaldi-style ``key value`` file (``wav.scp``, ``text``, a decode's ``timestamp``): key -> the rest of
    the line after the first space ("" for a key alone); lines without a key are skipped."""
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 1)
            if parts[0]:
                out[parts[0]] = parts[1] if len(parts) > 1 else ""
    return out


def format_table(rows: List[Tuple[str, str, str, str]]) -> str:
    """Left-aligned first column, right-aligned others."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """a / b, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def main(argv: Optional[List[str]] = None) -> int:
    """``python tools/bench_common.py [--help]``: say what this module is and where the benchmarks are."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="bench_common.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    parser.print_help()
    print("\nnothing to run here: use python tools/bench_infer.py or python tools/bench_train.py")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
