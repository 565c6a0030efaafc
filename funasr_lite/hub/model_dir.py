"""ModelScope Paraformer model dirs: layout detection and safe checkpoint loading.

Two layouts are supported, each read as FunASR writes it (nothing is converted):

* FunASR 1.x: ``config.yaml model.pt tokens.json am.mvn [seg_dict] [configuration.json]``.
  When ``configuration.json`` has ``file_path_metas``, its entries (relative to
  the dir) name the files; otherwise the fixed names above are used.
* Legacy 0.x: ``configuration.json`` whose ``model.am_model_name`` names the
  checkpoint (``model.pb``) and whose ``model.model_config`` names
  ``am_model_config`` (config.yaml, with ``token_list``), ``asr_model_config``
  (decoding.yaml) and ``mvn_file`` (am.mvn); plus ``finetune.yaml``,
  ``tokens.txt`` and ``seg_dict`` when present.

Either layout may also hold ``model_quant.pt``, the int8 weights ``funasr-lite quantize`` writes (with its
sidecar ``model_quant.json``, see :mod:`funasr_lite.decode.quantized_dir`); a dir written with
``--output_dir`` has only those, no fp32 weights, and is detected as such when the caller decodes with
``--quantize int8`` (``quantized_only_ok``).
"""

import collections
import logging
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from funasr_lite.errors import CheckpointError, ModelDirError, NonFiniteError
from funasr_lite.hub.metas import read_configuration

logger = logging.getLogger(__name__)

# the int8 weights funasr-lite quantize writes into a model dir (the name mirrors funasr-onnx's model_quant.onnx)
QUANTIZED_NAME = "model_quant.pt"
# the key suffix of a dynamically quantized Linear's packed (int8 weight, bias) in its state_dict
PACKED_SUFFIX = "._packed_params._packed_params"


@dataclass
class ModelDir:
    """The files of one model dir, as absolute paths (None where absent)."""

    # the directory itself
    root: str
    # "1.x" or "0.x"
    layout: str
    # model config (config.yaml)
    config: str
    # fp32 weights file (model.pt, model.pb, or a finetuned *.pb); None only in a dir that holds int8
    # weights alone, detected with quantized_only_ok
    checkpoint: Optional[str]
    # CMVN stats in Kaldi nnet1 text format (am.mvn)
    cmvn: Optional[str] = None
    # token list file (tokens.json / tokens.txt); None when config.yaml has token_list
    tokens: Optional[str] = None
    # English word -> @@ pieces dictionary
    seg_dict: Optional[str] = None
    # decoding overrides (0.x decoding.yaml)
    decoding_yaml: Optional[str] = None
    # finetuning overrides (0.x finetune.yaml)
    finetune_yaml: Optional[str] = None
    # parsed configuration.json ({} when absent)
    configuration: Dict = field(default_factory=dict)
    # the token list file name the layout looks for (e.g. configuration.json's tokenizer_conf.token_list)
    tokens_name: str = ""
    # int8 weights written by funasr-lite quantize (model_quant.pt), when present
    quantized: Optional[str] = None

    def no_tokens_message(self) -> str:
        """Why there is no token list, naming the file that was looked for (not a generic pair of names)."""
        name = self.tokens_name or "tokens.json"
        return f"{self.root}: no {name} (the token list this model dir names) and no token_list in {self.config}"


def _optional(root: str, name: Optional[str]) -> Optional[str]:
    if not name:
        return None
    path = os.path.join(root, name)
    return path if os.path.isfile(path) else None


def _require(root: str, name: str, what: str, missing: List[str]) -> str:
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        missing.append(f"{name} ({what})")
    return path


