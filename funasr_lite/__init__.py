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


def __getattr__(name):
    # imported on first use, so that ``import funasr_lite.decode.cer`` (scoring) never loads torch
    if name in ("load_model", "Transcriber"):
        from funasr_lite.decode import transcribe

        return getattr(transcribe, name)
    if name == "DecodingOptions":
        from funasr_lite.decode.options import DecodingOptions

        return DecodingOptions
    raise AttributeError(f"module 'funasr_lite' has no attribute {name!r}")
