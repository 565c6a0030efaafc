#!/usr/bin/env python3
"""``funasr-lite average-checkpoints``, kept for ``python tools/average_checkpoints.py``: the Usage is in ``--help``."""

from funasr_lite.cli.model_tools import average_checkpoints_main as main

if __name__ == "__main__":
    raise SystemExit(main())
