"""Voice activity detection: FunASR's FSMN-VAD (``fsmn-vad``), exact to FunASR 1.4.16.

    from funasr_lite.vad import load_vad
    vad = load_vad("fsmn-vad", device="cpu")      # or a local model dir; **overrides: model_conf keys
    segments = vad.segments(wav)                  # wav: (S,) float32 at vad.sample_rate -> [[start_ms, end_ms], ...]

Modules: ``config`` (the strict config.yaml schema), ``frontend`` (streamed fbank + LFR + CMVN),
``detector`` (the segment state machine), ``model`` (:class:`VadModel`, :func:`load_vad`). The encoder is
:mod:`funasr_lite.models.fsmn_vad`.
"""

__all__ = ["load_vad", "VadModel"]

# Imported on first use, so that importing the package (or its torch-free config) does not import torch.
_LAZY = {"load_vad": "funasr_lite.vad.model", "VadModel": "funasr_lite.vad.model"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
