"""Command-line layer shared by the recipe scripts in ``egs_modelscope/``.

Each recipe script holds only a dict of editable defaults and calls one of
``infer_cli``, ``finetune_cli`` or ``infer_after_finetune_cli`` with it.  Every
default becomes a flag of the same name.  Errors caused by the user's input are
printed as one ``error:`` line (exit 1); ``--debug`` shows the traceback instead.
"""

import argparse
import logging
import sys
from typing import Any, Callable, Dict, Optional, Sequence

from funasr_lite.errors import FunasrLiteError

logger = logging.getLogger("funasr_lite")


def _parser(description: str, defaults: Dict[str, Any], types: Dict[str, Callable]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    for name, value in defaults.items():
        kind = types.get(name, type(value) if value is not None and not isinstance(value, bool) else str)
        if isinstance(value, bool):
            parser.add_argument(f"--{name}", type=_bool, default=value, help=f"(default: {value})")
        elif isinstance(value, (list, tuple)):
            parser.add_argument(f"--{name}", nargs="+", type=kind, default=list(value), help=f"(default: {value})")
        else:
            parser.add_argument(f"--{name}", type=kind, default=value, help=f"(default: {value})")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks and debug logs")
    return parser


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "y"):
        return True
    if text.lower() in ("0", "false", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def _guarded(debug: bool, job: Callable[[], int]) -> int:
    """Run ``job``; turn input errors into one line and exit status 1 (traceback with --debug)."""
    try:
        return job()
    except (FunasrLiteError, OSError, ValueError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


INFER_TYPES = {"beam_size": int, "ctc_weight": float, "device": str, "checkpoint": str}


def infer_cli(defaults: Dict[str, Any], argv: Optional[Sequence[str]] = None) -> int:
    """``infer.py``: decode a data dir; exit 0 all decoded, 2 some failed, 1 could not run."""
    from funasr_lite.decode.infer import InferOptions, run_inference, summary_lines

    args = _parser("Decode a Kaldi data dir with a Paraformer model.", defaults, INFER_TYPES).parse_args(argv)
    _setup_logging(args.debug)

    def job() -> int:
        opts = InferOptions(**{k: v for k, v in vars(args).items() if k != "debug"})
        opts.device = opts.device or _default_device()
        result = run_inference(opts)
        for line in summary_lines(result):
            print(line)
        return 2 if result.failed else 0

    return _guarded(args.debug, job)


def finetune_cli(defaults: Dict[str, Any], argv: Optional[Sequence[str]] = None) -> int:
    """``finetune.py``: finetune a model dir; 0 done, 1 could not run, 130 interrupted (resumable)."""
    from funasr_lite.train.finetune import add_finetune_arguments, finetune, options_from_args
    from funasr_lite.train.faults import TrainingInterrupted

    parser = argparse.ArgumentParser(description="Finetune a Paraformer model dir on train/ and dev/ data.")
    add_finetune_arguments(parser, defaults)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks and debug logs")
    args = parser.parse_args(argv)
    _setup_logging(args.debug)

    def job() -> int:
        try:
            summary = finetune(options_from_args(argparse.Namespace(
                **{k: v for k, v in vars(args).items() if k != "debug"}), defaults))
        except TrainingInterrupted as e:
            print(f"interrupted: {e}", file=sys.stderr)
            return 130
        print(f"finetuned model dir: {summary['output_dir']} (model.pt = {summary['final_checkpoint']})")
        return 0

    return _guarded(args.debug, job)


AFTER_TYPES = {"beam_size": int, "ctc_weight": float, "device": str, "modelscope_model_name": str}


def infer_after_finetune_cli(defaults: Dict[str, Any], argv: Optional[Sequence[str]] = None) -> int:
    """``infer_after_finetune.py``: decode with a finetuned checkpoint into output_dir/decode_results."""
    from funasr_lite.decode.infer import InferOptions, run_after_finetune, summary_lines

    args = _parser("Decode a data dir with a checkpoint of a finetune output dir.", defaults,
                   AFTER_TYPES).parse_args(argv)
    _setup_logging(args.debug)

    def job() -> int:
        given = vars(args)
        opts = InferOptions(model=given["output_dir"], data_dir=given["data_dir"], output_dir=given["output_dir"],
                            **{k: given[k] for k in ("batch_size", "batch_seconds", "beam_size", "ctc_weight",
                                                     "ncpu", "max_duration") if k in given},
                            device=given.get("device") or _default_device())
        result = run_after_finetune(opts, given["decoding_model_name"], given.get("modelscope_model_name"),
                                    given["required_files"])
        for line in summary_lines(result):
            print(line)
        return 2 if result.failed else 0

    return _guarded(args.debug, job)
