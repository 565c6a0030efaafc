#!/usr/bin/env python3
"""``funasr-lite make-model-dir``, kept for ``python tools/make_model_dir.py``: the Usage is in ``--help``."""

from funasr_lite.cli.model_tools import make_model_dir_main as main

if __name__ == "__main__":
    raise SystemExit(main())