def detect_model_dir(root: str, checkpoint: Optional[str] = None, quantized_only_ok: bool = False) -> ModelDir:
    """Find the files of the model dir ``root`` and check that they exist. ``checkpoint``: a weights file
    name inside ``root`` (or a path) that replaces the one the layout names, e.g. ``valid.acc.ave.pb``.
    ``quantized_only_ok``: the caller decodes with ``--quantize int8``, so a dir whose fp32 weights are absent
    but which holds ``model_quant.pt`` is complete (its ``checkpoint`` is None).

    Raises:
        ModelDirError: the dir does not exist, or required files are missing
            (all of them are listed).
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ModelDirError(f"model dir {root} does not exist")
    conf_json = os.path.join(root, "configuration.json")
    configuration = read_configuration(conf_json) if os.path.isfile(conf_json) else {}
    model_section = configuration.get("model") if isinstance(configuration.get("model"), dict) else {}
    missing: List[str] = []

    if "am_model_name" in model_section:  # legacy 0.x
        mc = model_section.get("model_config") or {}
        layout = "0.x"
        config = mc.get("am_model_config", "config.yaml")
        weights = (model_section["am_model_name"], "weights, configuration.json model.am_model_name")
        cmvn = mc.get("mvn_file", "am.mvn")
        tokens, seg_dict = "tokens.txt", "seg_dict"
        decoding = mc.get("asr_model_config", "decoding.yaml")
    else:  # 1.x
        metas = configuration.get("file_path_metas") or {}
        tok_conf = metas.get("tokenizer_conf") or {}
        layout = "1.x"
        config = metas.get("config", "config.yaml")
        weights = (metas.get("init_param", "model.pt"), "weights")
        cmvn = (metas.get("frontend_conf") or {}).get("cmvn_file", "am.mvn")
        tokens = tok_conf.get("token_list") or (
            "tokens.json" if os.path.isfile(os.path.join(root, "tokens.json")) else "tokens.txt"
        )
        seg_dict = tok_conf.get("seg_dict_file") or tok_conf.get("seg_dict") or "seg_dict"
        decoding = "decoding.yaml"
    md = ModelDir(
        root=root,
        layout=layout,
        config=_require(root, config, "model config", missing),
        checkpoint=_require(root, *weights, missing) if checkpoint is None else "",
        quantized=_optional(root, QUANTIZED_NAME),
        cmvn=_require(root, cmvn, "CMVN stats", missing),
        tokens=_optional(root, tokens),
        seg_dict=_optional(root, seg_dict),
        decoding_yaml=_optional(root, decoding),
        finetune_yaml=_optional(root, "finetune.yaml"),
        configuration=configuration,
        tokens_name=tokens if isinstance(tokens, str) else "",
    )
    if checkpoint is not None:
        path = checkpoint if os.path.isabs(checkpoint) or os.path.isfile(checkpoint) else os.path.join(root, checkpoint)
        if not os.path.isfile(path):
            available = sorted(f for f in os.listdir(root) if f.endswith((".pb", ".pt", ".pth")))
            raise ModelDirError(
                f"checkpoint {checkpoint} not found in {root}; available: {', '.join(available) or 'none'}"
            )
        md.checkpoint = os.path.abspath(path)
    if checkpoint is None and md.quantized and not os.path.isfile(md.checkpoint):
        if quantized_only_ok:
            missing.remove(f"{weights[0]} ({weights[1]})")
            md.checkpoint = None
        else:
            missing[missing.index(f"{weights[0]} ({weights[1]})")] = (
                f"{weights[0]} ({weights[1]}; the dir holds int8 weights only, {QUANTIZED_NAME}: "
                'decode it with --quantize int8, or quantize="int8" in Python)'
            )
    if missing:
        raise ModelDirError(f"model dir {root} ({md.layout} layout) is missing: " + "; ".join(missing))
    return md


# Keys under which training frameworks wrap the weights inside a checkpoint file.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def load_failure(e: Exception, size: int) -> str:
    """Why ``torch.load(weights_only=True)`` failed on a file of ``size`` bytes, in words (no path)."""
    if isinstance(e, pickle.UnpicklingError):
        # weights_only names the global (function/class) it refused; else it rejected an opcode
        blocked = re.search(r"GLOBAL ([\w.]+)", str(e))
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        why = (
            f"unpickling it would call {blocked.group(1)}"
            if blocked
            else f"its pickle data was rejected: {min(lines, key=len) if lines else type(e).__name__}"
        )
        return (
            f"refused to load: not a plain weights file ({why}; weights_only=True blocked it). "
            "The file is corrupt, or holds code or objects besides tensors"
        )
    detail = str(e).splitlines()[0] if str(e).strip() else ""
    return f"truncated or corrupt ({size} bytes): {type(e).__name__}{': ' + detail if detail else ''}"


def _is_weight(value: Any) -> bool:
    """A state_dict value: a tensor; or, in a dynamically quantized Linear's state (``model_quant.pt``), its
    ``_packed_params.dtype`` (a torch.dtype) or ``_packed_params._packed_params`` (weight, bias or None)."""
    if isinstance(value, (torch.Tensor, torch.dtype)):
        return True
    return isinstance(value, tuple) and all(v is None or isinstance(v, torch.Tensor) for v in value)


def _tensors(value: Any) -> List[torch.Tensor]:
    """The tensors of one state_dict value (see :func:`_is_weight`)."""
    if isinstance(value, torch.Tensor):
        return [value]
    return [v for v in value if isinstance(v, torch.Tensor)] if isinstance(value, tuple) else []


def _with_metadata(new: Dict[str, Any], old: Dict[str, Any]) -> Dict[str, Any]:
    """``new`` carrying ``old``'s ``_metadata`` (the per-module state versions ``torch.save`` of a
    state_dict keeps, which a quantized Linear's loader reads to know its format)."""
    meta = getattr(old, "_metadata", None)
    if meta is not None:
        new = collections.OrderedDict(new)
        new._metadata = meta  # type: ignore[attr-defined]
    return new


