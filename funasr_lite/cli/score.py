"""``funasr-lite compute-cer``: score hypotheses against references. Imports no torch."""

import os
import sys
from typing import Dict, List, Optional

from funasr_lite.cli.formatting import tool_parser
from funasr_lite.data.datadir import read_scp
from funasr_lite.decode.cer import score_corpus, write_error_report, write_text_cer
from funasr_lite.errors import DataDirError
from funasr_lite.utils.fileio import output_clobbers_input, same_file


def read_transcripts(path: str, what: str) -> Dict[str, str]:
    """Read a ``key text`` file; raise DataDirError listing every bad line."""
    table = read_scp(path, what="text", allow_empty_value=True)
    errors = [p for p in table.problems if p.severity == "error"]
    if errors:
        lines = "\n".join(f"  {p}" for p in errors)
        raise DataDirError(f"{what} file {path} has {len(errors)} error(s):\n{lines}")
    return dict(table.entries)


def compute_cer_main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Score hypotheses against references and write FunASR's ``text.cer``.

    Usage:
        funasr-lite compute-cer REF HYP OUT
        funasr-lite compute-cer data/test/text exp/decode/1best_recog/text exp/decode/text.cer
        funasr-lite compute-cer REF HYP OUT --error-report OUT.errors
        python tools/compute_cer.py REF HYP OUT     # the same, from a source checkout

    REF and HYP are ``key text`` files (UTF-8; a BOM, CRLF line endings and blank
    lines are accepted; a key with no text is an empty transcription). Units are
    CJK characters, digits and case-folded English words; whitespace does not
    matter (``我 爱 北京`` == ``我爱北京``). Every reference is scored: a key missing
    from HYP counts as all deletions and is named on stderr; HYP keys with no
    reference are named and not scored.

    Writes OUT (FunASR ``text.cer`` format: per-utterance blocks, then the
    ``%WER``/``%SER``/``Scored`` lines) and, with ``--error-report``, an aligned
    error report (worst utterances first, most frequent confusions); missing output
    directories are created. Prints the ``%WER`` summary line on stdout.

    Exit status: 0 on success, 1 if REF or HYP cannot be read or has errors
    (duplicate keys, invalid UTF-8), 2 on bad usage.
    """
    parser = tool_parser(compute_cer_main, prog)
    parser.add_argument("ref", help="reference 'key text' file (e.g. data/test/text)")
    parser.add_argument("hyp", help="hypothesis 'key text' file (e.g. 1best_recog/text)")
    parser.add_argument("out", help="output text.cer path")
    parser.add_argument(
        "--error-report", metavar="PATH", help="also write an aligned error report (worst utterances first)"
    )
    args = parser.parse_args(argv)
    try:
        refs = read_transcripts(args.ref, "reference")
        hyps = read_transcripts(args.hyp, "hypothesis")
    except DataDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    outputs = [("out", args.out), ("--error-report", args.error_report)]
    for label, path in outputs:
        clobbered = output_clobbers_input(path, [args.ref, args.hyp]) if path else None
        if clobbered is None and label == "--error-report" and path and same_file(path, args.out):
            clobbered = args.out
        if clobbered is not None:
            print(
                f"error: {label} {path}: is the same file as the input {clobbered}; choose another path",
                file=sys.stderr,
            )
            return 1
    report = score_corpus(refs, hyps)
    try:
        for path in filter(None, (args.out, args.error_report)):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_text_cer(args.out, report)
        if args.error_report:
            write_error_report(args.error_report, report)
    except OSError as e:
        print(f"error: cannot write {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    for keys, what in (
        (report.missing_hyp, "reference(s) have no hypothesis, counted as deletions"),
        (report.extra_hyp, "hypothesis key(s) have no reference, not scored"),
    ):
        if keys:
            more = f" ... ({len(keys) - 10} more)" if len(keys) > 10 else ""
            print(f"warning: {len(keys)} {what}: {' '.join(keys[:10])}{more}", file=sys.stderr)
    print(report.summary_line())
    return 0
