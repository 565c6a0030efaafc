#!/usr/bin/env python3
"""``funasr-lite validate-data-dir``, kept for ``python tools/validate_data_dir.py``: the Usage is in ``--help``."""

from funasr_lite.cli.data_tools import validate_data_dir_main as main

if __name__ == "__main__":
    raise SystemExit(main())
