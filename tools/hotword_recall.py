#!/usr/bin/env python3
"""Hotword recall of a tiny hotword model on words from outside its training domain.

Usage:
    # everything with the defaults (about 6 min on 2 idle CPU cores; 15+ when they are busy): corpus,
    # training (40 epochs), decoding, table
    python tools/hotword_recall.py --work /tmp/hotword_recall
    # a quick end-to-end check of the pipeline (results mean little)
    python tools/hotword_recall.py --work /tmp/hr_quick --max_epoch 1 --test_per_word 1 --num_demo_train 40
    # SeACo instead of Contextual (once SeacoParaformer is registered)
    python tools/hotword_recall.py --work /tmp/hotword_recall_seaco --model_class SeacoParaformer
    # redo only the decoding of an existing run
    python tools/hotword_recall.py --work /tmp/hotword_recall --stage decode

What it does, in WORK/:

1. ``data/``: synthesizes (espeak-ng, ``tools/make_demo_corpus.py``'s renderer) sentences that put each
   of ``--hotwords`` (names, places, products that the numbers demo never says) into carriers of the
   demo's grammar (``{hw}的电话是{phone}``, ``我们{when}去{hw}``, ...): ``--train_per_word`` sentences per
   word for training, 1 per word for dev, ``--test_per_word`` held-out ones (other sentences; another
   voice set) for test. ``train`` = the first ``--num_demo_train`` utterances of the bundled demo corpus +
   the hotword sentences; ``dev`` = 30 demo dev utterances + the hotword dev ones; ``test_hotword`` = the
   held-out hotword sentences; ``test_demo`` = the bundled demo test set (in-domain, no hotwords).
2. ``init_model/``: the bundled demo Paraformer turned into a ``--model_class`` model: its weights are kept
   (for Contextual, the biased last decoder block starts as the plain one: ``bias_output = [I | 0]``), the
   vocabulary grows by the hotwords' new characters (new rows random), a ``seg_dict`` maps each character
   to itself (so hotwords tokenize into characters), and the new hotword modules start random.
3. ``exp/``: finetunes it with ``funasr_lite.train.finetune.finetune`` (hotwords sampled from each batch's
   targets, as FunASR trains these classes).
4. decodes ``test_hotword`` and ``test_demo`` with ``funasr_lite.decode.infer.run_inference``, without and
   with ``--hotword`` (a file of all ``--hotwords``), and prints recall and CER.

Recall = (occurrences of the hotwords in the references that are also in the hypothesis) / (occurrences in
the references), counted per utterance and word as min(#in ref, #in hyp). CER is the data-dir job's
(``text.cer``). The table is also written to ``WORK/recall.json``.
"""

import argparse
import json
import os
import random
import shutil
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from bench_common import read_kv  # a sibling in tools/ (no torch import at module level)

if TYPE_CHECKING:
    import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)

# People, places and products that the numbers demo never says.
DEFAULT_HOTWORDS = ["诸葛亮", "李白", "西湖", "故宫", "华为", "茅台", "鼓浪屿", "熊猫"]

# Carriers: ``{hw}`` is the hotword, other fields are slots of tools/make_demo_corpus.py's grammar.
# Every character outside ``{...}`` must be in the demo model's vocabulary (checked).
TEMPLATES = [
    "{hw}的电话是{phone}",
    "我们{when}去{hw}",
    "{hw}在{time}到",
    "请给{hw}打电话",
    "{hw}一共是{money}",
    "{when}{time}在{hw}开会",
    "{hw}的订单号是{code:4-8}",
    "我要去{hw}",
    "{hw}的房间是{room}",
    "{when}下午去{hw}",
]
TRAIN_VOICES = ["cmn-latn-pinyin", "cmn-latn-pinyin+f2", "cmn-latn-pinyin+m3", "cmn-latn-pinyin+f4"]
TEST_VOICES = ["cmn-latn-pinyin+m1", "cmn-latn-pinyin+f3", "cmn-latn-pinyin+m6", "cmn-latn-pinyin+f5"]


