"""FSMN-VAD (``fsmn-vad``): a model dir -> :class:`VadModel`, whose :meth:`~VadModel.segments` returns what
FunASR 1.4.16's ``AutoModel(model=dir).generate(input=wav)[0]["value"]`` returns for the same dir and samples.

A waveform is processed as FunASR does it, in 60 s chunks: features, encoder memory and detector state carry
from chunk to chunk, so memory follows the chunk, not the file. Before each chunk FunASR applies a dynamic
end-silence schedule (on unless ``max_end_silence_time`` is given): from the first chunk that starts inside
speech until a chunk returns a segment, every chunk adds 60 s to a counter, and the counter picks the silence
that ends a segment (:data:`SILENCE_SCHEDULE` less ``speech_to_sil_time_thres``: 1850 ms at 0 s, 50 ms at
60 s, 0 ms above); the speech/noise threshold becomes 0.5. A chunk that returns a segment resets the counter.

Model dirs (FunASR 1.x layout, as ModelScope ships ``iic/speech_fsmn_vad_zh-cn-16k-common-pytorch``):
``config.yaml model.pt am.mvn`` or the files ``configuration.json``'s ``file_path_metas`` names. FunASR 1.4.16
cannot load a 0.x dir (``vad.yaml``/``vad.pb``), so there is nothing to be exact to, and it is refused.
"""

import logging
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from funasr_lite.data.frontend import load_cmvn
from funasr_lite.errors import AudioError, ModelDirError
from funasr_lite.hub.download import resolve_model
from funasr_lite.hub.metas import metas_name, read_configuration
from funasr_lite.hub.model_dir import load_state_dict, load_weights_strict
from funasr_lite.models.fsmn_vad import FSMNEncoder
from funasr_lite.utils.device import resolve_device
from funasr_lite.utils.textio import special_file_kind
from funasr_lite.vad.config import VadConfig, load_vad_config
from funasr_lite.vad.detector import SegmentDetector
from funasr_lite.vad.frontend import VadFrontend

__all__ = ["VadModel", "load_vad", "CHUNK_MS", "SILENCE_SCHEDULE"]

logger = logging.getLogger(__name__)

# FunASR's short names of VAD models on ModelScope.
# FunASR processes a whole input in chunks of this many ms.
CHUNK_MS = 60000
# (speech ms accumulated up to, end silence ms): FunASR 1.4.16's schedule for whole inputs.
SILENCE_SCHEDULE: Tuple[Tuple[float, int], ...] = (
    (10000, 2000),
    (20000, 1000),
    (30000, 800),
    (40000, 600),
    (50000, 400),
    (60000, 200),
    (float("inf"), 100),
)
# speech/noise threshold while the schedule is on
SCHEDULE_SPEECH_NOISE_THRES = 0.5


class VadModel(nn.Module):
    """FSMN encoder + streaming frontend + segment detector; build with :func:`load_vad`."""

    def __init__(self, config: VadConfig, cmvn: Optional[torch.Tensor], dynamic_silence: bool = True):
        super().__init__()
        self.config = config  # the validated config.yaml (with overrides)
        self.dynamic_silence = dynamic_silence  # FunASR's per-chunk end-silence schedule
        self.cmvn = cmvn  # (2, n_mels*lfr_m) AddShift/Rescale or None; features are made on the CPU
        self.encoder = FSMNEncoder(**config.encoder_conf.kwargs())

    @property
    def sample_rate(self) -> int:
        """The sample rate :meth:`segments` expects, Hz."""
        return self.config.frontend_conf.fs

    def _decibels(self, span: torch.Tensor, rows: int) -> List[float]:
        """Energy in dB of each frame of ``span`` (FunASR's float32 numpy arithmetic)."""
        mc = self.config.model_conf
        flen = int(mc.frame_length_ms * mc.sample_rate / 1000)
        hop = int(mc.frame_in_ms * mc.sample_rate / 1000)
        w = span.numpy()
        offsets = np.arange(0, w.shape[0] - flen + 1, hop)[:rows]
        frames = w[offsets[:, None] + np.arange(flen)]
        return (10 * np.log10(np.sum(np.square(frames), axis=1) + 0.000001)).tolist()

    def _silence_probs(self, probs: torch.Tensor) -> List[float]:
        ids = self.config.model_conf.sil_pdf_ids
        if len(ids) == 1:
            return probs[:, ids[0]].tolist()
        return [sum(row) for row in probs[:, ids].tolist()]

    def _schedule(self, detector: SegmentDetector, accumulated_ms: float) -> None:
        s2s = self.config.model_conf.speech_to_sil_time_thres
        for limit_ms, silence_ms in SILENCE_SCHEDULE:
            if accumulated_ms <= limit_ms:
                detector.end_silence_ms = max(silence_ms - s2s, 0)
                detector.speech_noise_thres = SCHEDULE_SPEECH_NOISE_THRES
                return

    @torch.inference_mode()
    def segments(self, wav: torch.Tensor) -> List[List[int]]:
        """Speech segments of ``wav``.

        Args:
            wav: (S,) float32 samples at :attr:`sample_rate` (resample first, e.g. with funasr_lite.data.audio).

        Returns:
            ``[[start_ms, end_ms], ...]`` in time order, as FunASR returns them.

        Raises:
            AudioError: not a 1-D float32 tensor, or NaN/Inf samples.
        """
        if not isinstance(wav, torch.Tensor):
            raise AudioError(f"VAD input must be a torch.Tensor of samples, got {type(wav).__name__}")
        if wav.ndim != 1:
            raise AudioError(
                f"VAD input must be a 1-D waveform (S,) at {self.sample_rate} Hz, got shape {tuple(wav.shape)}; "
                "average channels and resample first"
            )
        if wav.dtype != torch.float32:
            raise AudioError(f"VAD input must be float32 samples in [-1, 1], got {wav.dtype}")
        wav = wav.detach().cpu()
        if wav.numel() == 0:
            return []
        if not bool(torch.isfinite(wav).all()):
            raise AudioError("VAD input has NaN/Inf samples")
        device = next(self.encoder.parameters()).device
        stride = int(CHUNK_MS * self.sample_rate / 1000)
        chunks = wav.numel() // stride + 1
        frontend = VadFrontend(self.config.frontend_conf, self.cmvn)
        detector = SegmentDetector(self.config.model_conf)
        state = self.encoder.initial_state(device=device)
        accumulated_ms, in_speech, out = 0, False, []
        for i in range(chunks):
            final = i == chunks - 1
            if self.dynamic_silence:
                if detector.in_speech or in_speech:
                    accumulated_ms += CHUNK_MS
                    in_speech = True
                self._schedule(detector, accumulated_ms)
            ready = frontend.accept(wav[i * stride : (i + 1) * stride], final)
            if ready is None:
                continue
            feats, span = ready
            probs, state = self.encoder(feats.to(device), state)
            found = detector.detect(
                self._silence_probs(probs[0].float().cpu()), self._decibels(span, feats.shape[1]), final
            )
            if found:
                out.extend(found)
                accumulated_ms, in_speech = 0, False
        return out


