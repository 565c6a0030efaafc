#!/usr/bin/env python3
"""Split a big Kaldi data dir into shards for ``--dataset_type large`` training.

Usage:
    python tools/make_shards.py data/train data/train_shards --utts_per_shard 1000
    python tools/make_shards.py data/train data/train_shards --utts_per_shard 1000 --overwrite
    # then train with: --dataset_type large, and data/train_shards/data.list as the train data

It writes ``OUT_DIR/split/00001/{wav.scp,text,utt2dur}`` ... (keys matched
between wav.scp and text, audio paths absolute, durations in ms from the audio
headers), ``OUT_DIR/data.list`` with one ``<wav.scp> <text>`` pair per line,
``OUT_DIR/bad_utts.txt`` (utterances left out and why) and ``OUT_DIR/shards.json``.

Exit status: 0 on success, 2 if the data dir cannot be sharded (message says why).
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from funasr_lite.errors import DataDirError  # noqa: E402
from funasr_lite.data.shards import make_shards  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    """Run the splitter; return the exit status."""
    parser = argparse.ArgumentParser(description="Split a Kaldi data dir into shards plus data.list.")
    parser.add_argument("data_dir", help="directory holding wav.scp and text")
    parser.add_argument("out_dir", help="where split/, data.list and shards.json are written")
    parser.add_argument("--utts_per_shard", type=int, default=1000, help="utterances per shard (default 1000)")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in out_dir")
    args = parser.parse_args(argv)
    if args.utts_per_shard < 1:
        parser.error("--utts_per_shard must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        summary = make_shards(args.data_dir, args.out_dir, args.utts_per_shard, overwrite=args.overwrite)
    except (DataDirError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {summary.num_shards} shard(s), {summary.written} utterance(s): {summary.data_list}")
    if summary.report.dropped:
        print(f"left out {summary.report.dropped} utterance(s), see "
              f"{os.path.join(args.out_dir, 'bad_utts.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
