"""The config.yaml of an FSMN-VAD model dir (``model: FsmnVADStreaming``), validated strictly.

Six top-level keys, as ModelScope ships the model: ``frontend: WavFrontendOnline`` with ``frontend_conf``
(the same keys as the ASR frontend's :class:`~funasr_lite.config.sections.FrontendConf`), ``model:
FsmnVADStreaming`` with ``model_conf`` (FunASR's ``VADXOptions``: :class:`VadModelConf`), and ``encoder: FSMN``
with ``encoder_conf`` (:class:`FsmnConf`).  Any other key is a :class:`ConfigError` naming the file, line and
key. ``model_conf`` overrides (``load_vad(..., max_end_silence_time=500)``) are checked the same way.
"""

from dataclasses import dataclass
from typing import ClassVar, List, Mapping, Optional, Tuple

from funasr_lite.config.fields import Section, Where, option, suggest
from funasr_lite.config.sections import FrontendConf
from funasr_lite.config.yaml_io import load_yaml
from funasr_lite.errors import ConfigError

__all__ = ["VadModelConf", "FsmnConf", "VadConfig", "load_vad_config"]


@dataclass(frozen=True)
class VadModelConf(Section):
    """``model_conf`` of FsmnVADStreaming: the detector's options, FunASR's ``VADXOptions`` defaults."""

    SECTION: ClassVar[str] = "model_conf"
    # keys VADXOptions accepts that change nothing in offline detection
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = ("vad_post_args",)
    sample_rate: int = option(16000, "Hz; must equal frontend_conf.fs")
    detect_mode: int = option(1, "1: many utterances per input; 0: stop after the first")
    snr_mode: int = option(0, "unused by FunASR")
    max_end_silence_time: int = option(800, "ms of silence that end a segment (when the dynamic schedule is off)")
    max_start_silence_time: int = option(3000, "ms of leading silence before giving up (detect_mode 0 only)")
    do_start_point_detection: bool = option(True, "unused by FunASR")
    do_end_point_detection: bool = option(True, "unused by FunASR")
    window_size_ms: int = option(200, "smoothing window of frame decisions, ms")
    sil_to_speech_time_thres: int = option(150, "speech ms within the window that start speech")
    speech_to_sil_time_thres: int = option(150, "speech ms within the window at or below which speech stops")
    speech_2_noise_ratio: float = option(1.0, "weight of the silence log-probability")
    do_extend: int = option(1, "1: extend segments by lookback/lookahead")
    lookback_time_start_point: int = option(200, "ms added before a detected start")
    lookahead_time_end_point: int = option(100, "ms kept after the last speech frame")
    max_single_segment_time: int = option(60000, "longest segment, ms")
    nn_eval_block_size: int = option(8, "unused (FunASR sets it to the chunk's frame count)")
    dcd_block_size: int = option(4, "unused by FunASR")
    snr_thres: float = option(-100.0, "frames below this SNR (dB, vs. the running noise level) are silence")
    noise_frame_num_used_for_snr: int = option(100, "frames in the running noise-level average")
    decibel_thres: float = option(-100.0, "frames below this energy (dB) are silence")
    speech_noise_thres: float = option(0.6, "speech wins when P(speech) >= P(sil) + this (0.5 under the schedule)")
    fe_prior_thres: float = option(1e-4, "speech frames count as silence when this is >= 1")
    silence_pdf_num: int = option(1, "number of silence classes; must equal len(sil_pdf_ids)")
    sil_pdf_ids: List[int] = option(factory=lambda: [0], help="output classes whose posteriors sum to P(sil)")
    speech_noise_thresh_low: float = option(-0.1, "unused by FunASR")
    speech_noise_thresh_high: float = option(0.3, "unused by FunASR")
    output_frame_probs: bool = option(False, "unused in the output")
    frame_in_ms: int = option(10, "frame hop, ms; must equal frontend_conf.frame_shift")
    frame_length_ms: int = option(25, "frame length, ms; must equal frontend_conf.frame_length")

    def validate(self):
        self._range(["sample_rate", "frame_in_ms", "frame_length_ms", "window_size_ms"], 1)
        self._range(["noise_frame_num_used_for_snr"], 1)
        self._range(["max_single_segment_time", "lookback_time_start_point", "lookahead_time_end_point"], 0)
        self._range(["sil_to_speech_time_thres", "speech_to_sil_time_thres"], 0)
        if self.detect_mode not in (0, 1):
            raise self._fail("detect_mode", "must be 0 (single utterance) or 1 (multiple utterances)")
        if not self.sil_pdf_ids:
            raise self._fail("sil_pdf_ids", "must name at least one output class")
        if any(i < 0 for i in self.sil_pdf_ids):
            raise self._fail("sil_pdf_ids", "class ids must be >= 0")
        if self.silence_pdf_num != len(self.sil_pdf_ids):
            raise self._fail("silence_pdf_num", f"must equal len(sil_pdf_ids)={len(self.sil_pdf_ids)}")
        if self.window_size_ms < self.frame_in_ms:
            raise self._fail("window_size_ms", f"must be >= frame_in_ms={self.frame_in_ms}")


