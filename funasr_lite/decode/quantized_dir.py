"""Saved int8 weights: ``model_quant.pt`` and its sidecar ``model_quant.json`` (``funasr-lite quantize``).

``model_quant.pt`` is the state_dict of the model :func:`~funasr_lite.decode.quantize.quantize_model` makes
(``torch.save``; the int8 weights with their per-channel scales, the fp32 rest); reloading it skips the fp32
load and the quantization (paraformer-large-shaped: a 243 MB file instead of 880 MB; import+load 2.2 s
instead of 5.1 s on 2 threads, peak RSS 1006 instead of 1625 MiB). The sidecar records what it was made
from::

    {"format": 1, "quantize": "int8", "weights": {"file": "model_quant.pt", "size": 243721841},
     "source": {"file": "model.pt", "size": 880640647, "mtime_ns": 1764476280000000000},
     "torch": "2.14.1+cu130", "funasr_lite": "0.1.0"}

A decode with ``--quantize MODE`` loads ``model_quant.pt`` when the sidecar says MODE, its size is the
file's, and the source weights, when the dir holds them (the fp32 file being decoded: the layout's, or
``--checkpoint``), have the recorded name, size and mtime. Otherwise it quantizes the fp32 weights in memory
and says why (a warning when the saved file is stale or incomplete). A dir without fp32 weights has only the
saved file to decode: then a mismatch is a :class:`~funasr_lite.errors.CheckpointError`.

Writes are atomic (temporary file + rename): the old sidecar is removed first, then the copied files and
``model_quant.pt`` are written, the sidecar last, so an interrupted save leaves no sidecar vouching for weights
or files it does not describe.
"""

import contextlib
import json
import logging
import os
from typing import Any, Dict, Optional, Tuple

from funasr_lite.errors import CheckpointError, ModelDirError
from funasr_lite.hub.model_dir import QUANTIZED_NAME, ModelDir, detect_model_dir
from funasr_lite.utils.fileio import atomic_copy, atomic_torch_save, atomic_write_json, same_file

__all__ = ["QUANTIZED_NAME", "SIDECAR_NAME", "saved_quantized", "save_quantized"]

logger = logging.getLogger(__name__)

SIDECAR_NAME = "model_quant.json"
FORMAT = 1


