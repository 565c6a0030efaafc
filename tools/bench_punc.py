#!/usr/bin/env python3
"""Benchmark funasr_lite.punc against FunASR 1.4.16's AutoModel on a ct-punc-c-shaped punctuation model.

The model dir has the released zh-cn model's shapes (272727 x 256 embedding, SANM encoder with 4 blocks,
8 heads, FFN 1024) and FunASR's own random weights; the text is ~2,000 characters of Chinese with some
English words. Rounds alternate A (FunASR) and B (funasr-lite) in one process: each round loads the model
and punctuates the text; the first round of each is a warm-up. Prints per-round and median seconds, and
checks that both give the same text and classes.

    OMP_NUM_THREADS=1 PYTHONPATH=. python tools/bench_punc.py --rounds 3
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.dirname(TOOLS))

CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
ENGLISH = ["hello", "world", "meeting", "ok", "model", "data", "python", "today"]


def make_dir(root: str) -> str:
    from punc_model_dir import build_punc_dir

    tokens = ["<unk>", "<s>", "</s>"] + CJK + ENGLISH
    tokens += [f"w{i}" for i in range(272727 - len(tokens))]  # the released vocabulary's size
    return build_punc_dir(
        os.path.join(root, "punc"), tokens, bias=[-1.0, 1.0, 0.5, 0.3, 0.0, 0.0], d=256, heads=8, ffn=1024, blocks=4
    )


def make_text(n_chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    parts, n = [], 0
    while n < n_chars:
        word = rng.choice(ENGLISH) if rng.random() < 0.05 else rng.choice(CJK)
        parts.append(f" {word} " if len(word) > 1 else word)
        n += len(word)
    return "".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds per side (after one warm-up each)")
    ap.add_argument("--chars", type=int, default=2000, help="length of the text")
    args = ap.parse_args()

    import torch
    from funasr import AutoModel

    from funasr_lite.punc import load_punc

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    text = make_text(args.chars)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_dir(tmp)
        times = {"funasr": [], "funasr_lite": []}
        outputs = {}
        for r in range(args.rounds + 1):
            for side in ("funasr", "funasr_lite"):
                t0 = time.perf_counter()
                if side == "funasr":
                    m = AutoModel(model=model_dir, disable_update=True, disable_pbar=True, disable_log=True, ncpu=1)
                    t1 = time.perf_counter()
                    res = m.generate(input=text)[0]
                    out = (res["text"], [int(i) for i in res["punc_array"]])
                else:
                    m = load_punc(model_dir, device="cpu")
                    t1 = time.perf_counter()
                    res = m.punctuate(text)
                    out = (res.text, res.punc_ids)
                t2 = time.perf_counter()
                del m
                outputs[side] = out
                print(f"round {r} {side:12s} load {t1 - t0:6.2f} s  punctuate {t2 - t1:6.2f} s", flush=True)
                if r > 0:
                    times[side].append((t1 - t0, t2 - t1))
        same = outputs["funasr"] == outputs["funasr_lite"]
        print(f"same text and classes: {same}; {len(outputs['funasr'][1])} units, classes {sorted(set(out[1]))}")
        for side, ts in times.items():
            load, run = statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)
            print(f"median {side:12s} load {load:6.2f} s  punctuate {run:6.2f} s  total {load + run:6.2f} s")
        print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