@dataclass(frozen=True)
class FsmnConf(Section):
    """``encoder_conf`` of the FSMN encoder (all keys required; FunASR has no defaults but ``use_softmax``)."""

    SECTION: ClassVar[str] = "encoder_conf"
    input_dim: Optional[int] = option(None, "feature dim = n_mels * lfr_m (400)")
    input_affine_dim: Optional[int] = option(None, "first layer width (140)")
    fsmn_layers: Optional[int] = option(None, "FSMN blocks (4)")
    linear_dim: Optional[int] = option(None, "block width (250)")
    proj_dim: Optional[int] = option(None, "FSMN memory width (128)")
    lorder: Optional[int] = option(None, "left memory taps (20)")
    rorder: Optional[int] = option(None, "right memory taps (0)")
    lstride: Optional[int] = option(None, "left tap dilation (1)")
    rstride: Optional[int] = option(None, "right tap dilation (0)")
    output_affine_dim: Optional[int] = option(None, "last hidden layer width (140)")
    output_dim: Optional[int] = option(None, "output classes (248)")
    use_softmax: bool = option(True, "posteriors (the detector needs them)")

    def validate(self):
        for k in self.field_names():
            if k != "use_softmax" and getattr(self, k) is None and self._given:
                raise self._fail(k, "is required")
        self._range(["input_dim", "input_affine_dim", "linear_dim", "proj_dim", "output_affine_dim"], 1)
        self._range(["output_dim", "lstride"], 1)
        self._range(["fsmn_layers", "rorder", "rstride"], 0)
        self._range(["lorder"], 2)  # FunASR keeps the last (lorder-1)*lstride frames; lorder 1 keeps everything


# The class each class key must name.
_CLASSES = {"frontend": "WavFrontendOnline", "model": "FsmnVADStreaming", "encoder": "FSMN"}
_SECTIONS = {"frontend_conf": FrontendConf, "model_conf": VadModelConf, "encoder_conf": FsmnConf}


