"""funasr-lite: a small, exact and fast re-implementation of FunASR's Paraformer recipes.

    >>> import funasr_lite
    >>> asr = funasr_lite.load_model("path/to/model_dir", device="cpu")
    >>> asr.transcribe(["a.wav"])[0]["text"]
"""

__version__ = "0.1.0"
__all__ = ["load_model", "DecodeOptions", "Transcriber", "__version__"]

# Imported on first use, so that the torch-free parts (CER scoring, data dir checks, the
# command-line help) do not import torch.
_LAZY = {"load_model": "funasr_lite.decode.transcribe", "Transcriber": "funasr_lite.decode.transcribe",
         "DecodeOptions": "funasr_lite.decode.transcribe"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
