"""Punctuation restoration with FunASR's CT-Transformer models (``ct-punc``, ``ct-punc-c``).

    >>> from funasr_lite.punc import load_punc
    >>> punc = load_punc("path/to/punc_model_dir")
    >>> punc.punctuate("今天天气不错我们出去走走吧").text

Modules: ``config`` (strict config.yaml schema), ``model_dir`` (which files a dir holds), ``units`` (text ->
units and ids), ``window`` (FunASR's sliding window and text writing, torch-free), ``api`` (loading and
:class:`PuncModel`). The network itself is :mod:`funasr_lite.models.ct_transformer`.
"""

from funasr_lite.utils.lazy import lazy_exports

__all__ = ["load_punc", "PuncModel", "PuncResult"]

# Imported on first use, so that importing the package does not import torch.
_LAZY = {"load_punc": "funasr_lite.punc.api", "PuncModel": "funasr_lite.punc.api", "PuncResult": "funasr_lite.punc.api"}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
