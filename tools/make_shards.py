#!/usr/bin/env python3
"""``funasr-lite make-shards``, kept for ``python tools/make_shards.py``: the Usage is in ``--help``."""

from funasr_lite.cli.data_tools import make_shards_main as main

if __name__ == "__main__":
    raise SystemExit(main())
