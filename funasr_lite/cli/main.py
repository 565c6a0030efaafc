"""The ``funasr-lite`` console command: one subcommand per tool.

Usage:
    funasr-lite --help
    funasr-lite COMMAND --help
    funasr-lite compute-cer data/test/text exp/decode/1best_recog/text exp/decode/text.cer
    funasr-lite infer --model MODEL_DIR_OR_HUB_ID --data_dir data/test --output_dir exp/decode
    funasr-lite finetune --model MODEL_DIR_OR_HUB_ID --data_path data --output_dir exp/finetune
    funasr-lite quantize --model_dir MODEL_DIR [--output_dir INT8_MODEL_DIR]
    python -m funasr_lite.cli.main COMMAND ...     # the same without the console script

Each command's module is imported only when it runs, so the help and the torch-free
commands (compute-cer, validate-data-dir) never import torch.
"""

import argparse
import importlib
import sys
from typing import Dict, List, Optional, Sequence, Tuple

# name -> (module, function, one-line summary)
COMMANDS: Dict[str, Tuple[str, str, str]] = {
    "infer": ("funasr_lite.cli.main", "infer_main", "decode a Kaldi data dir with a Paraformer model dir"),
    "finetune": ("funasr_lite.cli.main", "finetune_main", "finetune a Paraformer model dir on train/ and dev/ data"),
    "compute-cer": ("funasr_lite.cli.score", "compute_cer_main", "score hypotheses and write FunASR's text.cer"),
    "validate-data-dir": (
        "funasr_lite.cli.data_tools",
        "validate_data_dir_main",
        "print every problem of a Kaldi data dir (wav.scp, text)",
    ),
    "make-shards": (
        "funasr_lite.cli.data_tools",
        "make_shards_main",
        "split a data dir into shards for --dataset_type large",
    ),
    "compute-cmvn": ("funasr_lite.cli.data_tools", "compute_cmvn_main", "write a data dir's global CMVN as am.mvn"),
    "average-checkpoints": (
        "funasr_lite.cli.model_tools",
        "average_checkpoints_main",
        "average the n best epochs of a finetune output dir",
    ),
    "make-model-dir": (
        "funasr_lite.cli.model_tools",
        "make_model_dir_main",
        "write a randomly initialised model dir to train from scratch",
    ),
    "quantize": (
        "funasr_lite.cli.model_tools",
        "quantize_main",
        "save a model dir's int8 weights (model_quant.pt) for --quantize int8",
    ),
}


def infer_main(argv: Sequence[str], prog: str = "funasr-lite infer") -> int:
    """``funasr-lite infer``: the recipe infer.py's flags; --model, --data_dir and --output_dir are required."""
    from funasr_lite.cli.recipes import infer_cli

    return infer_cli({}, list(argv), prog=prog)


def finetune_main(argv: Sequence[str], prog: str = "funasr-lite finetune") -> int:
    """``funasr-lite finetune``: the recipe finetune.py's flags, with no recipe defaults (the model dir's
    config.yaml and finetune.yaml apply); --model and --data_path are required."""
    from funasr_lite.cli.recipes import finetune_cli

    return finetune_cli({}, list(argv), prog=prog)


def _parser() -> argparse.ArgumentParser:
    from funasr_lite import __version__
    from funasr_lite.cli.formatting import HelpFormatter

    parser = argparse.ArgumentParser(prog="funasr-lite", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"funasr-lite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (_, _, summary) in COMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``funasr-lite COMMAND ARGS...``; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _parser()
        parser.parse_args(argv[:1])  # --help, --version or an unknown command: argparse prints and exits
        parser.print_help(sys.stderr)
        return 2
    module, function, _ = COMMANDS[argv[0]]
    command = getattr(importlib.import_module(module), function)
    return command(argv[1:], prog=f"funasr-lite {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
