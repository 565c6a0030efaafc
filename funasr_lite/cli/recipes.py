"""Command-line layer shared by the recipe scripts in ``egs_modelscope/``.

Each recipe script holds only a dict of editable defaults and calls one of
``infer_cli``, ``finetune_cli`` or ``infer_after_finetune_cli`` with it. The flags
are generated from the options' fields (:mod:`funasr_lite.cli.flags`), with their help text;
each default of the dict must be one of them.  Errors caused by the user's input are
printed as one ``error:`` line (exit 1); ``--debug`` shows the traceback instead.
"""

import argparse
import logging
import os
import shlex
import sys
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from funasr_lite.cli.flags import RecipeParser, add_option_flags, split_args
from funasr_lite.config.merge import config_flag_paths
from funasr_lite.errors import FunasrLiteError


def _parser(
    description: str,
    runtime: Sequence[type],
    defaults: Dict[str, Any],
    prog: Optional[str] = None,
    exclude: Sequence[str] = (),
) -> argparse.ArgumentParser:
    parser = RecipeParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES
    )
    add_option_flags(parser, runtime, defaults, exclude=exclude)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks and debug logs")
    return parser


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )


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


def _summary(result) -> int:
    """Print the job summary of an :class:`~funasr_lite.decode.infer.InferResult`; exit 2 if some utterances failed."""
    from funasr_lite.decode.infer import summary_lines

    if result.worker_shard is not None:  # a torchrun rank other than 0: rank 0 reports the job and its status
        return 0
    print("\n".join(summary_lines(result)))
    return 2 if result.failed else 0


