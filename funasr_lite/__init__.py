"""funasr-lite: a small, exact and fast re-implementation of FunASR's Paraformer recipes.

    >>> import funasr_lite
    >>> asr = funasr_lite.load_model("path/to/model_dir", device="cpu")
    >>> asr.transcribe(["a.wav"])[0]["text"]
"""

from funasr_lite.decode.transcribe import DecodeOptions, Transcriber, load_model

__version__ = "0.1.0"
__all__ = ["load_model", "DecodeOptions", "Transcriber", "__version__"]