# ----------------------------------------------------------------------------- scoring


def hotword_hits(ref: str, hyp: str, hotwords: Sequence[str]) -> Tuple[int, int]:
    """(occurrences of ``hotwords`` in ``ref`` found in ``hyp``, occurrences in ``ref``).

    Spaces are ignored; per word, the hits are ``min(count in ref, count in hyp)`` (non-overlapping counts).
    """
    ref, hyp = ref.replace(" ", ""), hyp.replace(" ", "")
    found = total = 0
    for w in hotwords:
        n = ref.count(w)
        total += n
        found += min(n, hyp.count(w))
    return found, total


def recall(refs: Dict[str, str], hyps: Dict[str, str], hotwords: Sequence[str]) -> Tuple[int, int]:
    """Corpus totals of :func:`hotword_hits`; a missing hypothesis finds nothing."""
    found = total = 0
    for key, ref in refs.items():
        f, t = hotword_hits(ref, hyps.get(key, ""), hotwords)
        found, total = found + f, total + t
    return found, total


# ----------------------------------------------------------------------------- stage 1: data


def demo_vocab() -> List[str]:
    with open(os.path.join(DEMO, "model", "tokens.json"), encoding="utf-8") as f:
        return json.load(f)


def hotword_sentences(hotwords: Sequence[str], per_word: Dict[str, int], seed: int) -> Dict[str, List[Tuple[str, str]]]:
    """Per split, ``(hotword, sentence)`` pairs; no sentence is in two splits."""
    import make_demo_corpus as mdc  # a sibling in tools/

    vocab = set(demo_vocab())
    for t in TEMPLATES:
        outside = set(mdc.SLOT_RE.sub("", t.replace("{hw}", ""))) - vocab
        if outside:
            raise ValueError(f"template {t!r}: characters {sorted(outside)} are not in the demo vocabulary")
    rng = random.Random(seed)
    seen = set()
    out: Dict[str, List[Tuple[str, str]]] = {split: [] for split in per_word}
    for split, n in per_word.items():
        for w in hotwords:
            for _ in range(n):
                for _try in range(100):
                    text = mdc.fill(rng.choice(TEMPLATES).replace("{hw}", w), rng)
                    if text not in seen:
                        break
                seen.add(text)
                out[split].append((w, text))
    return out


def _copy_demo_split(src: str, n: Optional[int]) -> Tuple[List[str], List[str]]:
    """``(wav.scp lines with absolute paths, text lines)`` of the first ``n`` utterances of a demo split."""
    scp = read_kv(os.path.join(src, "wav.scp"))
    text = read_kv(os.path.join(src, "text"))
    keys = sorted(scp)[:n]
    return [f"{k} {os.path.join(src, scp[k])}\n" for k in keys], [f"{k} {text[k]}\n" for k in keys]


def make_data(work: str, args: argparse.Namespace) -> None:
    import make_demo_corpus as mdc
    from funasr_lite.utils.fileio import atomic_write_text

    per_word = {"train": args.train_per_word, "dev": 1, "test": args.test_per_word}
    sents = hotword_sentences(args.hotwords, per_word, args.seed)
    raw = os.path.join(work, "data", "hotword_raw")
    for split, voices in (("train", TRAIN_VOICES), ("dev", TRAIN_VOICES), ("test", TEST_VOICES)):
        opts = mdc.CorpusOptions(num_train=1, num_dev=0, num_test=0, seed=args.seed, voices=voices, nj=args.nj)
        jobs = mdc.plan({split: [s for _, s in sents[split]]}, raw, opts)[split]
        for j in jobs:
            j.key = "hw_" + j.key
            j.path = os.path.join(raw, split, "wav", j.key + ".flac")
        mdc.write_split(os.path.join(raw, split), jobs, args.nj)
    n_demo = {"train": args.num_demo_train, "dev": 30, "test": None}
    for split, name in (("train", "train"), ("dev", "dev"), ("test", "test_demo")):
        scp, text = _copy_demo_split(os.path.join(DEMO, "data", split), n_demo[split])
        if split != "test":
            hs, ht = _copy_demo_split(os.path.join(raw, split), None)
            scp, text = scp + hs, text + ht
        out = os.path.join(work, "data", name)
        os.makedirs(out, exist_ok=True)
        atomic_write_text(os.path.join(out, "wav.scp"), "".join(scp))
        atomic_write_text(os.path.join(out, "text"), "".join(text))
    out = os.path.join(work, "data", "test_hotword")
    os.makedirs(out, exist_ok=True)
    scp, text = _copy_demo_split(os.path.join(raw, "test"), None)
    atomic_write_text(os.path.join(out, "wav.scp"), "".join(scp))
    atomic_write_text(os.path.join(out, "text"), "".join(text))
    atomic_write_text(os.path.join(work, "hotwords.txt"), "".join(w + "\n" for w in args.hotwords))