def infer_cli(defaults: Dict[str, Any], argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``infer.py``: decode a data dir; exit 0 all decoded, 2 some failed, 1 could not run."""
    from funasr_lite.decode.options import InferOptions

    args = infer_parser(defaults, prog).parse_args(argv)
    _setup_logging(args.debug)

    def job() -> int:
        from funasr_lite.decode.infer import run_inference

        opts, layers = split_args(_without_debug(args), InferOptions, defaults)
        if opts.nj > 1 and _launch_needed():
            return _launch(opts, argv)
        return _summary(run_inference(opts, layers=layers))

    return _guarded(args.debug, job)


def finetune_cli(defaults: Dict[str, Any], argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``finetune.py``: finetune a model dir; 0 done, 1 could not run, 130 interrupted (resumable)."""
    from funasr_lite.config.merge import parse_overrides
    from funasr_lite.train.options import FinetuneOptions

    args = finetune_parser(defaults, prog).parse_args(argv)
    _setup_logging(args.debug)

    def job() -> int:
        from funasr_lite.train.faults import TrainingInterrupted
        from funasr_lite.train.finetune import finetune

        ns = _without_debug(args, "no_progress_bar", "overrides", "verbose")
        fixed = {"progress_bar": not args.no_progress_bar, "verbose": args.verbose}
        opts, layers = split_args(ns, FinetuneOptions, defaults, fixed=fixed)
        if args.overrides:
            layers.append(("command line overrides", parse_overrides(args.overrides)))
        try:
            summary = finetune(opts, layers)
        except TrainingInterrupted as e:
            print(f"interrupted: {e}", file=sys.stderr)
            return 130
        print(f"finetuned model dir: {summary['output_dir']} (model.pt = {summary['final_checkpoint']})")
        print(f"next, decode with model.pt:\n  {next_command(summary['output_dir'], opts.data_path)}")
        return 0

    return _guarded(args.debug, job)


def infer_after_finetune_cli(defaults: Dict[str, Any], argv: Optional[Sequence[str]] = None) -> int:
    """``infer_after_finetune.py``: decode with a finetuned checkpoint into output_dir/decode_results."""
    from funasr_lite.decode.options import AfterFinetuneOptions, InferOptions

    args = after_finetune_parser(defaults).parse_args(argv)
    _setup_logging(args.debug)

    def job() -> int:
        from funasr_lite.decode.infer import run_after_finetune

        ns = _without_debug(args)
        after, _ = split_args(ns, AfterFinetuneOptions, defaults)
        opts, layers = split_args(ns, InferOptions, defaults, fixed={"model": after.output_dir})
        if opts.nj > 1 and _launch_needed():
            return _launch(opts, argv)
        return _summary(run_after_finetune(opts, after, layers=layers))

    return _guarded(args.debug, job)


def _launch_needed() -> bool:
    """True when this process is not a torchrun rank (so ``--nj`` starts the ranks)."""
    from funasr_lite.decode.launch import under_torchrun

    return not under_torchrun()


def _launch(opts, argv: Optional[Sequence[str]]) -> int:
    """``--nj N``: run this same command as N local torchrun ranks (each with ``--ncpu`` threads); rank 0's
    exit status."""
    from funasr_lite.decode.launch import launch_local, script_command

    return launch_local(opts.nj, script_command(argv), opts.ncpu)


def next_command(output_dir: str, data_path: str, script_dir: Optional[str] = None) -> str:
    """The infer_after_finetune.py command that decodes ``output_dir``'s model.pt (the test set of ``data_path``
    when it has one, else its dev set)."""
    script_dir = script_dir if script_dir is not None else os.path.dirname(os.path.abspath(sys.argv[0]))
    script = os.path.join(script_dir, "infer_after_finetune.py")
    data = next(
        (
            os.path.join(data_path, d)
            for d in ("test", "dev", "validation")
            if os.path.isdir(os.path.join(data_path, d))
        ),
        os.path.join(data_path, "test"),
    )
    script = script if os.path.isfile(script) else "infer_after_finetune.py"
    return f"python {shlex.quote(script)} --output_dir {shlex.quote(output_dir)} --data_dir {shlex.quote(data)}"


def infer_parser(defaults: Dict[str, Any], prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of ``infer.py`` (its flags: InferOptions and the decoding config flags)."""
    from funasr_lite.decode.options import InferOptions

    return _parser(
        "Decode a Kaldi data dir with a Paraformer model.", [InferOptions], defaults, prog, exclude=TRAIN_ONLY
    )


def finetune_parser(defaults: Dict[str, Any], prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of ``finetune.py`` (FinetuneOptions and the training config flags)."""
    from funasr_lite.train.options import FinetuneOptions

    parser = _parser(
        "Finetune a Paraformer model dir on train/ and dev/ data.", [FinetuneOptions], defaults, prog, DECODE_ONLY
    )
    parser.add_argument("--no_progress_bar", action="store_true", help="no tqdm bar")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print the whole merged config with the source of each value (always saved as "
        "output_dir/config.provenance.txt; by default only the keys changed from the model's config are printed)",
    )
    parser.add_argument(
        "--override",
        dest="overrides",
        action="append",
        default=None,
        metavar="++SECTION.KEY=VALUE",
        help="config override, repeatable, e.g. --override ++train_conf.grad_clip=1.0",
    )
    return parser


def after_finetune_parser(defaults: Dict[str, Any], prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of ``infer_after_finetune.py`` (AfterFinetuneOptions, InferOptions but model/checkpoint)."""
    from funasr_lite.decode.options import AfterFinetuneOptions, InferOptions

    return _parser(
        "Decode a data dir with a checkpoint of a finetune output dir.",
        [AfterFinetuneOptions, InferOptions],
        defaults,
        prog,
        exclude=TRAIN_ONLY + ("model", "checkpoint"),
    )


def _without_debug(args: argparse.Namespace, *also: str) -> argparse.Namespace:
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in ("debug",) + also})


# config flags that make no sense for a script (decoding flags on finetune.py and the reverse)
def _config_flags_of(*sections: str) -> Tuple[str, ...]:
    return tuple(name for name, (path, _, _) in config_flag_paths().items() if path.split(".")[0] in sections)


DECODE_ONLY = _config_flags_of("decoding")
TRAIN_ONLY = _config_flags_of(
    "train_conf", "dataset_conf", "optim", "optim_conf", "scheduler", "scheduler_conf", "specaug", "specaug_conf"
)
EXIT_CODES = (
    "exit status: 0 done, 1 the job could not run (one error: line), 2 some utterances failed "
    "(decoding), 130 interrupted (finetuning resumes from where it stopped)"
)
