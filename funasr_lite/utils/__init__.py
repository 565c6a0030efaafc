"""Small helpers every layer uses: atomic file writes (:mod:`~funasr_lite.utils.fileio`)."""
