#!/usr/bin/env python3
"""``funasr-lite quantize``, kept for ``python tools/quantize.py``: the Usage is in ``--help``."""

from funasr_lite.cli.model_tools import quantize_main as main

if __name__ == "__main__":
    raise SystemExit(main())
