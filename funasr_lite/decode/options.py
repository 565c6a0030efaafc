"""The options of decoding: :class:`DecodingOptions` (search and batching, the ``decoding`` config section),
:class:`InferOptions` (a data-dir job) and :class:`AfterFinetuneOptions` (decoding a finetune output dir).

This module imports no torch, so ``--help`` of the recipe scripts stays fast.

It is the ``decoding`` section of the merged config, so its values come, lowest first, from the defaults
below, the model dir's ``decoding.yaml``, the recipe script's defaults and the command-line flags. Override
it in code with ``dataclasses.replace(asr.options, beam_size=5)``.
"""

from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple

from funasr_lite.config.fields import Section, option

__all__ = ["DecodingOptions", "InferOptions", "AfterFinetuneOptions", "CTC_WEIGHT_EPS"]

# FunASR enables the CTC path only when decoding_ctc_weight > 1e-5.
CTC_WEIGHT_EPS = 1e-5


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
    batch_size: int = option(32, "max utterances per batch (length-sorted; results do not depend on it)", flag=True)
    batch_seconds: Optional[float] = option(300.0, "max total audio seconds per batch (0 or null: no limit)", flag=True)
    ctc_full_vocab: bool = option(
        False,
        "CTC-score every token instead of FunASR's int(1.5*beam) pre-beam "
        "(FunASR does so only for models trained with ctc_weight 1.0)",
    )
    end_detect: bool = option(True, "FunASR's beam-search end detection; false runs all steps")

    def validate(self) -> None:
        for k in ("beam_size", "nbest", "batch_size"):
            if isinstance(getattr(self, k), bool) or not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise self._fail(k, "must be an integer >= 1")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise self._fail("ctc_weight", "must be in [0, 1]")
        if self.batch_seconds is not None and self.batch_seconds < 0:
            raise self._fail("batch_seconds", "must be >= 0 (0: no limit)")

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
    max_duration: float = option(
        600.0, "utterances longer than this (seconds) are refused instead of risking OOM", flag=True
    )
    checkpoint: Optional[str] = option(
        None, "a weights file inside the model dir, instead of model.pt / model.pb", flag=True
    )


@dataclass(frozen=True)
class AfterFinetuneOptions:
    """Which checkpoint of a finetune output dir to decode with, and where missing files come from."""

    output_dir: str = option(help="the finetune output dir; results go to its decode_results/", flag=True)
    decoding_model_name: str = option("valid.acc.ave.pb", "a checkpoint file inside output_dir", flag=True)
    modelscope_model_name: Optional[str] = option(
        None, "the init model (hub id or dir) that files missing from output_dir are copied from", flag=True
    )
    required_files: Tuple[str, ...] = option(
        ("am.mvn", "configuration.json"), "files copied from the init model when output_dir lacks them", flag=True
    )
