#!/usr/bin/env python3
"""Average the n best epoch checkpoints of a finetune output dir, ranked by their sidecars.

Usage:
    python tools/average_checkpoints.py --dir exp/finetune --metric acc --num 10
    python tools/average_checkpoints.py --dir exp/finetune --metric cer --num 5 --output exp/finetune/valid.cer.ave_5best.pb
    python tools/average_checkpoints.py --dir exp/finetune --metric loss --num 3 --output /tmp/model.pt

Each ``{N}epoch.pb`` written by funasr-lite's finetune has a sidecar ``{N}epoch.yaml`` with the
epoch's dev loss, acc and CER. Epochs are ranked by ``--metric`` (acc: higher is better; cer and
loss: lower is better; ties go to the later epoch), epochs whose ``.pb`` was pruned are skipped,
and the ``--num`` best that exist are averaged element-wise (integer buffers are taken from the
best epoch; FunASR would sum them). The result is a plain state_dict (FunASR loads it as
``model.pt``), written atomically together with a ``.yaml`` sidecar listing the epochs used.

Default ``--output``: ``<dir>/valid.<metric>.ave_<num>best.pb``.
Exit status: 0 on success, 1 on a problem with the dir or its files, 2 on bad usage.
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from funasr_lite.train.checkpoint import CRITERIA, average_nbest  # noqa: E402
from funasr_lite.errors import FunasrLiteError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="finetune output dir with {N}epoch.pb and {N}epoch.yaml")
    parser.add_argument("--metric", default="acc", choices=sorted(CRITERIA), help="dev metric to rank by")
    parser.add_argument("--num", type=int, default=10, help="how many of the best epochs to average")
    parser.add_argument("--output", default=None, help="output file (default <dir>/valid.<metric>.ave_<num>best.pb)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.num < 1:
        parser.error("--num must be >= 1")
    output = args.output or os.path.join(args.dir, f"valid.{args.metric}.ave_{args.num}best.pb")
    try:
        used = average_nbest(args.dir, args.metric, args.num, output)
    except (FunasrLiteError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    values = ", ".join(f"{r.epoch}: {r.metric(args.metric):.4f}" for r in used)
    print(f"{output}: average of {len(used)} epoch(s) by dev {args.metric} ({values})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
