"""Model dir commands: ``average-checkpoints``, ``make-model-dir`` and ``quantize``.

torch is imported only once a command runs, never by ``--help``.
"""

import logging
import os
import sys
from typing import List, Optional

from funasr_lite.cli.formatting import tool_parser
from funasr_lite.errors import FunasrLiteError

# funasr_lite.decode.options.QUANTIZE_MODES, spelled out so that --help does not import torch (a test checks
# they agree)
QUANTIZE_MODES = ("int8",)
# the keys of funasr_lite.train.checkpoint.CRITERIA, spelled out so that --help does not import torch
# (a test checks they agree)
METRICS = ("acc", "cer", "loss")


def average_checkpoints_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Average the n best epoch checkpoints of a finetune output dir, ranked by their sidecars.

    Usage:
        funasr-lite average-checkpoints --dir exp/finetune --metric acc --num 10
        funasr-lite average-checkpoints --dir exp/finetune --metric cer --num 5 \\
            --output exp/finetune/valid.cer.ave_5best.pb
        funasr-lite average-checkpoints --dir exp/finetune --metric loss --num 3 --output /tmp/model.pt
        python tools/average_checkpoints.py --dir exp/finetune     # the same, from a source checkout

    Each ``{N}epoch.pb`` written by funasr-lite's finetune has a sidecar ``{N}epoch.yaml`` with the
    epoch's dev loss, acc and CER. Epochs are ranked by ``--metric`` (acc: higher is better; cer and
    loss: lower is better; ties go to the later epoch), epochs whose ``.pb`` was pruned are skipped,
    and the ``--num`` best that exist are averaged element-wise (integer buffers are taken from the
    best epoch; FunASR would sum them). The result is a plain state_dict (FunASR loads it as
    ``model.pt``), written atomically together with a ``.yaml`` sidecar listing the epochs used.

    Default ``--output``: ``<dir>/valid.<metric>.ave_<num>best.pb``.
    Exit status: 0 on success, 1 on a problem with the dir or its files, 2 on bad usage.
    """
    parser = tool_parser(average_checkpoints_main, prog)
    parser.add_argument("--dir", required=True, help="finetune output dir with {N}epoch.pb and {N}epoch.yaml")
    parser.add_argument("--metric", default="acc", choices=METRICS, help="dev metric to rank by")
    parser.add_argument("--num", type=int, default=10, help="how many of the best epochs to average")
    parser.add_argument("--output", default=None, help="output file (default <dir>/valid.<metric>.ave_<num>best.pb)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.num < 1:
        parser.error("--num must be >= 1")
    from funasr_lite.train.checkpoint import average_nbest

    output = args.output or os.path.join(args.dir, f"valid.{args.metric}.ave_{args.num}best.pb")
    try:
        used = average_nbest(args.dir, args.metric, args.num, output)
    except (FunasrLiteError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    values = ", ".join(f"{r.epoch}: {r.metric(args.metric):.4f}" for r in used)
    print(f"{output}: average of {len(used)} epoch(s) by dev {args.metric} ({values})")
    return 0


def make_model_dir_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Write a fresh (randomly initialised) Paraformer model dir to train from scratch.

    Usage:
        funasr-lite make-model-dir --config conf/paraformer_tiny.yaml --train_data data/train --out exp/init_model
        funasr-lite make-model-dir --config conf/paraformer_tiny.yaml --train_data data/train --out exp/init_model \\
            --layout 0.x --seed 1 --min_count 1
        python tools/make_model_dir.py --config conf/paraformer_tiny.yaml --train_data data/train \\
            --out exp/init_model     # the same, from a source checkout

    The dir has the FunASR layout a ModelScope Paraformer has (1.x: config.yaml model.pt
    tokens.json am.mvn configuration.json; 0.x: config.yaml model.pb tokens.txt am.mvn
    decoding.yaml finetune.yaml configuration.json), so finetune can start from it:

    * config.yaml: ``--config`` (a FunASR config.yaml: model/encoder/decoder/predictor/
      frontend sections, optionally train_conf, optim_conf, scheduler_conf ...);
    * the token list: ``<blank> <s> </s>``, every space-separated unit of
      ``TRAIN_DATA/text`` by frequency, then ``<unk>``;
    * am.mvn: global CMVN of ``TRAIN_DATA``'s audio (see ``funasr-lite compute-cmvn``);
    * weights: a Paraformer built from the config, seeded with ``--seed``.
    """
    p = tool_parser(make_model_dir_main, prog)
    p.add_argument("--config", required=True, help="FunASR-style config.yaml describing the network")
    p.add_argument("--train_data", required=True, help="Kaldi data dir (wav.scp, text) for tokens and CMVN")
    p.add_argument("--out", required=True, help="output model dir")
    p.add_argument("--layout", choices=("1.x", "0.x"), default="1.x", help="FunASR model dir layout")
    p.add_argument("--seed", type=int, default=0, help="weight init seed")
    p.add_argument("--min_count", type=int, default=1, help="drop units seen fewer times (they map to <unk>)")
    p.add_argument("--stats_on", choices=("fbank", "lfr"), default="fbank", help="CMVN over fbank or LFR frames")
    args = p.parse_args(argv)
    from funasr_lite.config.yaml_io import load_yaml
    from funasr_lite.data.datadir import read_scp
    from funasr_lite.hub.model_init import data_dir_cmvn, token_list_from_texts, write_model_dir

    try:
        config = dict(load_yaml(args.config))
        text = read_scp(os.path.join(args.train_data, "text"), what="text")
        if text.problems:
            raise FunasrLiteError("\n".join(str(problem) for problem in text.problems))
        tokens = token_list_from_texts(text.entries.values(), min_count=args.min_count)
        mean, std, frames, utts = data_dir_cmvn(
            args.train_data, config.get("frontend_conf") or {}, stats_on=args.stats_on
        )
        write_model_dir(args.out, config, tokens, cmvn_mean=mean, cmvn_std=std, seed=args.seed, layout=args.layout)
    except (FunasrLiteError, ValueError, OSError) as exc:
        print(f"make_model_dir: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"make_model_dir: {args.out} ({args.layout}): {len(tokens)} tokens, CMVN over {utts} utterances "
        f"({frames} frames)"
    )
    return 0


