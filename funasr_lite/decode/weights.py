"""The model a :class:`~funasr_lite.decode.transcribe.Transcriber` decodes with, and where its weights come from.

Three paths, each logged:

* fp32 (``quantize`` None): the dir's fp32 checkpoint, memory-mapped, becomes the parameters of a model built
  on the meta device (no random init), then cast to the decoding dtype;
* int8 from a saved ``model_quant.pt`` (:mod:`funasr_lite.decode.quantized_dir` says when it matches): the
  model is built on the meta device, its Linear layers swapped for empty dynamic int8 ones
  (:func:`~funasr_lite.decode.quantize.quantized_structure`) and the saved state loaded: no fp32 load and
  no quantization;
* int8 in memory: the fp32 path, then :func:`~funasr_lite.decode.quantize.quantize_model`.

Either way the state is checked strictly (every missing, unexpected or mis-shaped key named) and its
vocabulary against the token list.
"""

import gc
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn
from torch.ao.nn.quantized.modules.linear import LinearPackedParams

from funasr_lite.config.schema import ModelConfig
from funasr_lite.decode.quantize import quantize_model, quantized_structure, quiet_quantization_warnings
from funasr_lite.decode.quantized_dir import SIDECAR_NAME, saved_quantized
from funasr_lite.errors import CheckpointError, ModelDirError
from funasr_lite.hub.model_dir import PACKED_SUFFIX, ModelDir, load_state_dict, load_weights_strict
from funasr_lite.models.paraformer import Paraformer
from funasr_lite.models.registry import build_model
from funasr_lite.utils.fileio import same_file

__all__ = ["load_decoding_model"]

logger = logging.getLogger(__name__)

# the dtype a dynamically quantized Linear packs its weight for, in its state_dict after the layer's name
# (its (int8 weight, bias) is under PACKED_SUFFIX)
DTYPE = "._packed_params.dtype"


def load_decoding_model(
    md: ModelDir,
    config: ModelConfig,
    vocab_size: int,
    device: torch.device,
    dtype: torch.dtype,
    quantize: Optional[str],
    reuse_saved: bool = True,
) -> Tuple[Paraformer, str]:
    """Build the model ``config`` describes, with the weights of ``md``, in eval mode on ``device``; return
    it and the weights file it was loaded from.

    ``quantize``: ``"int8"`` for dynamic int8 Linear layers (CPU, fp32; checked by the caller);
    ``reuse_saved``: load a matching saved ``model_quant.pt`` instead of quantizing (False: always quantize
    the fp32 weights, as ``funasr-lite quantize`` does).

    Raises:
        CheckpointError: the weights do not load or do not match the config or the token list; the fp32
            checkpoint named is the dir's own ``model_quant.pt``.
        ModelDirError: the dir has int8 weights only, and they cannot be used.
    """
    if md.checkpoint is not None and md.quantized is not None and same_file(md.checkpoint, md.quantized):
        raise CheckpointError(
            f"--checkpoint {md.checkpoint}: names the int8 weights funasr-lite quantize saved, not fp32 weights: "
            "decode the dir with --quantize int8 and without --checkpoint (that loads them when "
            f"{SIDECAR_NAME} matches)"
        )
    saved = saved_quantized(md, quantize) if quantize and reuse_saved else None
    if saved is not None:
        return _load_saved(md, saved, config, vocab_size, quantize), saved
    if md.checkpoint is None:
        raise ModelDirError(f"{md.root}: has no fp32 weights (only {md.quantized}) to load or quantize")
    state = load_state_dict(md.checkpoint, mmap=True)
    _check_vocabulary(state.get("decoder.output_layer.weight"), vocab_size, md.checkpoint, md)
    with torch.device("meta"):  # no random init: the checkpoint's tensors become the parameters
        model = build_model(config, vocab_size=vocab_size)
    load_weights_strict(model, state, md.checkpoint, assign=True)
    del state  # with quantize, the fp32 tensors (mmap'ed file pages) go once the int8 copies exist
    model.to(device).eval()
    if dtype != torch.float32:
        model.to_decoding_dtype(dtype)
    if quantize:
        logger.info("%s: quantizing %s in memory", quantize, md.checkpoint)
        _own_memory(model)
        quantize_model(model, quantize)
        gc.collect()  # quantize_dynamic leaves the replaced fp32 Linear layers in reference cycles
    return model, md.checkpoint


def _load_saved(md: ModelDir, path: str, config: ModelConfig, vocab_size: int, mode: str) -> Paraformer:
    """The model with dynamic int8 Linear layers, its state loaded from the saved ``path``.

    Packing each saved (int8 weight, bias) for the int8 GEMM kernels (``quantized.linear_prepack``) is most
    of the load (1.0 s of CPU for paraformer-large), and it releases the GIL. So it starts in a pool of
    torch's CPU threads as soon as the file is read, largest layers first, while this thread builds the
    model, checks the state and loads it; the loader then takes each layer's packed weights from the pool.
    """
    with quiet_quantization_warnings():  # torch warns as it rebuilds quantized tensors
        state = load_state_dict(path, mmap=True)
    out = state.get("decoder.output_layer" + PACKED_SUFFIX)
    _check_vocabulary(out[0] if isinstance(out, tuple) and out else None, vocab_size, path, md)
    for key, value in state.items():  # the fp32 tensors out of the file's mapping, as _own_memory does (the
        # int8 weights are packed into copies; a packed layer keeps the bias it is given: its copy)
        state[key] = tuple(_copy(v) for v in value) if isinstance(value, tuple) else _copy(value)
    threads = torch.get_num_threads()  # --ncpu: with 1, each layer is packed as the loader reaches it
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    try:
        packing = _start_packing(pool, state) if pool is not None else {}
        with torch.device("meta"):
            model = build_model(config, vocab_size=vocab_size)
        sizes = quantized_structure(model, mode)
        _check_packed_shapes(state, sizes, path)
        _load_packed(model, state, path, packing)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # after a failure: no packing left running
    return model.eval()