def load_state_dict(path: str, mmap: bool = False, unchecked: Sequence[str] = ()) -> Dict[str, Any]:
    """Load a weights file safely (``weights_only=True``) and unwrap it.

    Accepts a bare state_dict, or one wrapped under ``state_dict``,
    ``model_state_dict`` or ``model`` (FunASR's ``model.pt.ep*`` and our own
    ``checkpoint.pb``); strips a DDP ``module.`` prefix. Besides tensors, the values may be the
    ``torch.dtype`` and ``(weight, bias)`` entries of dynamically quantized Linear layers
    (``model_quant.pt``); the state versions saved with the dict (``_metadata``) are kept. Every
    floating-point tensor is checked to be finite, except those named in ``unchecked``: the caller checks them
    where it reads them (with ``mmap``, a large embedding whose rows are looked up then stays on disk instead
    of being read whole).

    Raises:
        CheckpointError: missing, truncated or corrupt file; a pickle that
            carries code (refused by ``weights_only``); no tensors inside.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    size = os.path.getsize(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as e:  # any failure to parse untrusted bytes (KeyError, struct.error, ...) is reported
        raise CheckpointError(f"{path}: cannot load weights: {load_failure(e, size)}") from e
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and _is_weight(v) for k, v in obj.items()):
        raise CheckpointError(f"{path}: does not hold a state_dict of tensors")
    if all(k.startswith("module.") for k in obj):
        obj = _with_metadata({k[len("module.") :]: v for k, v in obj.items()}, obj)
    check_finite({k: v for k, v in obj.items() if k not in unchecked} if unchecked else obj, path)
    logger.info("loaded weights %s (%.1f MB, %d tensors)", path, size / 1e6, len(obj))
    return obj


class NonFiniteWeightsError(CheckpointError, NonFiniteError):
    """A checkpoint holds NaN or Inf weights."""


def check_finite(state: Dict[str, Any], path: str) -> None:
    """Refuse a state_dict whose floating-point tensors hold NaN or Inf (a diverged or corrupt training run):
    such weights decode to NaN, and finetuning from them cannot recover.

    Raises:
        NonFiniteWeightsError: naming the file, the first bad tensor and how many tensors are bad.
    """
    bad = []
    for name, value in state.items():
        for t in _tensors(value):  # a quantized layer's int8 weight: its scales, and its float bias
            t = _quantization_scales(t) if t.is_quantized else t
            if (t.is_floating_point() or t.is_complex()) and not _all_finite(t):
                bad.append((name, int(t.numel() - torch.isfinite(t).sum()), t.numel()))
    if bad:
        name, n, numel = bad[0]
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise NonFiniteWeightsError(
            f"{path}: tensor {name} holds {n} NaN/Inf values of {numel}{more}: the weights are not finite "
            "(a diverged training run or a corrupt file); use another checkpoint"
        )


def _quantization_scales(t: torch.Tensor) -> torch.Tensor:
    """The float scales of a quantized tensor (one per channel, or one): a NaN/Inf scale dequantizes its whole
    row to NaN/Inf."""
    if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric, torch.per_channel_affine_float_qparams):
        return t.q_per_channel_scales()
    return torch.tensor([t.q_scale()], dtype=torch.float64)


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64, torch.complex64, torch.complex128)


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every element is finite; numpy (one thread) for CPU tensors numpy can view: torch's multithreaded
    reduction costs up to ~1 s per checkpoint on a busy machine, numpy a few ms."""
    if t.device.type == "cpu" and t.dtype in _NUMPY_FLOATS:
        return bool(np.isfinite(t.detach().numpy()).all())
    return bool(torch.isfinite(t).all())


def load_weights_strict(model: torch.nn.Module, state: Dict[str, Any], path: str, assign: bool = False) -> None:
    """``load_state_dict(strict=True)`` with every missing/unexpected/mismatched key named.

    Non-tensor values (a quantized Linear's dtype and packed (weight, bias)) are checked by key here; their
    shapes are the caller's to check (:mod:`funasr_lite.decode.quantized_dir`).

    Raises:
        CheckpointError: the checkpoint does not match the model built from config.yaml.
    """
    own = model.state_dict()
    quantized = [k for k in state if k.endswith(PACKED_SUFFIX)]
    if quantized and not any(k.endswith(PACKED_SUFFIX) for k in own):
        raise CheckpointError(
            f"{path}: holds int8-quantized weights ({len(quantized)} quantized layers, e.g. {quantized[0]}), "
            'written by funasr-lite quantize: decode it with --quantize int8 (quantize="int8" in Python)'
        )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    both = [k for k in set(own) & set(state) if isinstance(own[k], torch.Tensor)]
    shape = sorted(k for k in both if not isinstance(state[k], torch.Tensor) or own[k].shape != state[k].shape)
    if missing or unexpected or shape:

        def listing(keys: List[str]) -> str:
            return ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        sizes = [f"{k} {_shape(state[k])} in file vs {tuple(own[k].shape)} from config" for k in shape]
        problems = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", sizes))
        parts = [f"{what}: {listing(keys)}" for what, keys in problems if keys]
        raise CheckpointError(f"{path}: does not match the model described by config.yaml; " + "; ".join(parts))
    if assign:  # the tensors become the parameters: give them the model's dtypes (as a copying load casts)
        cast = {k: own[k].dtype for k in both if state[k].dtype != own[k].dtype}
        state = _with_metadata({k: v.to(cast[k]) if k in cast else v for k, v in state.items()}, state)
    model.load_state_dict(state, strict=True, assign=assign)


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else f"(a {type(value).__name__})"
