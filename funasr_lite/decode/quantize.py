"""Dynamic int8 quantization of a loaded model for CPU decoding (``--quantize int8``, ``quantize="int8"``).

Every ``nn.Linear`` (SANM attention projections, feed-forward layers, the CIF output, the decoder's output
layer: 98% of a Paraformer's multiply-adds) becomes PyTorch's dynamically quantized Linear: int8 weights
with one scale per output channel, activations quantized per batch at run time, int32 accumulation
(fbgemm / oneDNN kernels). Built with ``torch.ao.quantization.quantize_dynamic``, PyTorch's own tooling.
The depthwise FSMN convolutions, LayerNorms and the CIF convolution stay fp32 (a small share of the time,
and PyTorch has no dynamic int8 kernel for them). The parameter names of the fp32 model are untouched: the
weights are quantized after the fp32 checkpoint is loaded, in memory (about 3 s for paraformer-large on
2 threads).

:func:`quantized_structure` builds the same module tree without computing anything, for loading a saved
quantized state_dict (``model_quant.pt``, see :mod:`funasr_lite.decode.quantized_dir`).

Those kernels are CPU kernels, so :func:`check_quantize` refuses a CUDA device.
"""

import contextlib
import warnings
from typing import Dict, Iterator, Optional, Tuple

import torch
from torch import nn

from funasr_lite.decode.options import QUANTIZE_MODES
from funasr_lite.errors import ConfigError

__all__ = ["QUANTIZE_MODES", "check_quantize", "quantize_model", "quantized_structure", "quiet_quantization_warnings"]


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
    with quiet_quantization_warnings():
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def quantized_structure(model: nn.Module, mode: str) -> Dict[str, Tuple[int, int, bool]]:
    """Give ``model`` (in place, eval mode) the module tree :func:`quantize_model` produces, without
    quantizing: each module whose type is exactly ``nn.Linear`` (the rule of ``quantize_dynamic`` with a
    type-keyed qconfig) becomes the class PyTorch's default dynamic mapping names for it (its dynamic int8
    Linear) holding no weights yet. The Linear layers may be on the meta device (nothing is read from them).

    Load a quantized state_dict into the result with ``load_state_dict``. The new modules are built with a
    1x1 placeholder weight, then given the layer's ``in_features``/``out_features``: the class's constructor
    would pack an uninitialised full-size int8 weight that loading replaces at once (0.6 s and 220 MB for
    paraformer-large). Until loaded, the modules must not run.

    Returns:
        name -> (out_features, in_features, has_bias) of every replaced layer, to check the loaded weights'
        shapes against.
    """
    check_quantize(mode, torch.device("cpu"))
    model.eval()
    with quiet_quantization_warnings():
        from torch.ao.quantization.quantization_mappings import get_default_dynamic_quant_module_mappings

        dynamic_linear = get_default_dynamic_quant_module_mappings()[nn.Linear]
        sizes: Dict[str, Tuple[int, int, bool]] = {}
        for parent_name, parent in list(model.named_modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is not nn.Linear:
                    continue
                has_bias = child.bias is not None
                quantized = dynamic_linear(1, 1, bias_=has_bias, dtype=torch.qint8)
                quantized.in_features, quantized.out_features = child.in_features, child.out_features
                setattr(parent, child_name, quantized)
                sizes[f"{parent_name}.{child_name}" if parent_name else child_name] = (
                    child.out_features,
                    child.in_features,
                    has_bias,
                )
    return sizes


@contextlib.contextmanager
def quiet_quantization_warnings() -> Iterator[None]:
    """torch 2.x marks torch.ao.quantization (and quantized tensors) as deprecated in favour of torchao (not
    a dependency here); quantize_dynamic, the quantized Linear and their kernels work unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield
