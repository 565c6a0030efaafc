"""funasr-lite: a small, exact and fast re-implementation of FunASR's Paraformer recipes.

    >>> import funasr_lite
    >>> asr = funasr_lite.load_model("path/to/model_dir", device="cpu")
    >>> asr.transcribe(["a.wav"])[0]["text"]

The package is layered by concern; each subpackage's docstring says what it holds:
``data`` (data dirs, audio, frontend, tokenizer, training data), ``models`` (network blocks, models, the
registry), ``decode`` (search, the Python API, the data-dir job, CER), ``train`` (the training loop,
checkpoints, finetuning), ``config`` (strict config.yaml reading and layered merging), ``hub`` (model dirs),
``cli`` (recipe flags and the ``funasr-lite`` command) and ``utils``.
"""

__version__ = "0.1.0"
__all__ = ["load_model", "DecodingOptions", "Transcriber", "__version__"]

# Imported on first use, so that the torch-free parts (CER scoring, data dir checks, the
# command-line help) do not import torch.
_LAZY = {
    "load_model": "funasr_lite.decode.transcribe",
    "Transcriber": "funasr_lite.decode.transcribe",
    "DecodingOptions": "funasr_lite.decode.options",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
