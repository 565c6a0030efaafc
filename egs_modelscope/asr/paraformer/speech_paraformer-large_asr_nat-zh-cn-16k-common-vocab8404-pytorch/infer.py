#!/usr/bin/env python3
"""Decode a Kaldi data dir with Paraformer-large and score it.

Usage:
    # a ModelScope id (needs network, or the model in the local ModelScope cache)
    python infer.py --data_dir ./data/test --output_dir ./results
    # a local model dir (FunASR 1.x or 0.x layout), on the CPU with 4 threads
    python infer.py --model /path/to/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch \
        --data_dir ./data/test --output_dir ./results --device cpu --ncpu 4
    # beam search with CTC scores (models with a CTC head only)
    python infer.py --data_dir ./data/test --output_dir ./results --beam_size 10 --ctc_weight 0.3
    # 4 CPU processes with 2 threads each, or one process per GPU (see the README for several machines)
    python infer.py --data_dir ./data/test --output_dir ./results --device cpu --nj 4 --ncpu 2
    torchrun --standalone --nproc_per_node 8 infer.py --data_dir ./data/test --output_dir ./results

Writes output_dir/1best_recog/{text,token,score,timestamp,failed}, and text.cer plus an
aligned error report when data_dir/text exists. Exit status: 0 all decoded, 2 some
utterances failed (listed in 1best_recog/failed), 1 the job could not run.
"""

import sys

from funasr_lite.cli.recipes import infer_cli

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    model="iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    data_dir="./data/test",
    output_dir="./results",
    batch_size=32,  # utterances per batch (length-sorted; results do not depend on it)
    batch_seconds=60.0,  # max audio seconds per batch (more is no faster on a CPU, and costs memory)
    ctc_weight=None,  # None: the model dir's decoding.yaml (default 0)
    beam_size=None,  # None: decoding.yaml (default 1 = greedy)
    device=None,  # None: cuda if available, else cpu
    ncpu=2,  # torch CPU threads (per process)
    nj=1,  # local processes, each decoding a shard (FunASR 0.x's njob); >1 starts them with torchrun
    max_duration=600.0,  # longer utterances are refused (split them with a VAD)
    checkpoint=None,  # a weights file inside the model dir, instead of model.pt / model.pb
    quantize=None,  # int8: dynamic int8 Linear layers (CPU only, faster); None: fp32
)

if __name__ == "__main__":
    sys.exit(infer_cli(DEFAULTS))
