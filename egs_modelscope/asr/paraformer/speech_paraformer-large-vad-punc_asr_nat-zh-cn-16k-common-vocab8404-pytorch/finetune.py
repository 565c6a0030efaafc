#!/usr/bin/env python3
"""Finetune the ASR part of the vad-punc Paraformer-large on short utterances (as the plain recipe does).

Usage:
    # data/train and data/dev (or data/validation) each hold wav.scp and text of short utterances
    python finetune.py --data_path ./data --output_dir ./checkpoint
    # a local init model, 10 epochs, a short warmup
    python finetune.py --model /path/to/model_dir --data_path ./data --output_dir ./checkpoint \
        --max_epoch 10 --lr 0.0002 --scheduler_conf '{warmup_steps: 300}'
    # several GPUs (the same flags)
    torchrun --nproc_per_node 2 finetune.py --data_path ./data --output_dir ./checkpoint

The VAD and punctuation models are not trained: infer_after_finetune.py decodes output_dir with the same
--vad_model and --punc_model as infer.py. Re-running the same command after Ctrl-C or kill -9 resumes.
Config precedence: config.yaml < finetune.yaml < the defaults below < command-line flags.
"""

import sys

from funasr_lite.cli.recipes import finetune_cli

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    model="iic/speech_paraformer-large-vad-punc_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    data_path="./data",  # holds train/ and dev/ (or validation/)
    output_dir="./checkpoint",
    dataset_type="small",  # small: in-memory list; large: streamed shards (> ~1000 h)
    batch_bins=2000,  # small: padded LFR frames (60 ms each) per batch; large: milliseconds
    max_epoch=20,
    accum_grad=1,
    keep_nbest_models=[10],  # writes valid.acc.ave_10best.pb (average of the 10 best epochs by dev acc)
    optim="adam",
    lr=0.0002,
    scheduler="warmuplr",
    scheduler_conf={"warmup_steps": 30000},
    specaug="specaug_lfr",
    seed=0,
    num_workers=2,
)

if __name__ == "__main__":
    sys.exit(finetune_cli(DEFAULTS))
