"""LEARNING TEST (slow: about 1-2 minutes on 2 CPU cores): does training actually learn?

A tiny Paraformer (d=64, 2 encoder blocks, 1 decoder block, about 0.2 M parameters; the demo
config ``conf/paraformer_tiny.yaml`` shrunk) is trained from a fresh random init model dir with
:func:`funasr_lite.train.finetune.finetune` on a small subset of the bundled synthesized Mandarin demo
corpus: the 160 train utterances richest in digits (a narrow sub-domain: about 120 characters),
20 dev utterances within that vocabulary for per-epoch validation, and 20 held-out test
utterances decoded before and after training with :func:`funasr_lite.decode.transcribe.load_model`.

Budget: bounded by epochs (12), never by wall clock, so a loaded machine only makes it slower.
Seeded; with the same thread count the run is bit-reproducible on CPU.

Measured (2 threads, seeds 0-3): the random init model's held-out CER is 173-195% (it emits
many wrong tokens); dev CER by epoch 86-89% after epoch 1, 20-24% after epoch 12 (best 20-22%);
held-out CER of the final model.pt 18-24%; 28-93 s of training depending on machine load.
With ``lr=0`` (training does nothing) dev CER stays at 186% and held-out at 173%, train loss at
5.0, and the test fails.  The thresholds below leave about a 2x margin either way.
"""

import copy
import os
import time

import pytest
import torch
import yaml

from funasr_lite.config.merge import flags_layer
from funasr_lite.decode.cer import score_corpus
from funasr_lite.decode.transcribe import load_model
from funasr_lite.hub.model_init import data_dir_cmvn, token_list_from_texts, write_model_dir
from funasr_lite.train.finetune import finetune
from funasr_lite.train.options import FinetuneOptions

pytestmark = pytest.mark.slow  # trains a tiny Paraformer for many steps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)

NUM_TRAIN, NUM_DEV, NUM_TEST = 160, 20, 20
MAX_EPOCH = 12
LR = 2e-3
SEED = 0
# CER thresholds in percent; an untrained model sits at ~100
INIT_CER_MIN = 90.0
TRAINED_CER_MAX = 45.0

DIGITS = set("零幺一二三四五六七八九十")


def _read_split(split):
    """[(key, text, absolute wav path)] of the bundled demo corpus, in file order."""
    d = os.path.join(DEMO, "data", split)
    with open(os.path.join(d, "text"), encoding="utf-8") as f:
        text = dict(line.rstrip("\n").split(maxsplit=1) for line in f if line.strip())
    with open(os.path.join(d, "wav.scp"), encoding="utf-8") as f:
        scp = dict(line.rstrip("\n").split(maxsplit=1) for line in f if line.strip())
    return [(k, text[k], os.path.join(d, scp[k])) for k in text]


def _digit_share(text):
    units = text.split()
    return sum(u in DIGITS for u in units) / len(units)


def _select(items, n, vocab=None):
    """The ``n`` utterances with the largest share of digit characters (stable), within ``vocab``."""
    if vocab is not None:
        items = [it for it in items if set(it[1].split()) <= vocab]
    return sorted(items, key=lambda it: -_digit_share(it[1]))[:n]


def _write_data_dir(path, items):
    os.makedirs(path)
    with open(os.path.join(path, "text"), "w", encoding="utf-8") as f:
        f.writelines(f"{k} {t}\n" for k, t, _ in items)
    with open(os.path.join(path, "wav.scp"), "w", encoding="utf-8") as f:
        f.writelines(f"{k} {w}\n" for k, _, w in items)


def _tiny_config():
    """The demo's config, shrunk: d=64, 2 encoder / 1 decoder blocks, FFN 256, no dropout, no SpecAug."""
    with open(os.path.join(DEMO, "conf", "paraformer_tiny.yaml"), encoding="utf-8") as f:
        cfg = copy.deepcopy(yaml.safe_load(f))
    d, ffn = 64, 256
    cfg["encoder_conf"].update(
        output_size=d,
        attention_heads=4,
        linear_units=ffn,
        num_blocks=2,
        dropout_rate=0.0,
        positional_dropout_rate=0.0,
        attention_dropout_rate=0.0,
    )
    cfg["decoder_conf"].update(
        attention_heads=4,
        linear_units=ffn,
        num_blocks=1,
        att_layer_num=1,
        dropout_rate=0.0,
        positional_dropout_rate=0.0,
        self_attention_dropout_rate=0.0,
        src_attention_dropout_rate=0.0,
    )
    cfg["predictor_conf"]["idim"] = d
    return cfg


