#!/usr/bin/env python3
"""Train the tiny numbers-domain Paraformer from a fresh init model dir (see run.sh).

Usage:
    python finetune.py                                   # exp/init_model on data/ -> exp/finetune
    python finetune.py --max_epoch 5 --output_dir /tmp/ft

Same flags as ../speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch/finetune.py;
only the defaults differ: a short warmup and a high peak lr suit a small model trained
from scratch (FunASR's 30000-step warmup would still be warming up at the end), and
SpecAug is off because it slows learning on clean synthetic speech.
"""

import os
import sys

from funasr_lite.cli.recipes import finetune_cli

HERE = os.path.dirname(os.path.abspath(__file__))

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    model=os.path.join(HERE, "exp", "init_model"),
    data_path=os.path.join(HERE, "data"),
    output_dir=os.path.join(HERE, "exp", "finetune"),
    dataset_type="small",
    batch_bins=1500,
    max_epoch=100,
    accum_grad=1,
    keep_nbest_models=[1, 5],
    optim="adam",
    lr=0.002,
    scheduler="warmuplr",
    scheduler_conf={"warmup_steps": 300},
    specaug="none",
    seed=0,
    num_workers=1,
    final_checkpoint="valid.cer.ave_5best.pb",  # model.pt: chosen on dev CER (what infer_after_finetune.py decodes)
)

if __name__ == "__main__":
    sys.exit(finetune_cli(DEFAULTS))
