#!/usr/bin/env python3
"""Validate a Kaldi data dir (wav.scp, text) and print every problem found.

Usage:
    python tools/validate_data_dir.py data/test
    python tools/validate_data_dir.py data/train --mode train
    python tools/validate_data_dir.py data/test --no-check-audio

Each problem is printed as ``file:line: error: ...`` or ``file:line: warning: ...``.
``--mode train`` requires ``text`` and makes key mismatches errors; ``--mode infer``
(default) makes them warnings. Relative audio paths are resolved against the
current directory first, then against the data dir.

Exit status: 0 if there are no errors (warnings allowed), 1 if there are errors,
2 if the data dir cannot be read at all (missing dir, empty wav.scp, not UTF-8).
"""

import argparse
import os
import sys
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from funasr_lite.data.datadir import load_data_dir  # noqa: E402
from funasr_lite.errors import DataDirError  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    """Run the validator; return the exit status."""
    parser = argparse.ArgumentParser(description="Validate a Kaldi data dir (wav.scp, text).")
    parser.add_argument("data_dir", help="directory holding wav.scp and optionally text")
    parser.add_argument("--mode", choices=("infer", "train"), default="infer",
                        help="train: text required, key mismatches are errors (default: infer)")
    parser.add_argument("--no-check-audio", action="store_true",
                        help="do not check that the audio files exist")
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
    print(f"{args.data_dir}: {n_utt} utterances, {n_bad} with errors; "
          f"{n_err} error(s), {n_warn} warning(s)", file=sys.stderr)
    return 1 if n_err else 0


if __name__ == "__main__":
    sys.exit(main())
