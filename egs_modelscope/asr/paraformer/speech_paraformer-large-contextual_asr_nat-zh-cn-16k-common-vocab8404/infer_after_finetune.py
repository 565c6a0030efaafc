#!/usr/bin/env python3
"""Decode a data dir with a checkpoint of a finetune output dir.

Usage:
    python infer_after_finetune.py --output_dir ./checkpoint --data_dir ./data/test
    python infer_after_finetune.py --output_dir ./checkpoint --data_dir ./data/test \
        --decoding_model_name valid.cer.best.pb --device cpu

By default it decodes output_dir/model.pt, the checkpoint finetune.py chose (--final_checkpoint,
recorded in configuration.json): the same weights as infer.py --model output_dir.
Results go to output_dir/decode_results/1best_recog/ (text, token, score, timestamp,
failed, text.cer). The path and sha256 of the checkpoint used are logged.
Exit status: 0 all decoded, 2 some utterances failed, 1 the job could not run.
"""

import sys

from funasr_lite.cli.recipes import infer_after_finetune_cli

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    output_dir="./checkpoint",  # the finetune output dir
    data_dir="./data/test",
    decoding_model_name="model.pt",  # a checkpoint file inside output_dir; model.pt = the one finetune chose
    modelscope_model_name="iic/speech_paraformer-large-contextual_asr_nat-zh-cn-16k-common-vocab8404",
    required_files=["am.mvn", "decoding.yaml", "configuration.json"],  # copied from the init model when missing
    batch_size=32,
    batch_seconds=60.0,
    ctc_weight=None,  # None: decoding.yaml
    beam_size=None,  # None: decoding.yaml
    device=None,  # None: cuda if available, else cpu
    ncpu=2,
    max_duration=600.0,
    hotword=None,  # hotwords separated by spaces, or a .txt file with one per line; None: no hotwords
)

if __name__ == "__main__":
    sys.exit(infer_after_finetune_cli(DEFAULTS))
