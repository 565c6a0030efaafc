"""Dynamic int8 quantization of a loaded model for CPU decoding (``--quantize int8``, ``quantize="int8"``).

Every ``nn.Linear`` (SANM attention projections, feed-forward layers, the CIF output, the decoder's output
layer: 98% of a Paraformer's multiply-adds) becomes PyTorch's dynamically quantized Linear: int8 weights
with one scale per output channel, activations quantized per batch at run time, int32 accumulation
(fbgemm / oneDNN kernels). Built with ``torch.ao.quantization.quantize_dynamic``, PyTorch's own tooling.
The depthwise FSMN convolutions, LayerNorms and the CIF convolution stay fp32 (a small share of the time,
and PyTorch has no dynamic int8 kernel for them). The parameter names of the fp32 model are untouched: the
weights are quantized after the fp32 checkpoint is loaded, in memory (about 1 s for paraformer-large).

Those kernels are CPU kernels, so :func:`check_quantize` refuses a CUDA device.
"""

import warnings
from typing import Optional

import torch
from torch import nn

from funasr_lite.decode.options import QUANTIZE_MODES
from funasr_lite.errors import ConfigError

__all__ = ["QUANTIZE_MODES", "check_quantize", "quantize_model"]


def check_quantize(mode: Optional[str], device: Optional[torch.device] = None) -> None:
    """Raise :class:`~funasr_lite.errors.ConfigError` for a ``mode`` not in :data:`QUANTIZE_MODES` (None is
    fine), or for a quantized decode on a non-CPU ``device``."""
    if mode is None:
        return
    if mode not in QUANTIZE_MODES:
        raise ConfigError(f"--quantize {mode!r}: must be one of {', '.join(QUANTIZE_MODES)} (or unset for fp32)")
    if device is not None and torch.device(device).type != "cpu":
        raise ConfigError(
            f"--quantize {mode} runs on the CPU only (PyTorch's dynamic int8 kernels are CPU kernels), "
            f"but the device is {device}; pass --device cpu, or drop --quantize to decode in fp32 on the GPU"
        )


def quantize_model(model: nn.Module, mode: str) -> nn.Module:
    """Return ``model`` (in eval mode, on the CPU) with its Linear layers dynamically quantized to ``mode``.

    The modules are replaced in place; the model must not be trained afterwards.
    """
    check_quantize(mode, torch.device("cpu"))
    model.eval()
    with warnings.catch_warnings():
        # torch 2.x marks torch.ao.quantization as deprecated in favour of torchao (not a dependency here);
        # quantize_dynamic and its kernels work unchanged
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