# ----------------------------------------------------------------------------- stage 2: init model


def _grow_rows(old: "torch.Tensor", old_tokens: List[str], tokens: List[str], gen, scale: float) -> "torch.Tensor":
    """Rows of a (V, ...) tensor re-indexed to ``tokens``; rows of new tokens are random * ``scale``."""
    import torch

    index = {t: i for i, t in enumerate(old_tokens)}
    new = torch.randn((len(tokens),) + tuple(old.shape[1:]), generator=gen) * scale
    for i, t in enumerate(tokens):
        if t in index:
            new[i] = old[index[t]]
    return new


def make_init_model(work: str, args: argparse.Namespace) -> str:
    """The demo model as ``args.model_class`` with the hotwords' characters added; returns its dir."""
    import torch
    import yaml

    from funasr_lite.config.schema import ModelConfig
    from funasr_lite.hub.model_dir import load_state_dict
    from funasr_lite.hub.model_init import write_model_dir
    from funasr_lite.models.registry import build_model

    with open(os.path.join(DEMO, "model", "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    d = config["encoder_conf"]["output_size"]
    config["model"] = args.model_class
    if args.model_class == "ContextualParaformer":
        config["decoder"] = "ContextualParaformerDecoder"
        config["model_conf"]["inner_dim"] = d
    old_tokens = demo_vocab()
    new_chars = sorted({c for w in args.hotwords for c in w} - set(old_tokens))
    tokens = old_tokens[:-1] + new_chars + [old_tokens[-1]]  # <unk> stays last
    if args.model_class == "SeacoParaformer":
        # SeACo extends BiCif: CifPredictorV3 (its timestamp head starts random); the hotword head's
        # "no hotword here" class is <unk>; the hotword decoder is paraformer-zh's, at the demo's width
        config["predictor"] = "CifPredictorV3"
        config["predictor_conf"].update(
            smooth_factor2=0.25, noise_threshold2=0.01, upsample_times=3, use_cif1_cnn=False, upsample_type="cnn_blstm"
        )
        config["model_conf"].update(
            inner_dim=d,
            bias_encoder_type="lstm",
            seaco_lsm_weight=0.1,
            seaco_length_normalized_loss=True,
            NO_BIAS=len(tokens) - 1,
        )
        config["seaco_decoder"] = "ParaformerSANMDecoder"
        config["seaco_decoder_conf"] = dict(
            attention_heads=config["decoder_conf"]["attention_heads"],
            linear_units=config["decoder_conf"]["linear_units"],
            num_blocks=4,
            kernel_size=config["decoder_conf"]["kernel_size"],
            sanm_shfit=0,
            use_output_layer=False,
            wo_input_layer=True,
        )
    model = build_model(ModelConfig.from_dict(config), vocab_size=len(tokens))
    state = model.state_dict()
    old = load_state_dict(os.path.join(DEMO, "model", "model.pt"))
    g = torch.Generator().manual_seed(args.seed)
    renamed = dict(old)
    if args.model_class == "ContextualParaformer":
        last = config["decoder_conf"]["att_layer_num"] - 1
        prefix = f"decoder.decoders.{last}."
        renamed = {
            (("decoder.last_decoder." + k[len(prefix) :]) if k.startswith(prefix) else k): v for k, v in old.items()
        }
        # the encoder-attention half of bias_output passes it on unchanged (the demo's decoder); the
        # hotword half keeps torch's default init, so the hotword attention is trained from the start
        w = state["decoder.bias_output.weight"].clone()
        w[:, :d, 0] = torch.eye(d)
        state["decoder.bias_output.weight"] = w
    vocab_rows = {"decoder.embed.0.weight", "decoder.output_layer.weight", "decoder.output_layer.bias"}
    for k, v in renamed.items():
        if k in vocab_rows:
            scale = 0.0 if k.endswith("bias") else float(v.std())
            state[k] = _grow_rows(v, old_tokens, tokens, g, scale)
            if k.endswith("bias"):
                state[k][[tokens.index(c) for c in new_chars]] = float(v.mean())
        elif k in state and state[k].shape == v.shape:
            state[k] = v
    if "hotword_output_layer.weight" in state:  # SeACo's hotword head starts as the decoder's output layer
        state["hotword_output_layer.weight"] = state["decoder.output_layer.weight"].clone()
        state["hotword_output_layer.bias"] = state["decoder.output_layer.bias"].clone()
    if "bias_embed.weight" in state:  # hotword embeddings start as the decoder's token embeddings
        state["bias_embed.weight"] = state["decoder.embed.0.weight"].clone()
    from funasr_lite.data.frontend import load_cmvn

    cmvn = load_cmvn(os.path.join(DEMO, "model", "am.mvn"))
    out = os.path.join(work, "init_model")
    seg = {t: [t] for t in tokens if len(t) == 1 and "\u4e00" <= t <= "\u9fff"}
    write_model_dir(out, config, tokens, cmvn_mean=-cmvn[0], cmvn_std=1.0 / cmvn[1], state_dict=state, seg_dict=seg)
    shutil.copy(os.path.join(DEMO, "model", "am.mvn"), os.path.join(out, "am.mvn"))  # the demo's, byte for byte
    print(f"init model: {out}: {len(tokens)} tokens ({len(new_chars)} new: {''.join(new_chars)})", flush=True)
    return out


# ----------------------------------------------------------------------------- stage 3-4


def train(work: str, init: str, args: argparse.Namespace) -> str:
    from funasr_lite.config.merge import flags_layer
    from funasr_lite.train.finetune import finetune
    from funasr_lite.train.options import FinetuneOptions

    out = os.path.join(work, "exp")
    flags = dict(
        optim="adam",
        lr=args.lr,
        scheduler="warmuplr",
        scheduler_conf='{"warmup_steps": 30}',
        batch_bins=args.batch_bins,
        max_epoch=args.max_epoch,
        keep_nbest_models=[1, min(3, args.max_epoch)],
        num_workers=0,
        **(
            {"specaug": "none"}
            if args.specaug == "none"
            else {
                "specaug": "SpecAugLFR",
                # paraformer-large's SpecAugLFR settings with two time masks: masking a word now and then makes
                # the decoder lean on the hotword context
                "specaug_conf": "{apply_time_warp: false, freq_mask_width_range: [0, 30], lfr_rate: 6, "
                "num_freq_mask: 1, time_mask_width_range: [0, 12], num_time_mask: 2}",
            }
        ),
        seed=args.seed,
    )
    opts = FinetuneOptions(
        model=init,
        data_path=os.path.join(work, "data"),
        output_dir=out,
        progress_bar=False,
        device="cpu",
        final_checkpoint=f"valid.acc.ave_{min(3, args.max_epoch)}best.pb",
    )
    t = time.perf_counter()
    res = finetune(opts, [("hotword_recall.py", flags_layer(flags))])
    print(f"trained {res['epochs']} epochs, {res['step']} steps in {time.perf_counter() - t:.0f} s: {out}", flush=True)
    return out


def decode(work: str, model_dir: str, args: argparse.Namespace) -> List[Dict]:
    from funasr_lite.decode.infer import run_inference
    from funasr_lite.decode.options import InferOptions
    from funasr_lite.decode.transcribe import load_model

    asr = load_model(model_dir, device="cpu")
    rows = []
    hotword_file = os.path.join(work, "hotwords.txt")
    for test in ("test_hotword", "test_demo"):
        data_dir = os.path.join(work, "data", test)
        refs = read_kv(os.path.join(data_dir, "text"))
        for hw in (None, hotword_file):
            out = os.path.join(work, "decode", f"{test}_{'hotword' if hw else 'plain'}")
            opts = InferOptions(model=model_dir, data_dir=data_dir, output_dir=out, device="cpu", ncpu=1, hotword=hw)
            res = run_inference(opts, asr=asr)
            hyps = read_kv(os.path.join(res.result_dir, "text"))
            found, total = recall(refs, hyps, args.hotwords)
            rows.append(
                {
                    "test": test,
                    "hotword": hw is not None,
                    "utts": len(refs),
                    "found": found,
                    "occurrences": total,
                    "recall": found / total if total else None,
                    "cer": res.cer_summary,
                }
            )
    return rows


def table(rows: List[Dict]) -> str:
    lines = ["| test set | --hotword | utts | hotword recall | CER (text.cer) |", "|---|---|---|---|---|"]
    for r in rows:
        rec = "-" if r["recall"] is None else f"{100 * r['recall']:.1f}% ({r['found']}/{r['occurrences']})"
        lines.append(f"| {r['test']} | {'yes' if r['hotword'] else 'no'} | {r['utts']} | {rec} | {r['cer']} |")
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--work", required=True, help="work dir (data/, init_model/, exp/, decode/, recall.json)")
    p.add_argument("--model_class", default="ContextualParaformer", choices=["ContextualParaformer", "SeacoParaformer"])
    p.add_argument("--hotwords", nargs="+", default=DEFAULT_HOTWORDS, help="the out-of-domain words")
    p.add_argument("--train_per_word", type=int, default=3, help="training sentences per hotword")
    p.add_argument("--test_per_word", type=int, default=5, help="held-out test sentences per hotword")
    p.add_argument("--num_demo_train", type=int, default=300, help="demo corpus training utterances used")
    p.add_argument("--max_epoch", type=int, default=40, help="finetuning epochs")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (Adam, WarmupLR over 30 steps); default 2e-3 for Contextual, 5e-4 for SeACo "
        "(whose loss weighs the decoder's by seaco_weight 0.01: at 2e-3 its dev CER rose from 25%% to 57%%)",
    )
    p.add_argument("--specaug", default="none", choices=["none", "lfr"], help="SpecAugment in training")
    p.add_argument("--batch_bins", type=int, default=800, help="padded LFR frames per training batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the sentences, voices, new weights and training")
    p.add_argument("--nj", type=int, default=2, help="synthesis processes")
    p.add_argument("--stage", default="all", choices=["all", "decode"], help="decode: reuse WORK/exp and decode only")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.lr is None:
        args.lr = 2e-3 if args.model_class == "ContextualParaformer" else 5e-4
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see funasr_lite/cli/__init__.py)
    sys.path.insert(0, TOOLS)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    t0 = time.perf_counter()
    if args.stage == "all":
        make_data(work, args)
        print(f"data: {work}/data ({time.perf_counter() - t0:.0f} s)", flush=True)
        init = make_init_model(work, args)
        train(work, init, args)
    rows = decode(work, os.path.join(work, "exp"), args)
    print(f"\n{args.model_class}, hotwords: {' '.join(args.hotwords)}")
    print(table(rows))
    with open(os.path.join(work, "recall.json"), "w", encoding="utf-8") as f:
        json.dump({"args": vars(args), "rows": rows}, f, ensure_ascii=False, indent=1)
    print(f"total {time.perf_counter() - t0:.0f} s; JSON: {os.path.join(work, 'recall.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
