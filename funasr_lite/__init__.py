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

from funasr_lite.utils.lazy import lazy_exports

__version__ = "0.1.0"
__all__ = ["load_model", "DecodingOptions", "Transcriber", "__version__"]

# Imported on first use, so that the torch-free parts (CER scoring, data dir checks, the
# command-line help) do not import torch.
_LAZY = {
    "load_model": "funasr_lite.decode.transcribe",
    "Transcriber": "funasr_lite.decode.transcribe",
    "DecodingOptions": "funasr_lite.decode.options",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
