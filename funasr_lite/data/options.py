"""``dataset_conf``: how training data is filtered, batched and loaded, and what its limits mean.

:class:`DatasetConf` is the one data options type: the config section, and what the pre-flight scan,
the batching and the loaders take. FunASR's ``-1`` (off) length limits keep funasr-lite's safe limits
(:data:`SAFE_LIMITS`); the effective values are its properties. What is not a ``dataset_conf`` key is an
argument where it is used: the seed, the LFR frame duration and sample rate (from ``frontend_conf``),
and the scan's ``max_bad_ratio`` (a finetune flag).
"""

import math
from dataclasses import dataclass
from typing import ClassVar, Tuple

from funasr_lite.config.fields import Section, option

__all__ = ["DatasetConf", "SAFE_LIMITS", "lfr_frames"]

# funasr-lite's limit where dataset_conf holds FunASR's -1 (off): 100 ms .. 30 s, 200 tokens
SAFE_LIMITS = {"speech_length_min": 100, "speech_length_max": 30000, "token_length_max": 200}


def lfr_frames(duration_ms: float, lfr_frame_ms: float = 60.0) -> int:
    """FunASR's small-mode utterance length: ``ceil(ms / lfr_frame_ms)`` LFR frames."""
    return int(math.ceil(round(duration_ms / lfr_frame_ms, 9)))


@dataclass(frozen=True)
class DatasetConf(Section):
    """``dataset_conf``: data loading and batching. 0.x top-level dataset keys are moved here.

    Validated when built (directly, by ``dataclasses.replace`` or from a config)."""

    SECTION: ClassVar[str] = "dataset_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = (
        "index_ds",
        "batch_sampler",
        "batch_type",
        "batch_size",
        "max_token_length",
        "min_token_length",
        "min_source_length",
        "max_source_length",
        "min_target_length",
        "max_target_length",
        "data_split_num",
        "dataloader",
        "preprocessor_speech",
        "preprocessor_speech_conf",
        "preprocessor_text",
        "preprocessor_text_conf",
        "batch_size_sample_max",
        "length_scale_source",
        "pin_memory",
        "persistent_workers",
        "prefetch_factor",
        "rank_split",
        "drop_last",
        "int_pad_value",
        "float_pad_value",
        "sort_in_batch",
        "sort_batch",
        "filter_conf",
        "shuffle_conf",
        "batch_conf",
        "data_types",
        "data_names",
        "speed_perturb",
        "split_with_space",
        "seg_dict_file",
        "bpemodel",
        "retry",
    )
    dataset_type: str = option("small", '"small" (map-style) or "large" (streamed shards)', flag=True)
    batch_bins: int = option(2000, "small: padded LFR frames (60 ms) per batch; large: milliseconds", flag=True)
    num_workers: int = option(0, "DataLoader workers (feature extraction runs there)", flag=True)
    shuffle: bool = option(True, "shuffle batches (small) / samples in a buffer (large)")
    buffer_size: int = option(500, "large: shuffle buffer, utterances")
    sort_size: int = option(500, "large: utterances sorted by length before batching")
    speech_length_min: int = option(-1, "drop utterances shorter than this, ms (-1: 100; one 25 ms frame at least)")
    speech_length_max: int = option(-1, "drop utterances longer than this, ms (-1: 30000)")
    token_length_min: int = option(-1, "drop texts with fewer tokens (-1: off; empty texts always dropped)")
    token_length_max: int = option(-1, "drop texts with more tokens (-1: 200)")
    max_unk_ratio: float = option(0.5, "drop texts whose share of <unk> tokens is above this")

    @property
    def min_speech_ms(self) -> float:
        """Shortest utterance kept, ms: ``speech_length_min``, or 100 when it is -1 (off)."""
        return float(self._limit("speech_length_min"))

    @property
    def max_speech_ms(self) -> float:
        """Longest utterance kept, ms: ``speech_length_max``, or 30000 when it is -1 (off)."""
        return float(self._limit("speech_length_max"))

    @property
    def max_tokens(self) -> int:
        """Most tokens in a kept text: ``token_length_max``, or 200 when it is -1 (off)."""
        return int(self._limit("token_length_max"))

    def _limit(self, name: str) -> int:
        value = getattr(self, name)
        return value if value > 0 else SAFE_LIMITS[name]

    def batch_units(self, duration_ms: float, lfr_frame_ms: float = 60.0) -> int:
        """The length of one utterance in batch_bins units: LFR frames (small) or ms (large)."""
        if self.dataset_type == "small":
            return lfr_frames(duration_ms, lfr_frame_ms)
        return int(math.ceil(duration_ms))

    def validate(self):
        if self.dataset_type not in ("small", "large"):
            raise self._fail("dataset_type", "must be 'small' or 'large'")
        if self.batch_bins < 1:
            raise self._fail("batch_bins", "must be >= 1")
        if self.num_workers < 0:
            raise self._fail("num_workers", "must be >= 0")
        for k in ("buffer_size", "sort_size"):
            if getattr(self, k) < 1:
                raise self._fail(k, "must be >= 1")
        self._range(["speech_length_min", "speech_length_max", "token_length_min", "token_length_max"], 0, also=(-1,))
        if self.max_speech_ms < self.min_speech_ms:
            raise self._fail(
                "speech_length_max",
                f"a limit of {self.max_speech_ms:g} ms is below speech_length_min ({self.min_speech_ms:g} ms)",
            )
        if not 0.0 <= self.max_unk_ratio <= 1.0:
            raise self._fail("max_unk_ratio", "must be in [0, 1]")
