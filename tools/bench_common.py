"""Shared pieces of the benchmark tools: a paraformer-large-shaped model dir with
random (but non-degenerate) weights, a synthesized data dir, and measurement helpers.

Nothing here imports torch or funasr_lite at module level, so a benchmark child
process can import this module before it starts its import+load clock.

Used by ``tools/bench_infer.py``; see its Usage block.
"""

import hashlib
import json
import os
import random
import resource
import sys
from typing import Any, Dict, List, Optional, Tuple

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)

# FunASR's paraformer-large (speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404)
# architecture, in FunASR 1.x class names; dither 0 so both decoders see identical features.
D_MODEL = 512
LARGE_CONFIG: Dict[str, Any] = {
    "model": "Paraformer",
    "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True,
                   "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75},
    "encoder": "SANMEncoder",
    "encoder_conf": {"output_size": D_MODEL, "attention_heads": 4, "linear_units": 2048, "num_blocks": 50,
                     "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
                     "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True,
                     "kernel_size": 11, "sanm_shfit": 0, "selfattention_layer_type": "sanm"},
    "decoder": "ParaformerSANMDecoder",
    "decoder_conf": {"attention_heads": 4, "linear_units": 2048, "num_blocks": 16, "dropout_rate": 0.1,
                     "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
                     "src_attention_dropout_rate": 0.1, "att_layer_num": 16, "kernel_size": 11, "sanm_shfit": 0},
    "predictor": "CifPredictorV2",
    "predictor_conf": {"idim": D_MODEL, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
    "frontend": "WavFrontend",
    "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                      "lfr_m": 7, "lfr_n": 6, "dither": 0.0},
    "specaug": "SpecAugLFR",
    "specaug_conf": {"apply_time_warp": False, "time_warp_window": 5, "time_warp_mode": "bicubic",
                     "apply_freq_mask": True, "freq_mask_width_range": [0, 30], "lfr_rate": 6,
                     "num_freq_mask": 1, "apply_time_mask": True, "time_mask_width_range": [0, 12],
                     "num_time_mask": 1},
    "tokenizer": "CharTokenizer",
    "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
    "normalize": None,
}

NUM_CJK = 8400  # + <blank> <s> </s> <unk> = 8404 tokens
CMVN_UTTS = 16  # the first utterances of the data dir give the model's am.mvn

# Sentence material in the demo's domain (dates, numbers, times, money).
DIGITS = "零一二三四五六七八九"
PHRASES = ["今天", "明天", "下午", "早上", "晚上", "开会", "出发", "电话号码是", "一共是", "我的",
           "会议室在", "请在", "之前", "到达", "我们", "准备", "第", "号楼", "房间", "点", "分",
           "年", "月", "日", "元", "角", "百", "千", "万", "公里", "小时", "以后", "大家", "好"]


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


def build_data_dir(out_dir: str, num_utts: int, *, seed: int = 0, min_sec: float = 2.0,
                   max_sec: float = 6.0) -> Dict[str, float]:
    """Synthesize ``num_utts`` utterances of ``min_sec..max_sec`` s into a Kaldi data dir.

    Utterance ``i`` depends only on ``(seed, i)``, so a larger ``num_utts`` extends a
    smaller corpus.  Returns ``key -> seconds``.
    """
    import soundfile as sf

    sys.path.insert(0, TOOLS)
    import synth_data  # noqa: E402

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


def cmvn_from_data_dir(data_dir: str, max_utts: int = CMVN_UTTS):
    """Mean/std (D,) of the LFR features of the first ``max_utts`` utterances (dither 0)."""
    import torch

    from funasr_lite.audio import load_audio
    from funasr_lite.datadir import load_data_dir
    from funasr_lite.frontend import WavFrontend, compute_cmvn_stats

    fe = WavFrontend(**LARGE_CONFIG["frontend_conf"])
    dd = load_data_dir(data_dir)
    feats = []
    for key in sorted(dd.good_keys())[:max_utts]:
        wav = load_audio(dd.wavs[key])
        f, n = fe(wav[None], torch.tensor([wav.numel()]))
        feats.append(f[0, : int(n[0])])
    mean, std, _ = compute_cmvn_stats(feats)
    return mean, std


def spread_weights(state: Dict, seed: int = 0) -> Dict:
    """Make random weights give non-empty, varied output.

    Random weights usually make CIF fire never (empty text) or the decoder
    predict one token everywhere.  The predictor's output layer gets small
    weights and a bias of -0.7 (sigmoid ~ 0.33: a token about every third 60 ms
    frame) and the decoder's output layer a large scale so the argmax varies.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    state = dict(state)
    w = state["predictor.cif_output.weight"]
    state["predictor.cif_output.weight"] = torch.randn(w.shape, generator=g) * 0.05
    state["predictor.cif_output.bias"] = torch.full_like(state["predictor.cif_output.bias"], -0.7)
    ow = state["decoder.output_layer.weight"]
    state["decoder.output_layer.weight"] = torch.randn(ow.shape, generator=g) * 0.5
    return state


def _stamp(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def build_model_dir(out_dir: str, data_dir: str, *, seed: int = 0) -> Tuple[str, int]:
    """Write (or reuse) the paraformer-large-shaped model dir; returns (dir, #params).

    Reused when ``out_dir/bench_stamp.json`` matches the config, seed and the CMVN source.
    """
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        cmvn_src = [line.split()[0] for line in f if line.strip()][:CMVN_UTTS]
    stamp = _stamp({"config": LARGE_CONFIG, "seed": seed, "vocab": NUM_CJK, "cmvn": cmvn_src, "v": 1})
    stamp_path = os.path.join(out_dir, "bench_stamp.json")
    if os.path.exists(stamp_path):
        with open(stamp_path, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("stamp") == stamp and os.path.exists(os.path.join(out_dir, "model.pt")):
            return out_dir, int(old["params"])
    import torch

    from funasr_lite.model_init import write_model_dir
    from funasr_lite.paraformer import Paraformer

    tokens = token_list()
    torch.manual_seed(seed)
    model = Paraformer.from_config(LARGE_CONFIG, vocab_size=len(tokens))
    params = sum(p.numel() for p in model.parameters())
    state = spread_weights(model.state_dict(), seed)
    del model
    mean, std = cmvn_from_data_dir(data_dir)
    os.makedirs(out_dir, exist_ok=True)
    write_model_dir(out_dir, LARGE_CONFIG, tokens, cmvn_mean=mean, cmvn_std=std, state_dict=state)
    with open(stamp_path, "w", encoding="utf-8") as f:
        json.dump({"stamp": stamp, "params": params}, f)
    return out_dir, params


def ensure_data_dir(out_dir: str, num_utts: int, seed: int = 0) -> Dict[str, float]:
    """Build the data dir unless ``out_dir/bench_stamp.json`` says it is already there."""
    stamp = _stamp({"num_utts": num_utts, "seed": seed, "v": 1})
    stamp_path = os.path.join(out_dir, "bench_stamp.json")
    if os.path.exists(stamp_path):
        with open(stamp_path, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("stamp") == stamp:
            return {k: float(v) for k, v in old["durations"].items()}
    durations = build_data_dir(out_dir, num_utts, seed=seed)
    with open(stamp_path, "w", encoding="utf-8") as f:
        json.dump({"stamp": stamp, "durations": durations}, f)
    return durations


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