def _vad_files(root: str) -> Tuple[str, str, Optional[str]]:
    """(config.yaml, weights, am.mvn or None) of a 1.x VAD dir."""
    metas: Dict = {}
    conf_json = os.path.join(root, "configuration.json")
    if os.path.lexists(conf_json):  # a FIFO or a dangling link is an error, not "no configuration.json"
        metas = read_configuration(conf_json).get("file_path_metas", {})
    config = os.path.join(root, metas_name(metas, ("config",), "config.yaml", conf_json))
    weights = os.path.join(root, metas_name(metas, ("init_param",), "model.pt", conf_json))
    # FunASR takes am.mvn from file_path_metas when the dir has them (none named: no CMVN), else from the dir
    cmvn_name = metas_name(metas, ("frontend_conf", "cmvn_file"), None if metas else "am.mvn", conf_json)
    if not os.path.isfile(config):
        legacy = [n for n in ("vad.yaml", "vad.pb", "model.pb") if os.path.isfile(os.path.join(root, n))]
        hint = (
            f" (it holds {', '.join(legacy)}: a FunASR 0.x dir, which FunASR 1.x cannot load either; use the 1.x "
            "files config.yaml, model.pt, am.mvn)"
            if legacy
            else ""
        )
        raise ModelDirError(f"VAD model dir {root}: no {os.path.basename(config)}{hint}")
    if not os.path.isfile(weights):
        raise ModelDirError(f"VAD model dir {root}: no weights file {os.path.basename(weights)}")
    if cmvn_name is None:
        logger.warning(
            "%s names no frontend_conf.cmvn_file: features are not normalised (as in FunASR)%s",
            conf_json,
            ", although the dir has am.mvn" if os.path.lexists(os.path.join(root, "am.mvn")) else "",
        )
        return config, weights, None
    cmvn = os.path.join(root, cmvn_name)
    if os.path.lexists(cmvn) and not os.path.isfile(cmvn):
        # a FIFO, a directory or a dangling link is not "no am.mvn": running without CMVN would be wrong
        kind = special_file_kind(cmvn) or ("directory" if os.path.isdir(cmvn) else "dangling symbolic link")
        raise ModelDirError(f"{cmvn}: is a {kind}, not a regular file; expected the CMVN stats (am.mvn)")
    if not os.path.isfile(cmvn):
        logger.warning("VAD model dir %s has no %s: features are not normalised (as in FunASR)", root, cmvn)
        return config, weights, None
    return config, weights, cmvn


def load_vad(model: str, device: Optional[str] = None, **overrides) -> VadModel:
    """Load an FSMN-VAD model: a local dir, a ModelScope id, or ``fsmn-vad``.

    Args:
        model: model dir, hub id or alias (:data:`funasr_lite.hub.aliases.MODEL_ALIASES`).
        device: ``cpu``, ``cuda``, ``cuda:N`` or None (a GPU when there is one).
        **overrides: ``model_conf`` keys, e.g. ``max_single_segment_time=30000``; as in FunASR, giving
            ``max_end_silence_time`` switches the dynamic end-silence schedule off.

    Raises:
        HubError, ModelDirError, CheckpointError, ConfigError: the message names the file and the problem
            (an unknown override key is named with the closest valid one).
    """
    root = resolve_model(model)
    config_path, weights, cmvn_path = _vad_files(root)
    config = load_vad_config(config_path, overrides)
    cmvn = None
    if cmvn_path is not None:
        cmvn = load_cmvn(cmvn_path)
        width = config.frontend_conf.n_mels * config.frontend_conf.lfr_m
        if cmvn.shape[1] != width:
            raise ModelDirError(f"{cmvn_path}: {cmvn.shape[1]} dims, but the frontend makes n_mels*lfr_m = {width}")
    vad = VadModel(config, cmvn, dynamic_silence="max_end_silence_time" not in overrides)
    load_weights_strict(vad, load_state_dict(weights), weights)
    return vad.to(resolve_device(device)).eval()
