"""The options of decoding: :class:`DecodingOptions` (search and batching, the ``decoding`` config section),
:class:`InferOptions` (a data-dir job) and :class:`AfterFinetuneOptions` (decoding a finetune output dir).

This module imports no torch, so ``--help`` of the recipe scripts stays fast.

It is the ``decoding`` section of the merged config, so its values come, lowest first, from the defaults
below, the model dir's ``decoding.yaml``, the recipe script's defaults and the command-line flags. Override
it in code with ``dataclasses.replace(asr.options, beam_size=5)``.
"""

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Tuple

from funasr_lite.config.fields import Section, option
from funasr_lite.errors import ConfigError

__all__ = [
    "DecodingOptions",
    "InferOptions",
    "AfterFinetuneOptions",
    "CTC_WEIGHT_EPS",
    "MAX_BEAM_SIZE",
    "LONG_AUDIO_ONE_PROCESS",
    "DTYPES",
]

# FunASR enables the CTC path only when decoding_ctc_weight > 1e-5.
CTC_WEIGHT_EPS = 1e-5
# beam_size is also bounded by the model's vocabulary (checked at load); beyond this a search runs for minutes
# per utterance and gains nothing (FunASR's recipes use 1 to 20)
MAX_BEAM_SIZE = 1000
MAX_BATCH_SIZE = 100_000
MAX_NCPU = 1024
MAX_NJ = 1024
# --dtype values: the precision of the model's weights and activations while decoding
DTYPES = ("fp32", "bf16", "fp16")
# the values of InferOptions.quantize (funasr_lite.decode.quantize.QUANTIZE_MODES, which imports torch)
QUANTIZE_MODES = ("int8",)
# why a VAD / punctuation job refuses --nj and torchrun
LONG_AUDIO_ONE_PROCESS = (
    "--vad_model/--punc_model: the long-audio job runs in one process; drop --nj / torchrun "
    "(or pass --vad_model none --punc_model none to decode without a VAD and punctuation model)"
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plain_file_name(value: Any, flag: str) -> str:
    """``value`` if it is a plain file name (no directory part, not ``.``/``..``), else a ConfigError naming
    ``flag``: these options name a file inside a given dir, and must not reach outside it."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or value in (".", "..")
        or "/" in value
        or "\\" in value
        or "\0" in value
        or value != value.strip()
    ):
        raise ConfigError(f"{flag} {value!r}: must be a plain file name inside the dir (no path, no '..')")
    return value


@dataclass(frozen=True)
class DecodingOptions(Section):
    """Search and batching options of a decode (FunASR's decoding.yaml names)."""

    SECTION: ClassVar[str] = "decoding"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = (
        "ngram_weight",
        "token_num_relax",
        "decoding_ind",
        "decoding_mode",
        "lm_file",
        "lm_train_config",
        "streaming",
        "hotword",
        "dtype",
    )
    beam_size: int = option(1, "beam width; 1 = greedy (argmax per position)", flag=True)
    ctc_weight: float = option(
        0.0, "weight of CTC prefix scores in beam search (the model needs a CTC head)", flag=True
    )
    penalty: float = option(0.0, "score added per token in beam search (FunASR's LengthBonus)")
    nbest: int = option(1, "hypotheses kept per utterance (the first is the result)")
    lm_weight: float = option(
        0.0,
        "language-model weight; used only with an lm_file, which funasr-lite refuses "
        "(no LM fusion), so without one it is ignored, as in FunASR",
    )
    maxlenratio: float = option(0.0, "ESPnet length bound; Paraformer's length comes from CIF (accepted, unused)")
    minlenratio: float = option(0.0, "ESPnet length bound (accepted, unused)")
    batch_size: int = option(
        32,
        "max utterances per batch (length-sorted; texts and times do not depend on it, a score's last digits may)",
        flag=True,
    )
    batch_seconds: Optional[float] = option(
        60.0,
        "max total audio seconds per batch, or per forward pass of a VAD batch (0 or null: no limit); "
        "more is no faster on a CPU, and costs memory",
        flag=True,
    )
    ctc_full_vocab: bool = option(
        False,
        "CTC-score every token instead of FunASR's int(1.5*beam) pre-beam "
        "(FunASR does so only for models trained with ctc_weight 1.0)",
    )
    end_detect: bool = option(True, "FunASR's beam-search end detection; false runs all steps")

    def validate(self) -> None:
        for k, top in (("beam_size", MAX_BEAM_SIZE), ("nbest", MAX_BEAM_SIZE), ("batch_size", MAX_BATCH_SIZE)):
            if not _is_int(getattr(self, k)) or not 1 <= getattr(self, k) <= top:
                raise self._fail(k, f"must be an integer in [1, {top}]")
        if self.nbest > self.beam_size:
            raise self._fail("nbest", f"must be <= beam_size ({self.beam_size}): a beam keeps only that many")
        for k in ("ctc_weight", "penalty", "lm_weight", "maxlenratio", "minlenratio"):
            if not _is_number(getattr(self, k)):
                raise self._fail(k, "must be a finite number")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise self._fail("ctc_weight", "must be in [0, 1]")
        if self.batch_seconds is not None and (not _is_number(self.batch_seconds) or self.batch_seconds < 0):
            raise self._fail("batch_seconds", "must be a finite number >= 0 (0 or null: no limit)")

    def check_vocabulary(self, vocab_size: int) -> None:
        """Raise ConfigError when ``beam_size`` exceeds the model's vocabulary (a wider beam finds nothing more)."""
        if self.uses_beam and self.beam_size > vocab_size:
            raise self._fail("beam_size", f"must be <= the model's vocabulary size ({vocab_size})")

    @property
    def uses_lm(self) -> bool:
        """True when FunASR would fuse a language model: ``lm_weight > 1e-5`` and an ``lm_file`` is given."""
        return float(self.lm_weight) > CTC_WEIGHT_EPS and bool(self.extra.get("lm_file"))

    def check_supported(self) -> None:
        """Raise ValueError for settings funasr-lite cannot decode with (an LM to fuse)."""
        if self.uses_lm:
            raise ValueError(
                f"lm_file={self.extra['lm_file']!r} with lm_weight={self.lm_weight!r}: language-model fusion is not "
                "supported by funasr-lite; remove lm_file or set lm_weight to 0"
            )

    @property
    def uses_ctc(self) -> bool:
        """True when CTC prefix scores take part (FunASR's ``decoding_ctc_weight > 1e-5``)."""
        return float(self.ctc_weight) > CTC_WEIGHT_EPS

    @property
    def uses_beam(self) -> bool:
        """True when beam search runs: beam_size > 1 or CTC in use; else greedy."""
        return self.beam_size > 1 or self.uses_ctc

    def tag(self) -> str:
        """A short name of the settings for result file names (icefall style): greedy, beam4, beam4-ctc0.3."""
        if self.beam_size <= 1 and self.ctc_weight <= 0:
            return "greedy"
        return f"beam{self.beam_size}" + (f"-ctc{self.ctc_weight:g}" if self.ctc_weight > 0 else "")


@dataclass(frozen=True)
class InferOptions:
    """The run-time options of one decoding job; search and batching come from :class:`DecodingOptions`."""

    model: str = option(help="model dir (FunASR 1.x or 0.x layout) or ModelScope id", flag=True)
    data_dir: str = option(help="Kaldi data dir with wav.scp and optionally text", flag=True)
    output_dir: str = option(help="where 1best_recog/ goes; created if missing, never deleted", flag=True)
    device: Optional[str] = option(None, "cpu, cuda or cuda:N; none: cuda if available, else cpu", flag=True)
    ncpu: int = option(2, "torch CPU threads", flag=True)
    nj: int = option(
        1,
        "local decoding processes (FunASR 0.x's njob), each with --ncpu threads and one shard of wav.scp, "
        "started by torchrun's launcher; under torchrun the world size decides instead",
        flag=True,
    )
    max_duration: float = option(
        600.0,
        "utterances longer than this (seconds) are refused instead of risking OOM; with --vad_model it limits "
        "one VAD segment, not the file",
        flag=True,
    )
    checkpoint: Optional[str] = option(
        None, "a weights file inside the model dir, instead of model.pt / model.pb", flag=True
    )
    hotword: Optional[str] = option(
        None,
        "hotwords for every utterance: words separated by spaces, or a .txt file with one hotword per line "
        "(hotword models only: ContextualParaformer, SeacoParaformer); data_dir/hotword adds per-utterance ones",
        flag=True,
    )
    vad_model: Optional[str] = option(
        None,
        "VAD model dir, ModelScope id or alias (fsmn-vad), or none: long recordings are cut into speech segments, "
        "decoded, and written with sentences, vad and subtitles/ (as FunASR's AutoModel(vad_model=...))",
        flag=True,
    )
    punc_model: Optional[str] = option(
        None,
        "punctuation model dir, ModelScope id or alias (ct-punc, ct-punc-c), or none: text gets punctuation and "
        "is cut into sentences; text.cer is scored with the punctuation removed",
        flag=True,
    )
    batch_size_s: int = option(
        300,
        "with --vad_model: VAD segments are decoded shortest first, in batches whose longest segment times their "
        "count stays under this many seconds (FunASR's batch_size_s; texts and times do not depend on it, a score's last "
        "digits may)",
        flag=True,
    )
    batch_size_threshold_s: int = option(
        60,
        "with --vad_model: a segment this long (seconds) or longer closes its batch (FunASR's batch_size_threshold_s)",
        flag=True,
    )

    dtype: str = option(
        "fp32",
        "precision of the model while decoding: fp32, bf16 or fp16 (fp16 on GPU only); the frontend, CMVN, "
        "CIF predictor and log-softmax stay fp32",
        flag=True,
        choices=DTYPES,
    )
    quantize: Optional[str] = option(
        None,
        "int8: dynamic int8 quantization of the Linear layers after loading (CPU only; about 2x faster on "
        "paraformer-large, CER within 0.1 points on the demo model), or the dir's saved model_quant.pt "
        "(funasr-lite quantize) when it matches; unset: fp32",
        flag=True,
        choices=QUANTIZE_MODES,
    )

    @property
    def long_audio(self) -> bool:
        """True when the long-audio pipeline runs (a VAD or a punctuation model is given)."""
        return self.vad_model is not None or self.punc_model is not None

    def __post_init__(self) -> None:
        for k in ("vad_model", "punc_model"):
            if isinstance(getattr(self, k), str) and getattr(self, k).strip().lower() == "none":
                object.__setattr__(self, k, None)  # "none" switches off a recipe's default model
            if getattr(self, k) is not None and (not isinstance(getattr(self, k), str) or not getattr(self, k).strip()):
                raise ConfigError(f"--{k} {getattr(self, k)!r}: must be a model dir, a hub id or an alias")
        for k in ("batch_size_s", "batch_size_threshold_s"):
            if not _is_int(getattr(self, k)) or not 1 <= getattr(self, k) <= MAX_BATCH_SIZE:
                raise ConfigError(
                    f"--{k} {getattr(self, k)!r}: must be an integer number of seconds in [1, {MAX_BATCH_SIZE}]"
                )
        for k in ("model", "data_dir", "output_dir"):
            if not isinstance(getattr(self, k), str) or not getattr(self, k).strip():
                raise ConfigError(f"--{k} {getattr(self, k)!r}: must be a non-empty path")
        if self.device is not None and not isinstance(self.device, str):
            raise ConfigError(f"--device {self.device!r}: must be a device name (cpu, cuda, cuda:N)")
        if not _is_int(self.ncpu) or not 1 <= self.ncpu <= MAX_NCPU:
            raise ConfigError(f"--ncpu {self.ncpu!r}: must be an integer in [1, {MAX_NCPU}]")
        if not _is_int(self.nj) or not 1 <= self.nj <= MAX_NJ:
            raise ConfigError(f"--nj {self.nj!r}: must be an integer in [1, {MAX_NJ}]")
        if self.nj > 1 and self.long_audio:
            raise ConfigError(LONG_AUDIO_ONE_PROCESS)
        if not _is_number(self.max_duration) or self.max_duration <= 0:
            raise ConfigError(f"--max_duration {self.max_duration!r}: must be a finite number of seconds > 0")
        if self.checkpoint is not None:
            plain_file_name(self.checkpoint, "--checkpoint")
        if self.hotword is not None and not isinstance(self.hotword, str):
            raise ConfigError(f"--hotword {self.hotword!r}: must be hotwords separated by spaces or a .txt file")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype {self.dtype!r}: must be one of {', '.join(DTYPES)}")
        if self.quantize is not None and self.quantize not in QUANTIZE_MODES:
            raise ConfigError(f"--quantize {self.quantize!r}: must be one of {', '.join(QUANTIZE_MODES)} (or unset)")


@dataclass(frozen=True)
class AfterFinetuneOptions:
    """Which checkpoint of a finetune output dir to decode with, and where missing files come from."""

    output_dir: str = option(help="the finetune output dir; results go to its decode_results/", flag=True)
    decoding_model_name: str = option(
        "model.pt",
        "a checkpoint file inside output_dir; model.pt (default) is the checkpoint finetune chose "
        "(--final_checkpoint, recorded in configuration.json), the weights infer.py --model output_dir decodes",
        flag=True,
    )
    modelscope_model_name: Optional[str] = option(
        None, "the init model (hub id or dir) that files missing from output_dir are copied from", flag=True
    )
    required_files: Tuple[str, ...] = option(
        ("am.mvn", "configuration.json"), "files copied from the init model when output_dir lacks them", flag=True
    )

    def __post_init__(self) -> None:
        if not isinstance(self.output_dir, str) or not self.output_dir.strip():
            raise ConfigError(f"--output_dir {self.output_dir!r}: must be a non-empty path")
        plain_file_name(self.decoding_model_name, "--decoding_model_name")
        if self.modelscope_model_name is not None and not (
            isinstance(self.modelscope_model_name, str) and self.modelscope_model_name.strip()
        ):
            raise ConfigError(f"--modelscope_model_name {self.modelscope_model_name!r}: must be a hub id or a dir")
        files = (self.required_files,) if isinstance(self.required_files, str) else self.required_files
        if not isinstance(files, (list, tuple)):
            raise ConfigError(f"--required_files {self.required_files!r}: must be a list of file names")
        # a frozen dataclass is hashed and compared by value: a list (from YAML or a recipe default) becomes a tuple
        object.__setattr__(self, "required_files", tuple(plain_file_name(f, "--required_files") for f in files))
