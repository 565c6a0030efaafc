#!/usr/bin/env python3
"""Decode a Kaldi data dir with SeACo-Paraformer-large and score it.

Usage:
    # a ModelScope id (needs network, or the model in the local ModelScope cache)
    python infer.py --data_dir ./data/test --output_dir ./results
    # a local model dir (FunASR 1.x or 0.x layout), on the CPU with 4 threads
    python infer.py --model /path/to/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch \
        --data_dir ./data/test --output_dir ./results --device cpu --ncpu 4
    # hotwords: words separated by spaces, or a .txt file with one hotword per line
    python infer.py --data_dir ./data/test --output_dir ./results --hotword "魔搭 达摩院"
    python infer.py --data_dir ./data/test --output_dir ./results --hotword ./hotwords.txt

A data_dir/hotword file (key word word ...) adds per-utterance hotwords.
Writes output_dir/1best_recog/{text,token,score,timestamp,failed}, and text.cer plus an
aligned error report when data_dir/text exists. Exit status: 0 all decoded, 2 some
utterances failed (listed in 1best_recog/failed), 1 the job could not run.
"""

import sys

from funasr_lite.cli.recipes import infer_cli

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    model="iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    data_dir="./data/test",
    output_dir="./results",
    batch_size=32,  # utterances per batch (length-sorted; results do not depend on it)
    batch_seconds=60.0,  # max audio seconds per batch (more is no faster on a CPU, and costs memory)
    ctc_weight=None,  # None: the model dir's decoding.yaml (default 0)
    beam_size=None,  # None: decoding.yaml (default 1 = greedy)
    device=None,  # None: cuda if available, else cpu
    ncpu=2,  # torch CPU threads
    max_duration=600.0,  # longer utterances are refused (split them with a VAD)
    checkpoint=None,  # a weights file inside the model dir, instead of model.pt / model.pb
    hotword=None,  # hotwords separated by spaces, or a .txt file with one per line; None: no hotwords
)

if __name__ == "__main__":
    sys.exit(infer_cli(DEFAULTS))