def _stamp(path: str) -> Dict[str, Any]:
    """Name, size and mtime of a weights file: cheap (no hash of 900 MB), and any rewrite changes the mtime."""
    st = os.stat(path)
    return {"file": os.path.basename(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_sidecar(path: str) -> Dict[str, Any]:
    """The sidecar's content; CheckpointError naming the file when it is missing or malformed."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (it records what {QUANTIZED_NAME} was made from)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable: {e}") from None
    ok = (
        isinstance(obj, dict)
        and obj.get("format") == FORMAT
        and isinstance(obj.get("quantize"), str)
        and isinstance(obj.get("weights"), dict)
        and isinstance(obj.get("source"), dict)
    )
    if not ok:
        raise CheckpointError(f"{path}: not a format-{FORMAT} {SIDECAR_NAME} (quantize, weights, source)")
    return obj


def _mismatch(md: ModelDir, mode: str) -> Tuple[Optional[str], bool]:
    """Why ``md.quantized`` cannot stand for the weights a ``--quantize mode`` decode of ``md`` wants (None if
    it can), and whether that is a fault (stale or incomplete) rather than a choice (``--checkpoint`` names
    other fp32 weights than it was made from). Raises CheckpointError for a missing or malformed sidecar."""
    sidecar = os.path.join(md.root, SIDECAR_NAME)
    info = _read_sidecar(sidecar)
    if info["quantize"] != mode:
        return f"{sidecar} says {md.quantized} holds {info['quantize']} weights, not {mode}", True
    size = os.path.getsize(md.quantized)
    if info["weights"].get("size") != size:
        return f"{md.quantized} has {size} bytes, but {sidecar} recorded {info['weights'].get('size')}", True
    if md.checkpoint is None:
        return None, False
    source, now = info["source"], _stamp(md.checkpoint)
    if source.get("file") != now["file"]:
        return f"{md.quantized} was made from {source.get('file')}, not {now['file']} (the weights decoded)", False
    if (source.get("size"), source.get("mtime_ns")) != (now["size"], now["mtime_ns"]):
        return (
            f"{md.checkpoint} changed since {md.quantized} was made from it (size {now['size']} vs "
            f"{source.get('size')}, mtime_ns {now['mtime_ns']} vs {source.get('mtime_ns')} in {sidecar})"
        ), True
    return None, False


def saved_quantized(md: ModelDir, mode: str) -> Optional[str]:
    """The ``model_quant.pt`` a ``--quantize mode`` decode of ``md`` loads, or None: quantize in memory.

    Logs which; warns when a saved file exists but is stale or incomplete (the fp32 weights are used).

    Raises:
        CheckpointError: the dir has no fp32 weights and its saved file does not match ``mode``, or lacks
            a valid sidecar.
    """
    if md.quantized is None:
        return None
    try:
        why, fault = _mismatch(md, mode)
    except CheckpointError as e:
        if md.checkpoint is None:
            raise
        why, fault = str(e), True
    if why is None:
        logger.info("int8: loading the saved %s (%s)", md.quantized, SIDECAR_NAME)
        return md.quantized
    if md.checkpoint is None:
        raise CheckpointError(f"{why}; the dir has no fp32 weights to quantize instead")
    (logger.warning if fault else logger.info)(
        "%s: ignoring it, quantizing %s in memory%s",
        why,
        md.checkpoint,
        f" (rewrite it with: funasr-lite quantize --model_dir {md.root})" if fault else "",
    )
    return None


def save_quantized(model_dir: str, output_dir: Optional[str] = None, mode: str = "int8") -> str:
    """Quantize the fp32 weights of ``model_dir`` (:func:`~funasr_lite.decode.quantize.quantize_model`) and
    save them as ``model_quant.pt`` with its sidecar; return the path of ``model_quant.pt``.

    Without ``output_dir`` both go into ``model_dir``, next to the fp32 weights. With it, ``output_dir``
    becomes a complete model dir without the fp32 weights: every other file the loader reads (config.yaml,
    CMVN, token list, seg_dict, decoding.yaml, finetune.yaml, configuration.json) is copied at its relative
    path; decode it with ``--quantize mode``.

    Raises:
        ModelDirError: ``model_dir`` is incomplete or has no fp32 weights; ``output_dir`` is not a directory or
            holds fp32 weights of the same name (they would not be the ones quantized); a file lies outside
            ``model_dir``.
        CheckpointError, ConfigError: the model dir does not load.
    """
    from funasr_lite.decode.transcribe import Transcriber  # transcribe imports this module's loaders

    md = detect_model_dir(model_dir)
    out = os.path.abspath(output_dir) if output_dir else md.root
    if os.path.lexists(out) and not os.path.isdir(out):  # before the model loads, not at makedirs after it
        raise ModelDirError(f"output dir {out}: exists and is not a directory")
    separate = not (os.path.isdir(out) and os.path.samefile(out, md.root))
    files = [md.config, md.cmvn, md.tokens, md.seg_dict, md.decoding_yaml, md.finetune_yaml]
    files.append(os.path.join(md.root, "configuration.json"))
    files = [f for f in files if f and os.path.isfile(f)]
    if separate:
        weights_there = os.path.join(out, os.path.relpath(md.checkpoint, md.root))
        if os.path.exists(weights_there) and not same_file(weights_there, md.checkpoint):
            raise ModelDirError(
                f"{out} holds fp32 weights {weights_there} that are not {md.checkpoint}: a model dir has one "
                "model; give an empty or new --output_dir"
            )
        outside = [f for f in files if os.path.relpath(f, md.root).startswith(os.pardir)]
        if outside:
            raise ModelDirError(f"{md.root}: {', '.join(outside)} lie outside the dir; cannot copy its layout")
    asr = Transcriber(md, "cpu", quantize=mode, reuse_saved=False)
    state = asr.model.state_dict()  # the quantized layers' packed weights, unpacked: (int8 weight, bias)
    os.makedirs(out, exist_ok=True)
    quantized = os.path.join(out, QUANTIZED_NAME)
    sidecar = os.path.join(out, SIDECAR_NAME)
    # the old sidecar goes first: until the new one is written, an older save in the dir must not be vouched
    # for next to the config, CMVN and token list copied below (they may be another model's)
    with contextlib.suppress(FileNotFoundError):  # a concurrent run may have removed it
        os.unlink(sidecar)
    if separate:
        for f in files:
            dst = os.path.join(out, os.path.relpath(f, md.root))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            atomic_copy(f, dst)
    atomic_torch_save(state, quantized)
    import torch

    from funasr_lite import __version__

    atomic_write_json(
        sidecar,
        {
            "format": FORMAT,
            "quantize": mode,
            "weights": {"file": QUANTIZED_NAME, "size": os.path.getsize(quantized)},
            "source": _stamp(md.checkpoint),
            "torch": torch.__version__,
            "funasr_lite": __version__,
        },
    )
    logger.info("wrote %s (%s of %s) and %s", quantized, mode, md.checkpoint, sidecar)
    return quantized
