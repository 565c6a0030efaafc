"""``dataset_conf``: how training data is filtered, batched and loaded."""

from dataclasses import dataclass
from typing import ClassVar, List, Optional, Tuple, Union

from funasr_lite.config.fields import Section, option


@dataclass(frozen=True)
class DatasetConf(Section):
    """``dataset_conf``: data loading and batching. 0.x top-level dataset keys are moved here."""

    SECTION: ClassVar[str] = "dataset_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = (
        "index_ds", "batch_sampler", "batch_type", "batch_size", "max_token_length", "min_token_length",
        "min_source_length", "max_source_length", "min_target_length", "max_target_length", "data_split_num",
        "dataloader", "preprocessor_speech", "preprocessor_speech_conf", "preprocessor_text",
        "preprocessor_text_conf", "batch_size_sample_max", "length_scale_source", "pin_memory",
        "persistent_workers", "prefetch_factor", "rank_split", "drop_last", "int_pad_value", "float_pad_value",
        "sort_in_batch", "sort_batch", "filter_conf", "shuffle_conf", "batch_conf", "data_types", "data_names",
        "speed_perturb", "split_with_space", "seg_dict_file", "bpemodel", "retry")
    dataset_type: str = option("small", "\"small\" (map-style) or \"large\" (streamed shards)", flag=True)
    batch_bins: int = option(2000, "small: padded LFR frames (60 ms) per batch; large: milliseconds", flag=True)
    num_workers: int = option(0, "DataLoader workers (feature extraction runs there)", flag=True)
    shuffle: bool = option(True, "shuffle batches (small) / samples in a buffer (large)")
    buffer_size: int = option(500, "large: shuffle buffer, utterances")
    sort_size: int = option(500, "large: utterances sorted by length before batching")
    speech_length_min: int = option(-1, "drop utterances shorter than this, ms (-1: off)")
    speech_length_max: int = option(-1, "drop utterances longer than this, ms (-1: off)")
    token_length_min: int = option(-1, "drop texts with fewer tokens (-1: off; empty texts always dropped)")
    token_length_max: int = option(-1, "drop texts with more tokens (-1: off)")
    max_unk_ratio: float = option(0.5, "drop texts whose share of <unk> tokens is above this")

    def validate(self):
        if self.dataset_type not in ("small", "large"):
            raise self._fail("dataset_type", "must be 'small' or 'large'")
        if self.batch_bins < 1:
            raise self._fail("batch_bins", "must be >= 1")
        if self.num_workers < 0:
            raise self._fail("num_workers", "must be >= 0")
        if not 0.0 <= self.max_unk_ratio <= 1.0:
            raise self._fail("max_unk_ratio", "must be in [0, 1]")
