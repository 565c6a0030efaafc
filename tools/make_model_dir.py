#!/usr/bin/env python3
"""Write a fresh (randomly initialised) Paraformer model dir to train from scratch.

Usage:
    python tools/make_model_dir.py --config conf/paraformer_tiny.yaml --train_data data/train --out exp/init_model
    python tools/make_model_dir.py --config conf/paraformer_tiny.yaml --train_data data/train --out exp/init_model \\
        --layout 0.x --seed 1 --min_count 1

The dir has the FunASR layout a ModelScope Paraformer has (1.x: config.yaml model.pt
tokens.json am.mvn configuration.json; 0.x: config.yaml model.pb tokens.txt am.mvn
decoding.yaml finetune.yaml configuration.json), so finetune.py can start from it:

* config.yaml: ``--config`` (a FunASR config.yaml: model/encoder/decoder/predictor/
  frontend sections, optionally train_conf, optim_conf, scheduler_conf ...);
* the token list: ``<blank> <s> </s>``, every space-separated unit of
  ``TRAIN_DATA/text`` by frequency, then ``<unk>``;
* am.mvn: global CMVN of ``TRAIN_DATA``'s audio (see tools/compute_cmvn.py);
* weights: a Paraformer built from the config, seeded with ``--seed``.
"""

import argparse
import os
import sys
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from funasr_lite.config.yaml_io import load_yaml  # noqa: E402
from funasr_lite.data.datadir import read_scp  # noqa: E402
from funasr_lite.errors import FunasrLiteError  # noqa: E402
from funasr_lite.hub.model_init import data_dir_cmvn, token_list_from_texts, write_model_dir  # noqa: E402


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="FunASR-style config.yaml describing the network")
    p.add_argument("--train_data", required=True, help="Kaldi data dir (wav.scp, text) for tokens and CMVN")
    p.add_argument("--out", required=True, help="output model dir")
    p.add_argument("--layout", choices=("1.x", "0.x"), default="1.x", help="FunASR model dir layout")
    p.add_argument("--seed", type=int, default=0, help="weight init seed")
    p.add_argument("--min_count", type=int, default=1, help="drop units seen fewer times (they map to <unk>)")
    p.add_argument("--stats_on", choices=("fbank", "lfr"), default="fbank", help="CMVN over fbank or LFR frames")
    args = p.parse_args(argv)
    try:
        config = dict(load_yaml(args.config))
        text = read_scp(os.path.join(args.train_data, "text"), what="text")
        if text.problems:
            raise FunasrLiteError("\n".join(str(problem) for problem in text.problems))
        tokens = token_list_from_texts(text.entries.values(), min_count=args.min_count)
        mean, std, frames, utts = data_dir_cmvn(args.train_data, config.get("frontend_conf") or {},
                                                stats_on=args.stats_on)
        write_model_dir(args.out, config, tokens, cmvn_mean=mean, cmvn_std=std, seed=args.seed, layout=args.layout)
    except (FunasrLiteError, ValueError, OSError) as exc:
        print(f"make_model_dir: error: {exc}", file=sys.stderr)
        return 1
    print(f"make_model_dir: {args.out} ({args.layout}): {len(tokens)} tokens, CMVN over {utts} utterances "
          f"({frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
