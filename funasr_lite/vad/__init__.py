"""Voice activity detection: FunASR's FSMN-VAD (``fsmn-vad``), exact to FunASR 1.4.16.

    from funasr_lite.vad import load_vad
    vad = load_vad("fsmn-vad", device="cpu")      # or a local model dir; **overrides: model_conf keys
    segments = vad.segments(wav)                  # wav: (S,) float32 at vad.sample_rate -> [[start_ms, end_ms], ...]

Modules: ``config`` (the strict config.yaml schema), ``frontend`` (streamed fbank + LFR + CMVN),
``detector`` (the segment state machine), ``model`` (:class:`VadModel`, :func:`load_vad`). The encoder is
:mod:`funasr_lite.models.fsmn_vad`.
"""

from funasr_lite.utils.lazy import lazy_exports

__all__ = ["load_vad", "VadModel"]

# Imported on first use, so that importing the package (or its torch-free config) does not import torch.
_LAZY = {"load_vad": "funasr_lite.vad.model", "VadModel": "funasr_lite.vad.model"}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
