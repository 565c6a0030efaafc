#!/usr/bin/env python3
"""``funasr-lite compute-cer``, kept for ``python tools/compute_cer.py``: the Usage is in ``--help``."""

from funasr_lite.cli.score import compute_cer_main as main

if __name__ == "__main__":
    raise SystemExit(main())
