"""``decoding``: how a model's outputs are searched and batched (decoding.yaml, recipe flags)."""

from dataclasses import dataclass
from typing import ClassVar, List, Optional, Tuple, Union

from funasr_lite.config.fields import Section, option


@dataclass(frozen=True)
class DecodingConf(Section):
    """Decoding options (decoding.yaml, recipe defaults, --beam_size/--ctc_weight/--batch_size)."""

    SECTION: ClassVar[str] = "decoding"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = ("ngram_weight", "token_num_relax", "decoding_ind", "decoding_mode",
                                               "lm_file", "lm_train_config", "streaming", "hotword", "dtype")
    beam_size: int = option(1, "1 = greedy; > 1 beam search over the decoder outputs")
    penalty: float = option(0.0, "insertion bonus per token in beam search")
    maxlenratio: float = option(0.0, "ESPnet length bound (Paraformer's length comes from CIF; accepted, unused)")
    minlenratio: float = option(0.0, "ESPnet length bound (accepted, unused)")
    ctc_weight: float = option(0.0, "weight of CTC prefix scores in beam search (needs a CTC head)")
    lm_weight: float = option(0.0, "LM weight (no LM support: accepted, unused)")
    nbest: int = option(1, "hypotheses kept per utterance (the first is written)")
    batch_size: int = option(1, "utterances per decoding batch")
    batch_seconds: Optional[float] = option(None, "optional bound on the audio seconds per batch")

    def validate(self):
        for k in ("beam_size", "nbest", "batch_size"):
            if getattr(self, k) < 1:
                raise self._fail(k, "must be >= 1")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise self._fail("ctc_weight", "must be in [0, 1]")
        if self.batch_seconds is not None and self.batch_seconds <= 0:
            raise self._fail("batch_seconds", "must be > 0")
