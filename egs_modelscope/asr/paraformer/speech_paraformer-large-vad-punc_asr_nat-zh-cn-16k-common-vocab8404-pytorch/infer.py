#!/usr/bin/env python3
"""Decode long recordings with Paraformer-large (BiCif timestamps), FSMN-VAD and CT-Transformer punctuation.

Usage:
    # ModelScope ids (need network, or the models in the local ModelScope cache)
    python infer.py --data_dir ./data/test --output_dir ./results
    # local model dirs, on the CPU with 2 threads
    python infer.py --model /models/speech_paraformer-large-vad-punc_asr_nat-zh-cn-16k-common-vocab8404-pytorch \
        --vad_model /models/speech_fsmn_vad_zh-cn-16k-common-pytorch \
        --punc_model /models/punc_ct-transformer_cn-en-common-vocab471067-large \
        --data_dir ./data/test --output_dir ./results --device cpu --ncpu 2
    # no punctuation (sentences are then the VAD segments)
    python infer.py --data_dir ./data/test --output_dir ./results --punc_model none

Each recording of wav.scp (minutes to hours) is cut into speech segments by the VAD, the segments are
decoded in batches of --batch_size_s seconds, and the joined text is punctuated and cut into sentences.
Writes output_dir/1best_recog/{text,raw_text,token,score,timestamp,sentences,vad,failed}, subtitles/<key>.srt,
and text.cer (scored without punctuation) plus an aligned error report when data_dir/text exists.
Exit status: 0 all decoded, 2 some recordings failed (listed in 1best_recog/failed), 1 the job could not run.
"""

import sys

from funasr_lite.cli.recipes import infer_cli

# Editable defaults; every key is also a command-line flag of the same name.
DEFAULTS = dict(
    model="iic/speech_paraformer-large-vad-punc_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    vad_model="fsmn-vad",  # iic/speech_fsmn_vad_zh-cn-16k-common-pytorch
    punc_model="ct-punc",  # iic/punc_ct-transformer_cn-en-common-vocab471067-large
    data_dir="./data/test",
    output_dir="./results",
    batch_size_s=300,  # VAD segments per batch: longest segment x count < 300 s (FunASR's batch_size_s)
    batch_size_threshold_s=60,  # a segment of 60 s or more is decoded in its own batch
    beam_size=None,  # None: the model dir's decoding.yaml (default 1 = greedy)
    device=None,  # None: cuda if available, else cpu
    ncpu=2,  # torch CPU threads
    max_duration=600.0,  # the longest VAD segment allowed (seconds); files may be any length
    checkpoint=None,  # a weights file inside the model dir, instead of model.pt / model.pb
)

if __name__ == "__main__":
    sys.exit(infer_cli(DEFAULTS))
