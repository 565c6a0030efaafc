#!/usr/bin/env python3
"""Finetune the bundled tiny Paraformer (model/) on your own numbers-domain data.

Usage:
    python finetune.py                                   # model/ on exp/mydata -> exp/finetune
    python finetune.py --data_path /path/to/data --output_dir exp/ft_mine --max_epoch 5

DATA_PATH holds train/ and dev/ Kaldi data dirs (wav.scp + text); the README makes a new
in-domain set in exp/mydata with tools/make_demo_corpus.py. The defaults are finetuning
defaults: a small peak lr with a short warmup, a few epochs, and model.pt = the average of the
5 epochs with the best dev CER (a single epoch of this tiny model can miss a token count that the
average does not). run.sh trains the bundled model from scratch and passes its own flags
(exp/init_model, peak lr 2e-3, 300 warmup steps, 100 epochs), so these defaults do not affect it.

Same flags as ../speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch/finetune.py;
only the defaults differ. SpecAug is off because it slows learning on clean synthetic speech.
"""

import os
import sys

from funasr_lite.cli.recipes import finetune_cli

HERE = os.path.dirname(os.path.abspath(__file__))

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    model=os.path.join(HERE, "model"),  # the bundled model dir
    data_path=os.path.join(HERE, "exp", "mydata"),  # your train/ and dev/ (see the README)
    output_dir=os.path.join(HERE, "exp", "finetune"),
    dataset_type="small",
    batch_bins=1500,
    max_epoch=5,
    accum_grad=1,
    keep_nbest_models=[1, 5],
    optim="adam",
    lr=1e-4,
    scheduler="warmuplr",
    scheduler_conf={"warmup_steps": 10},
    specaug="none",
    seed=0,
    num_workers=1,
    final_checkpoint="valid.cer.ave_5best.pb",  # model.pt: chosen on dev CER (what infer_after_finetune.py decodes)
)

if __name__ == "__main__":
    sys.exit(finetune_cli(DEFAULTS))
