"""The ``funasr-lite`` console command: one subcommand per tool.

Usage:
    funasr-lite --help
    funasr-lite COMMAND --help
    funasr-lite compute-cer data/test/text exp/decode/1best_recog/text exp/decode/text.cer
    funasr-lite infer --model MODEL_DIR_OR_HUB_ID --data_dir data/test --output_dir exp/decode
    funasr-lite finetune --model MODEL_DIR_OR_HUB_ID --data_path data --output_dir exp/finetune
    python -m funasr_lite.cli.main COMMAND ...     # the same without the console script

Each command's module is imported only when it runs, so the help and the torch-free
commands (compute-cer, validate-data-dir) never import torch.
"""

import argparse
import contextlib
import importlib
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

# name -> (module, function, one-line summary)
COMMANDS: Dict[str, Tuple[str, str, str]] = {
    "infer": ("funasr_lite.cli.main", "infer_main", "decode a Kaldi data dir with a Paraformer model dir"),
    "finetune": ("funasr_lite.cli.main", "finetune_main", "finetune a Paraformer model dir on train/ and dev/ data"),
    "compute-cer": ("funasr_lite.cli.score", "compute_cer_main", "score hypotheses and write FunASR's text.cer"),
    "validate-data-dir": ("funasr_lite.cli.data_tools", "validate_data_dir_main",
                          "print every problem of a Kaldi data dir (wav.scp, text)"),
    "make-shards": ("funasr_lite.cli.data_tools", "make_shards_main",
                    "split a data dir into shards for --dataset_type large"),
    "compute-cmvn": ("funasr_lite.cli.data_tools", "compute_cmvn_main", "write a data dir's global CMVN as am.mvn"),
    "average-checkpoints": ("funasr_lite.cli.model_tools", "average_checkpoints_main",
                            "average the n best epochs of a finetune output dir"),
    "make-model-dir": ("funasr_lite.cli.model_tools", "make_model_dir_main",
                       "write a randomly initialised model dir to train from scratch"),
}

# The flags of ``funasr-lite infer``: funasr_lite.decode.infer.InferOptions's fields and defaults. model,
# data_dir and output_dir have no default (the recipe scripts in egs_modelscope/ give theirs).
INFER_DEFAULTS = dict(model=None, data_dir=None, output_dir=None, batch_size=32, batch_seconds=300.0,
                      ctc_weight=None, beam_size=None, device=None, ncpu=2, max_duration=600.0, checkpoint=None)
INFER_REQUIRED = ("model", "data_dir", "output_dir")


@contextlib.contextmanager
def _argv0(prog: str) -> Iterator[None]:
    """Name the program ``prog`` in the usage lines of parsers built inside (they read sys.argv[0])."""
    saved = sys.argv[0] if sys.argv else None
    if sys.argv:
        sys.argv[0] = prog
    try:
        yield
    finally:
        if saved is not None:
            sys.argv[0] = saved


def infer_main(argv: Sequence[str], prog: str = "funasr-lite infer") -> int:
    """``funasr-lite infer``: the recipe infer.py's flags, with --model, --data_dir and --output_dir required."""
    from funasr_lite.cli.recipes import infer_cli

    argv = list(argv)
    if not {"-h", "--help"} & set(argv):
        required = argparse.ArgumentParser(prog=prog, add_help=False)
        for name in INFER_REQUIRED:
            required.add_argument(f"--{name}", required=True)
        required.parse_known_args(argv)  # exits 2 naming the missing flags
    with _argv0(prog):
        return infer_cli(dict(INFER_DEFAULTS), argv)


def finetune_main(argv: Sequence[str], prog: str = "funasr-lite finetune") -> int:
    """``funasr-lite finetune``: the recipe finetune.py's flags, with no recipe defaults (the model dir's
    config.yaml and finetune.yaml apply); --model and --data_path are required."""
    from funasr_lite.cli.recipes import finetune_cli

    with _argv0(prog):
        return finetune_cli({}, list(argv))


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