def quantize_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Save a model dir's int8 weights (model_quant.pt), so that --quantize int8 loads them without quantizing.

    Usage:
        funasr-lite quantize --model_dir exp/model
        funasr-lite quantize --model_dir exp/model --output_dir exp/model_int8
        python tools/quantize.py --model_dir exp/model     # the same, from a source checkout

    Quantizes the fp32 weights as ``--quantize int8`` does in memory (every Linear layer to dynamic int8,
    per-channel scales) and writes the quantized state_dict as ``model_quant.pt`` with a sidecar
    ``model_quant.json`` recording the mode and the fp32 file it was made from (name, size, mtime).
    Without ``--output_dir`` both go into the model dir, next to the fp32 weights. With it, the output dir is
    a complete model dir without the fp32 weights (config.yaml, am.mvn, the token list, seg_dict,
    decoding.yaml, finetune.yaml and configuration.json are copied).

    A decode with ``--quantize int8`` then loads ``model_quant.pt`` when its sidecar matches (for
    paraformer-large: 243 MB read, no quantization) and quantizes in memory otherwise, with a warning
    when the fp32 weights changed since. A dir with ``model_quant.pt`` alone decodes only with
    ``--quantize int8``. Every file is written atomically: an interrupted run leaves the old outputs.
    Exit status: 0 on success, 1 on a problem with the model dir or its files, 2 on bad usage.
    """
    p = tool_parser(quantize_main, prog)
    p.add_argument("--model_dir", required=True, help="model dir with fp32 weights (FunASR 1.x or 0.x layout)")
    p.add_argument(
        "--output_dir", default=None, help="write a complete int8 model dir here (default: into --model_dir)"
    )
    p.add_argument("--mode", choices=QUANTIZE_MODES, default="int8", help="quantization (as --quantize)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from funasr_lite.decode.quantized_dir import save_quantized

    try:
        path = save_quantized(args.model_dir, args.output_dir, mode=args.mode)
    except (FunasrLiteError, OSError) as exc:
        print(f"quantize: error: {exc}", file=sys.stderr)
        return 1
    print(f"quantize: {path} ({args.mode} of {args.model_dir}); decode with --quantize {args.mode}")
    return 0
