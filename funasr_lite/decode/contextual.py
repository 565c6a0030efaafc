"""The decode entry of ContextualParaformer: Paraformer's search with the hotword context in the decoder."""

import functools
from typing import Any, Dict, List, Optional, Sequence

import torch

from funasr_lite.data.tokenizer import Tokenizer
from funasr_lite.decode.options import DecodingOptions
from funasr_lite.decode.transcribe import search_paraformer
from funasr_lite.models.contextual import ContextualParaformer

__all__ = ["search_contextual"]


def search_contextual(
    model: ContextualParaformer,
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    options: DecodingOptions,
    tokenizer: Tokenizer,
    frame_ms: float = 60.0,
    hotwords: Optional[Sequence[Sequence[int]]] = None,
) -> List[Dict[str, Any]]:
    """:func:`funasr_lite.decode.transcribe.search_paraformer` for a ContextualParaformer (result dicts with CIF
    token times).

    ``hotwords``: token ids per hotword, without the "no bias" entry (the model appends it); None or ``[]``:
    no hotwords, which decodes as FunASR does without hotwords. The same hotwords bias every utterance.
    """
    with torch.no_grad():
        context = model.hotword_context(hotwords, feats.device)
    decode = functools.partial(model.decode_logits, context=context)
    return search_paraformer(model, feats, feat_lens, options, tokenizer, frame_ms, decode_logits=decode)