@dataclass(frozen=True)
class VadConfig:
    """A validated FSMN-VAD config.yaml."""

    frontend_conf: FrontendConf  # fbank + LFR + CMVN options (cmvn_file is set by the loader)
    model_conf: VadModelConf  # detector options
    encoder_conf: FsmnConf  # FSMN encoder shape
    source: str = ""  # the file it came from

    @classmethod
    def from_dict(cls, d: Mapping, source: str, overrides: Optional[Mapping] = None) -> "VadConfig":
        """Check ``d`` (a config.yaml mapping) and ``overrides`` (model_conf keys) strictly.

        Raises:
            ConfigError: unknown or missing key, wrong class, bad value, inconsistent sizes; the message
                names the file (and line) or "override", and the key.
        """
        where = Where(source, getattr(d, "lines", {}))
        allowed = list(_CLASSES) + list(_SECTIONS)
        for k in d:
            if k not in allowed:
                raise ConfigError(f"{where((k,))}: unknown key '{k}' in an FSMN-VAD config{suggest(k, allowed)}")
        for k, want in _CLASSES.items():
            if d.get(k) != want:
                raise ConfigError(f"{where((k,))}: {k} must be {want} for FSMN-VAD, got {d.get(k)!r}")
        sections = {}
        for k, sec in _SECTIONS.items():
            v = d.get(k)
            v = {} if v is None else v
            if not isinstance(v, Mapping):
                raise ConfigError(f"{where((k,))}: {k} must be a mapping, got {v!r}")
            _check_keys(k, v, sec, where)
            sections[k] = v
        over = dict(overrides or {})
        _check_keys("model_conf", over, VadModelConf, Where("override"))
        model_conf = VadModelConf.from_dict(sections["model_conf"], where)
        if over:
            merged = dict(sections["model_conf"], **over)
            lines = {p: n for p, n in where.lines.items() if not (len(p) == 2 and p[1] in over)}
            prov = {f"model_conf.{k}": "override" for k in over}
            model_conf = VadModelConf.from_dict(merged, Where(source, lines, prov))
        cfg = cls(
            frontend_conf=FrontendConf.from_dict(sections["frontend_conf"], where),
            model_conf=model_conf,
            encoder_conf=FsmnConf.from_dict(sections["encoder_conf"], where),
            source=source,
        )
        cfg._check_consistent(where)
        return cfg

    def _check_consistent(self, where: Where) -> None:
        fe, mc, ec = self.frontend_conf, self.model_conf, self.encoder_conf
        pairs = (
            ("sample_rate", mc.sample_rate, "fs", fe.fs),
            ("frame_in_ms", mc.frame_in_ms, "frame_shift", fe.frame_shift),
            ("frame_length_ms", mc.frame_length_ms, "frame_length", fe.frame_length),
        )
        for key, value, fkey, fvalue in pairs:
            if value != fvalue:
                raise ConfigError(
                    f"{where(('model_conf', key))}: model_conf.{key}={value} must equal frontend_conf.{fkey}={fvalue}"
                )
        if fe.lfr_n != 1 or fe.lfr_m < 2:
            raise ConfigError(
                f"{where(('frontend_conf', 'lfr_m'))}: FSMN-VAD needs lfr_n=1 and lfr_m>=2 (one score per 10 ms "
                f"frame; FunASR fails otherwise), got lfr_m={fe.lfr_m}, lfr_n={fe.lfr_n}"
            )
        if not self.encoder_conf._given:
            raise ConfigError(f"{where(('encoder_conf',))}: encoder_conf is required")
        if ec.input_dim != fe.n_mels * fe.lfr_m:
            raise ConfigError(
                f"{where(('encoder_conf', 'input_dim'))}: encoder_conf.input_dim={ec.input_dim} must equal "
                f"n_mels*lfr_m={fe.n_mels * fe.lfr_m}"
            )
        if max(mc.sil_pdf_ids) >= ec.output_dim:
            raise ConfigError(
                f"{where(('model_conf', 'sil_pdf_ids'))}: model_conf.sil_pdf_ids={mc.sil_pdf_ids} must be below "
                f"encoder_conf.output_dim={ec.output_dim}"
            )
        if not ec.use_softmax:
            raise ConfigError(f"{where(('encoder_conf', 'use_softmax'))}: the detector needs posteriors (true)")


def _check_keys(section: str, d: Mapping, sec: type, where: Where) -> None:
    allowed = sec.known_keys()
    for k in d:
        if k not in allowed:
            raise ConfigError(f"{where((section, k))}: unknown key '{section}.{k}'{suggest(k, allowed)}")


def load_vad_config(path: str, overrides: Optional[Mapping] = None) -> VadConfig:
    """Read and check an FSMN-VAD ``config.yaml`` (see :meth:`VadConfig.from_dict`)."""
    return VadConfig.from_dict(load_yaml(path), path, overrides)
