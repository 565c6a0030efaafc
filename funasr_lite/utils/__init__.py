"""Small helpers every layer uses: atomic file writes (:mod:`~funasr_lite.utils.fileio`) and the
per-epoch seed formula (:mod:`~funasr_lite.utils.seeding`)."""
