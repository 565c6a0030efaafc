#!/usr/bin/env python3
"""Decode long recordings with a finetuned checkpoint of the vad-punc Paraformer-large, with the same VAD and
punctuation models as infer.py.

Usage:
    python infer_after_finetune.py --output_dir ./checkpoint --data_dir ./data/test
    python infer_after_finetune.py --output_dir ./checkpoint --data_dir ./data/test \
        --vad_model /models/speech_fsmn_vad_zh-cn-16k-common-pytorch \
        --punc_model /models/punc_ct-transformer_cn-en-common-vocab471067-large --device cpu

By default it decodes output_dir/model.pt, the checkpoint finetune.py chose. The VAD and punctuation models
are the defaults below (those of infer.py); results go to output_dir/decode_results/1best_recog/ (as infer.py's).
Exit status: 0 all decoded, 2 some recordings failed, 1 the job could not run.
"""

import sys

from funasr_lite.cli.recipes import infer_after_finetune_cli

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    output_dir="./checkpoint",  # the finetune output dir
    data_dir="./data/test",
    decoding_model_name="model.pt",  # a checkpoint file inside output_dir; model.pt = the one finetune chose
    modelscope_model_name="iic/speech_paraformer-large-vad-punc_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    required_files=["am.mvn", "configuration.json"],  # copied from the init model when missing
    vad_model="fsmn-vad",  # the same VAD as infer.py
    punc_model="ct-punc",  # the same punctuation model as infer.py
    batch_size_s=300,
    batch_size_threshold_s=60,
    beam_size=None,  # None: decoding.yaml
    device=None,  # None: cuda if available, else cpu
    ncpu=2,
    max_duration=600.0,  # the longest VAD segment allowed (seconds)
)

if __name__ == "__main__":
    sys.exit(infer_after_finetune_cli(DEFAULTS))
