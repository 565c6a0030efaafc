#!/usr/bin/env python3
"""``funasr-lite compute-cmvn``, kept for ``python tools/compute_cmvn.py``: the Usage is in ``--help``."""

from funasr_lite.cli.data_tools import compute_cmvn_main as main

if __name__ == "__main__":
    raise SystemExit(main())