def _heldout_cer(model_dir, items, checkpoint=None):
    """Corpus CER (percent) of greedy decoding ``items`` with a model dir."""
    asr = load_model(model_dir, device="cpu", checkpoint=checkpoint)
    results = asr.transcribe([w for _, _, w in items], batch_size=len(items))
    hyps = {k: r["text"] for (k, _, _), r in zip(items, results)}
    return 100.0 * score_corpus({k: t for k, t, _ in items}, hyps).cer


def run_learning(work_dir, lr=LR, max_epoch=MAX_EPOCH, seed=SEED):
    """Build the data subset and init model under ``work_dir``, train, decode; returns the figures."""
    train = _select(_read_split("train"), NUM_TRAIN)
    vocab = {u for _, t, _ in train for u in t.split()}
    dev = _select(_read_split("dev"), NUM_DEV, vocab)
    test = _select(_read_split("test"), NUM_TEST, vocab)
    data = os.path.join(work_dir, "data")
    _write_data_dir(os.path.join(data, "train"), train)
    _write_data_dir(os.path.join(data, "dev"), dev)

    cfg = _tiny_config()
    init = os.path.join(work_dir, "init_model")
    mean, std, _, _ = data_dir_cmvn(os.path.join(data, "train"), cfg["frontend_conf"])
    write_model_dir(init, cfg, token_list_from_texts(t for _, t, _ in train), cmvn_mean=mean, cmvn_std=std, seed=seed)
    init_cer = _heldout_cer(init, test)

    start = time.time()
    out = os.path.join(work_dir, "exp")
    flags = dict(
        dataset_type="small",
        batch_bins=400,
        max_epoch=max_epoch,
        accum_grad=1,
        keep_nbest_models=[1],
        optim="adam",
        lr=lr,
        scheduler="warmuplr",
        scheduler_conf={"warmup_steps": 100},
        specaug="none",
        seed=seed,
        num_workers=0,
    )
    summary = finetune(
        FinetuneOptions(model=init, data_path=data, output_dir=out, device="cpu", progress_bar=False),
        [("test settings", flags_layer(flags))],
    )
    train_seconds = time.time() - start
    final_cer = _heldout_cer(out, test)  # model.pt = the dev-selected checkpoint (valid.acc.ave.pb)
    return {
        "summary": summary,
        "records": summary["records"],
        "init_cer": init_cer,
        "final_cer": final_cer,
        "train_seconds": train_seconds,
        "num_train": len(train),
        "num_dev": len(dev),
        "num_test": len(test),
        "vocab": len(vocab),
    }


@pytest.fixture
def two_threads():
    """Train with 2 threads (the reference setting) whatever the machine has; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


def test_learning_tiny_paraformer_dev_cer_falls(tmp_path, two_threads):
    """LEARNING TEST: from ~100% CER to far lower in 12 short epochs; fails if training does nothing."""
    res = run_learning(str(tmp_path))
    recs = res["records"]
    curve = ", ".join(f"{r['epoch']}:{r['dev_cer']:.1f}" for r in recs)
    msg = (
        f"init held-out CER {res['init_cer']:.1f}%, final held-out CER {res['final_cer']:.1f}%, "
        f"dev CER by epoch [{curve}], train loss {recs[0]['train_loss']:.3f} -> {recs[-1]['train_loss']:.3f}, "
        f"{res['train_seconds']:.0f} s training ({res['num_train']} train / {res['num_dev']} dev / "
        f"{res['num_test']} test utts, {res['vocab']} chars)"
    )
    print(msg)
    assert (res["num_train"], res["num_dev"], res["num_test"]) == (NUM_TRAIN, NUM_DEV, NUM_TEST), msg
    assert len(recs) == MAX_EPOCH, msg
    # before: the fresh model knows nothing
    assert res["init_cer"] >= INIT_CER_MIN, msg
    # after: dev CER (greedy decoding inside the trainer) and held-out CER of the final model.pt
    assert recs[-1]["dev_cer"] < TRAINED_CER_MAX, msg
    assert min(r["dev_cer"] for r in recs) < TRAINED_CER_MAX - 10, msg
    assert res["final_cer"] < TRAINED_CER_MAX, msg
    # the losses moved the right way
    assert recs[-1]["train_loss"] < 0.5 * recs[0]["train_loss"], msg
    assert recs[-1]["dev_acc"] > recs[0]["dev_acc"] + 0.3, msg
