#!/usr/bin/env python3
"""Decode the bundled numbers-domain test set with the bundled tiny Paraformer (offline).

Usage:
    python infer.py                              # bundled model + bundled test set
    python infer.py --output_dir /tmp/demo_results
    python infer.py --data_dir /path/to/data_dir --model /path/to/model_dir --batch_size 16

Same flags as ../speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch/infer.py;
only the defaults differ. Exit status: 0 all decoded, 2 some utterances failed, 1 could not run.
"""

import os
import sys

from funasr_lite.cli.recipes import infer_cli

HERE = os.path.dirname(os.path.abspath(__file__))

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    model=os.path.join(HERE, "model"),  # the bundled model dir (FunASR 1.x layout)
    data_dir=os.path.join(HERE, "data", "test"),
    output_dir=os.path.join(HERE, "exp", "decode_test"),
    batch_size=32,
    batch_seconds=60.0,
    ctc_weight=None,
    beam_size=None,
    device=None,
    ncpu=2,
    nj=1,  # local processes (FunASR 0.x's njob), each with ncpu threads
    max_duration=600.0,
    checkpoint=None,
    quantize=None,
)

if __name__ == "__main__":
    sys.exit(infer_cli(DEFAULTS))