def _start_packing(pool: ThreadPoolExecutor, state: Dict[str, Any]) -> Dict[int, "Future[Any]"]:
    """Submit the packing of every saved (qint8 weight, bias) in ``state`` to ``pool``, largest first; return
    ``id(weight)`` -> its future (anything else is left to the checks)."""
    jobs = [
        value
        for key, value in state.items()
        if key.endswith(PACKED_SUFFIX)
        and isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], torch.Tensor)
        and value[0].dtype == torch.qint8
    ]  # a job that fails (a bad bias, say) keeps its error in its future: the checks name the entry first
    jobs.sort(key=lambda job: -job[0].numel())
    return {id(w): pool.submit(_pack, w, b) for w, b in jobs}


def _pack(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> Any:
    """``quantized.linear_prepack(weight, bias)``, in inference mode: the op reads each output channel's scale
    and zero point with a tensor op of its own, and without autograd's bookkeeping those cost 15% less."""
    with torch.inference_mode():
        return torch.ops.quantized.linear_prepack(weight, bias)


def _load_packed(model: nn.Module, state: Dict[str, Any], path: str, packing: Dict[int, "Future[Any]"]) -> None:
    """:func:`load_weights_strict`, each int8 layer taking its packed weights from ``packing`` (what its
    ``set_weight_bias`` would compute for the same (weight, bias)), or packing them itself when not there."""
    holders = [m for m in model.modules() if isinstance(m, LinearPackedParams)]

    def set_weight_bias(holder: LinearPackedParams, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
        # (qint8: _check_packed_shapes refused any other dtype before the load)
        job = packing.get(id(weight))  # none with one thread: packed here, as the loader reaches the layer
        holder._packed_params = job.result() if job is not None else _pack(weight, bias)

    for holder in holders:  # an instance attribute shadows the class's method while the loader runs
        holder.set_weight_bias = lambda w, b, holder=holder: set_weight_bias(holder, w, b)
    try:
        load_weights_strict(model, state, path, assign=True)
    finally:
        for holder in holders:
            del holder.set_weight_bias


def _copy(value: Any) -> Any:
    """A float tensor's copy in memory of its own (detached: a saved bias is a Parameter, and a clone's
    autograd graph would keep the original, and with it the mapped file, alive); anything else as it is."""
    if isinstance(value, torch.Tensor) and not value.is_quantized:
        return value.detach().clone()
    return value


def _own_memory(model: torch.nn.Module) -> None:
    """Copy every parameter and buffer except the Linear weights (which int8 quantization replaces by packed
    copies) out of the memory-mapped weights file: the fp32 rest of an int8 model (LayerNorms, convolutions,
    embeddings, the Linear biases, which the packed layers keep a reference to: 21 MB for paraformer-large).
    Otherwise those few tensors keep the file's mapping, and with it every page read from the file, resident
    for the life of the model (the whole 900 MB fp32 checkpoint of paraformer-large: 1626 MiB RSS after
    loading instead of 784)."""
    for module in model.modules():
        linear = type(module) is torch.nn.Linear
        for name, param in module._parameters.items():
            if param is not None and not (linear and name == "weight"):
                module._parameters[name] = torch.nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad)
        for name, buf in module._buffers.items():
            if buf is not None:
                module._buffers[name] = buf.clone()


def _check_vocabulary(out: Any, vocab_size: int, path: str, md: ModelDir) -> None:
    """``out``: the decoder's output weight (one row per token), when the state has it."""
    if isinstance(out, torch.Tensor) and out.shape[0] != vocab_size:
        raise CheckpointError(
            f"{path}: the checkpoint's vocabulary has {out.shape[0]} tokens but the token list "
            f"({md.tokens or md.config}) has {vocab_size}: they belong to different models"
        )


def _check_packed_shapes(state: Dict[str, Any], sizes: Dict[str, Tuple[int, int, bool]], path: str) -> None:
    """Each saved quantized layer's (weight, bias) against the layer config.yaml describes (the placeholder
    modules of :func:`quantized_structure` have no shape to compare with); the keys are checked later."""
    bad = []
    for name, (rows, cols, has_bias) in sizes.items():
        value = state.get(name + PACKED_SUFFIX)
        if value is None:
            continue  # a missing key: named by load_weights_strict
        weight, bias = (value + (None, None))[:2] if isinstance(value, tuple) else (None, None)
        want = f"weight ({rows}, {cols}) qint8, " + (f"bias ({rows},) float32" if has_bias else "no bias")
        got = f"weight {_described(weight)}, " + (f"bias {_described(bias)}" if bias is not None else "no bias")
        if not (isinstance(value, tuple) and len(value) == 2 and got == want):
            bad.append(f"{name + PACKED_SUFFIX}: {got} in file vs {want} from config")
        kind = state.get(name + DTYPE)
        if kind is not None and kind != torch.qint8:  # the dtype the layer packs its weight for
            bad.append(f"{name + DTYPE}: {kind} in file vs torch.qint8")
    if bad:
        more = f" ... (+{len(bad) - 8} more)" if len(bad) > 8 else ""
        raise CheckpointError(
            f"{path}: does not match the model described by config.yaml; " + "; ".join(bad[:8]) + more
        )


def _described(value: Any) -> str:
    """A tensor's shape and dtype (``(208, 128) qint8``), else the value's type."""
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    return f"(a {type(value).__name__})"
