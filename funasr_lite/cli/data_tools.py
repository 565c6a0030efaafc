"""Data dir commands: ``validate-data-dir``, ``make-shards`` and ``compute-cmvn``.

torch is imported only inside the commands that need it (not by ``validate-data-dir`` nor any ``--help``).
"""

import logging
import os
import shlex
import sys
from typing import List, Optional

from funasr_lite.cli.formatting import tool_parser
from funasr_lite.data.datadir import load_data_dir
from funasr_lite.errors import DataDirError, FunasrLiteError

# funasr_lite.data.frontend.WINDOW_TYPES, spelled out so that --help does not import torch (a test checks they agree)
WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "blackman")


def validate_data_dir_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Validate a Kaldi data dir (wav.scp, text) and print every problem found.

    Usage:
        funasr-lite validate-data-dir data/test
        funasr-lite validate-data-dir data/train --mode train
        funasr-lite validate-data-dir data/test --no-check-audio
        python tools/validate_data_dir.py data/test     # the same, from a source checkout

    Each problem is printed as ``file:line: error: ...`` or ``file:line: warning: ...``.
    ``--mode train`` requires ``text`` and makes key mismatches errors; ``--mode infer``
    (default) makes them warnings. Relative audio paths are resolved against the
    current directory first, then against the data dir.

    Exit status: 0 if there are no errors (warnings allowed), 1 if there are errors,
    2 if the data dir cannot be read at all (missing dir, empty wav.scp, not UTF-8).
    """
    parser = tool_parser(validate_data_dir_main, prog)
    parser.add_argument("data_dir", help="directory holding wav.scp and optionally text")
    parser.add_argument(
        "--mode", choices=("infer", "train"), default="infer", help="train: text required, key mismatches are errors"
    )
    parser.add_argument("--no-check-audio", action="store_true", help="do not check that the audio files exist")
    args = parser.parse_args(argv)
    try:
        dd = load_data_dir(args.data_dir, mode=args.mode, check_audio=not args.no_check_audio)
    except DataDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for problem in dd.problems:
        print(problem)
    n_err, n_warn = len(dd.errors), len(dd.warnings)
    n_utt = len(dd.wavs)
    n_bad = len(dd.failed_keys())
    print(
        f"{args.data_dir}: {n_utt} utterances, {n_bad} with errors; {n_err} error(s), {n_warn} warning(s)",
        file=sys.stderr,
    )
    return 1 if n_err else 0


def make_shards_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Split big Kaldi data dirs into shards for ``--dataset_type large`` training.

    Usage:
        funasr-lite make-shards --data_path data data_large --utts_per_shard 1000
        # ^ shards data/train and data/dev (or data/validation) into data_large/train/ and data_large/dev/,
        # then prints the finetune command to run next, e.g. (in the recipe folder):
        python finetune.py --data_path data_large --dataset_type large
        # one data dir at a time:
        funasr-lite make-shards data/train data_large/train --utts_per_shard 1000
        funasr-lite make-shards data/train data_large/train --overwrite
        funasr-lite make-shards data/train data_large/train --reuse   # rebuild only if data/train changed
        python tools/make_shards.py --data_path data data_large       # the same, from a source checkout

    ``--dataset_type large`` reads ``<data_path>/train/data.list`` and ``<data_path>/dev/data.list``
    (or ``validation/``), each written by this command. For each data dir it writes
    ``OUT_DIR/split/00001/{wav.scp,text,utt2dur}`` ... (keys matched between wav.scp and text, audio
    paths absolute, durations in ms from the audio headers), ``OUT_DIR/data.list`` with one
    ``<wav.scp> <text>`` pair per line, ``OUT_DIR/bad_utts.txt`` (utterances left out and why) and
    ``OUT_DIR/shards.json``.

    Exit status: 0 on success, 2 if a data dir cannot be sharded (message says why).
    """
    parser = tool_parser(make_shards_main, prog)
    parser.add_argument(
        "data_dir", help="directory holding wav.scp and text (with --data_path: holding train/ and dev/)"
    )
    parser.add_argument(
        "out_dir",
        help="where split/, data.list and shards.json are written (with --data_path: train/ and dev/ of them, "
        "and out_dir is the finetune --data_path)",
    )
    parser.add_argument(
        "--data_path",
        action="store_true",
        help="data_dir is a finetune --data_path: shard its train/ and dev/ (or validation/) into "
        "out_dir/train/ and out_dir/dev/, the layout --dataset_type large reads",
    )
    parser.add_argument("--utts_per_shard", type=int, default=1000, help="utterances per shard")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace shards already in out_dir")
    again.add_argument(
        "--reuse",
        action="store_true",
        help="keep out_dir's shards if made from the same, unchanged data dir with the same "
        "--utts_per_shard; else rebuild them",
    )
    args = parser.parse_args(argv)
    if args.utts_per_shard < 1:
        parser.error("--utts_per_shard must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from funasr_lite.data.shards import ensure_shards, make_shards

    def shard(data_dir: str, out_dir: str) -> None:
        if args.reuse:
            print(f"shards: {ensure_shards(data_dir, out_dir, args.utts_per_shard)}")
            return
        summary = make_shards(data_dir, out_dir, args.utts_per_shard, overwrite=args.overwrite)
        print(f"wrote {summary.num_shards} shard(s), {summary.written} utterance(s): {summary.data_list}")
        if summary.report.dropped:
            print(f"left out {summary.report.dropped} utterance(s), see {os.path.join(out_dir, 'bad_utts.txt')}")

    try:
        if not args.data_path:
            shard(args.data_dir, args.out_dir)
            return 0
        splits = data_path_splits(args.data_dir)
        for name in splits:
            shard(os.path.join(args.data_dir, name), os.path.join(args.out_dir, name))
    except (DataDirError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = shlex.quote(os.path.abspath(args.out_dir))
    print(f"next, in the recipe folder: python finetune.py --data_path {out} --dataset_type large")
    print(f"or: funasr-lite finetune --model MODEL --data_path {out} --dataset_type large --output_dir OUTPUT_DIR")
    return 0


def data_path_splits(data_path: str) -> List[str]:
    """``["train", "dev"]`` (or ``"validation"``): the data dirs under a finetune ``--data_path``, as finetuning
    finds them.

    Raises:
        DataDirError: naming what is missing and what the dir holds.
    """
    if not os.path.isdir(data_path):
        raise DataDirError(f"--data_path {data_path} is not a directory")
    devs = [d for d in ("dev", "validation") if os.path.isdir(os.path.join(data_path, d))]
    missing = [
        n
        for n, ok in (("train/", os.path.isdir(os.path.join(data_path, "train"))), ("dev/ (or validation/)", devs))
        if not ok
    ]
    if missing:
        raise DataDirError(
            f"--data_path {data_path}: missing {' and '.join(missing)}; it holds: "
            f"{', '.join(sorted(os.listdir(data_path))) or 'nothing'}"
        )
    return ["train", devs[0]]


def compute_cmvn_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Compute global CMVN over a Kaldi data dir and write a Kaldi nnet1 ``am.mvn``.

    Usage:
        funasr-lite compute-cmvn data/train exp/am.mvn
        funasr-lite compute-cmvn data/train exp/am.mvn --lfr_m 7 --lfr_n 6 --n_mels 80 \\
            --stats_on fbank --max_utts 2000
        python tools/compute_cmvn.py data/train exp/am.mvn     # the same, from a source checkout

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
    p = tool_parser(compute_cmvn_main, prog)
    p.add_argument("data_dir", help="Kaldi data dir holding wav.scp")
    p.add_argument("out", help="output am.mvn path")
    p.add_argument("--fs", type=int, default=16000, help="model sample rate in Hz")
    p.add_argument("--n_mels", type=int, default=80, help="mel bins")
    p.add_argument("--frame_length", type=float, default=25, help="window in ms")
    p.add_argument("--frame_shift", type=float, default=10, help="hop in ms")
    p.add_argument("--window", default="hamming", choices=WINDOW_TYPES, help="window type")
    p.add_argument("--lfr_m", type=int, default=7, help="frames stacked per LFR frame")
    p.add_argument("--lfr_n", type=int, default=6, help="LFR hop in frames")
    p.add_argument(
        "--stats_on",
        choices=("fbank", "lfr"),
        default="fbank",
        help="accumulate over fbank frames (tiled lfr_m times) or LFR frames",
    )
    p.add_argument("--max_utts", type=int, default=0, help="use only the first N utterances; 0 = all")
    args = p.parse_args(argv)
    from funasr_lite.data.frontend import write_cmvn
    from funasr_lite.hub.model_init import data_dir_cmvn
    from funasr_lite.utils.fileio import output_clobbers_input

    kaldi_files = [os.path.join(args.data_dir, n) for n in ("wav.scp", "text", "data.list", "segments")]
    clobbered = output_clobbers_input(args.out, kaldi_files)
    if clobbered is not None:
        print(f"compute_cmvn: error: out {args.out}: is the input {clobbered}; choose another path", file=sys.stderr)
        return 1
    conf = {k: getattr(args, k) for k in ("fs", "window", "n_mels", "frame_length", "frame_shift", "lfr_m", "lfr_n")}
    try:
        mean, std, frames, utts = data_dir_cmvn(args.data_dir, conf, stats_on=args.stats_on, max_utts=args.max_utts)
        write_cmvn(args.out, mean, std)
    except (FunasrLiteError, ValueError, OSError) as exc:
        print(f"compute_cmvn: error: {exc}", file=sys.stderr)
        return 1
    print(f"compute_cmvn: {utts} utterances, {frames} frames ({args.stats_on}), {mean.numel()} dims -> {args.out}")
    return 0
