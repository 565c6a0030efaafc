"""Small helpers every layer uses: atomic file writes (:mod:`~funasr_lite.utils.fileio`) and the default
torch device (:mod:`~funasr_lite.utils.device`)."""
