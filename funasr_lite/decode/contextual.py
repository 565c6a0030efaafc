"""The decode entry of ContextualParaformer: Paraformer's search with the hotword context in the decoder."""

import functools
from typing import Any, List, Optional, Sequence, Tuple

import torch

from funasr_lite.data.tokenizer import Tokenizer
from funasr_lite.decode.options import DecodingOptions
from funasr_lite.decode.transcribe import search_features as paraformer_search
from funasr_lite.models.contextual import ContextualParaformer

__all__ = ["search_features"]


def search_features(
    model: ContextualParaformer,
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    options: DecodingOptions,
    tokenizer: Tokenizer,
    hotwords: Optional[Sequence[Sequence[int]]] = None,
) -> Tuple[List[List[Any]], torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`funasr_lite.decode.transcribe.search_features` for a ContextualParaformer.

    ``hotwords``: token ids per hotword, without the "no bias" entry (the model appends it); None or ``[]``:
    no hotwords, which decodes as FunASR does without hotwords. The same hotwords bias every utterance.
    """
    with torch.no_grad():
        context = model.hotword_context(hotwords, feats.device)
    decode = functools.partial(model.decode_logits, context=context)
    return paraformer_search(model, feats, feat_lens, options, tokenizer, decode_logits=decode)
