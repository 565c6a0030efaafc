#!/usr/bin/env python3
"""Decode with a checkpoint of exp/finetune (after finetune.py on model/).

Usage:
    python infer_after_finetune.py                        # exp/mydata/test, your held-out split
    python infer_after_finetune.py --data_dir data/test   # the bundled test set: did it stay as good?
    python infer_after_finetune.py --decoding_model_name valid.cer.best.pb

Same flags as ../speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch/infer_after_finetune.py;
only the defaults differ. By default it decodes output_dir/model.pt, the checkpoint finetune.py chose (--final_checkpoint,
recorded in configuration.json): the same weights as infer.py --model output_dir.
Results go to exp/finetune/decode_results/1best_recog/.
"""

import os
import sys

from funasr_lite.cli.recipes import infer_after_finetune_cli

HERE = os.path.dirname(os.path.abspath(__file__))

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    output_dir=os.path.join(HERE, "exp", "finetune"),
    data_dir=os.path.join(HERE, "exp", "mydata", "test"),
    decoding_model_name="model.pt",  # the checkpoint finetune chose (as infer.py --model exp/finetune)
    modelscope_model_name=os.path.join(HERE, "model"),  # the init model: missing files come from it
    required_files=["am.mvn", "configuration.json"],
    batch_size=32,
    batch_seconds=60.0,
    ctc_weight=None,
    beam_size=None,
    device=None,
    ncpu=2,
    nj=1,  # local processes (FunASR 0.x's njob), each with ncpu threads
    max_duration=600.0,
)

if __name__ == "__main__":
    sys.exit(infer_after_finetune_cli(DEFAULTS))
