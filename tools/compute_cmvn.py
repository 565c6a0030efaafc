#!/usr/bin/env python3
"""Compute global CMVN over a Kaldi data dir and write a Kaldi nnet1 ``am.mvn``.

Usage:
    python tools/compute_cmvn.py data/train exp/am.mvn
    python tools/compute_cmvn.py data/train exp/am.mvn --lfr_m 7 --lfr_n 6 --n_mels 80 \\
        --stats_on fbank --max_utts 2000

Every utterance of ``DATA_DIR/wav.scp`` is loaded (channels averaged, resampled to
``--fs``), turned into Kaldi fbank features (dither 0) and accumulated.  The output
has ``n_mels * lfr_m`` dims, the width of the LFR features it normalises:

* ``--stats_on fbank`` (default): mean/std over all fbank frames, repeated ``lfr_m``
  times, the layout of the am.mvn shipped with Paraformer models;
* ``--stats_on lfr``: mean/std over the LFR-stacked frames, as FunASR 1.x's
  ``compute_audio_cmvn.py`` does (edge frames repeated by the LFR padding count more).

The file reads back with ``funasr_lite.data.frontend.load_cmvn`` and FunASR's ``load_cmvn``.
Exit status 1 (with every problem printed) if the data dir or an audio file is bad.
"""

import argparse
import os
import sys
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from funasr_lite.errors import FunasrLiteError  # noqa: E402
from funasr_lite.data.frontend import WINDOW_TYPES, write_cmvn  # noqa: E402
from funasr_lite.hub.model_init import data_dir_cmvn  # noqa: E402


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", help="Kaldi data dir holding wav.scp")
    p.add_argument("out", help="output am.mvn path")
    p.add_argument("--fs", type=int, default=16000, help="model sample rate in Hz")
    p.add_argument("--n_mels", type=int, default=80, help="mel bins")
    p.add_argument("--frame_length", type=float, default=25, help="window in ms")
    p.add_argument("--frame_shift", type=float, default=10, help="hop in ms")
    p.add_argument("--window", default="hamming", choices=WINDOW_TYPES, help="window type")
    p.add_argument("--lfr_m", type=int, default=7, help="frames stacked per LFR frame")
    p.add_argument("--lfr_n", type=int, default=6, help="LFR hop in frames")
    p.add_argument("--stats_on", choices=("fbank", "lfr"), default="fbank",
                   help="accumulate over fbank frames (tiled lfr_m times) or LFR frames")
    p.add_argument("--max_utts", type=int, default=0, help="use only the first N utterances (0 = all)")
    return p.parse_args(argv)


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    conf = dict(fs=args.fs, window=args.window, n_mels=args.n_mels, frame_length=args.frame_length,
                frame_shift=args.frame_shift, lfr_m=args.lfr_m, lfr_n=args.lfr_n)
    try:
        mean, std, frames, utts = data_dir_cmvn(args.data_dir, conf, stats_on=args.stats_on, max_utts=args.max_utts)
        write_cmvn(args.out, mean, std)
    except (FunasrLiteError, ValueError, OSError) as exc:
        print(f"compute_cmvn: error: {exc}", file=sys.stderr)
        return 1
    print(f"compute_cmvn: {utts} utterances, {frames} frames ({args.stats_on}), "
          f"{mean.numel()} dims -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
