"""Small helpers every layer uses: atomic file writes (:mod:`~funasr_lite.utils.fileio`), reading UTF-8 text
(:mod:`~funasr_lite.utils.textio`), the default torch device (:mod:`~funasr_lite.utils.device`), the
per-epoch seed formula (:mod:`~funasr_lite.utils.seeding`), handing freed heap memory back
(:mod:`~funasr_lite.utils.memory`) and the packages' lazy exports (:mod:`~funasr_lite.utils.lazy`)."""
