"""CT-Transformer punctuation model: token embedding -> SANM encoder -> one punctuation class per token.

Chen et al., "Controllable Time-delay Transformer for Real-time Punctuation Prediction and Disfluency
Detection", https://arxiv.org/abs/2003.01309. FunASR builds it as ``CTTransformer`` with a ``SANMEncoder``
whose ``input_layer`` is ``"pe"`` (sinusoidal positions added to the scaled embeddings, no subsampling), so
the encoder here is :class:`funasr_lite.models.sanm.SANMEncoder` itself.

Parameter names are FunASR 1.x's (``embed.weight``, ``encoder.encoders0.0...``, ``encoder.after_norm``,
``decoder.weight``; ``decoder`` is the output projection), so FunASR's ``model.pt`` loads with
``strict=True``. The code is our own.
"""

from typing import Any, Dict, Tuple

import torch
from torch import nn

from funasr_lite.models.sanm import SANMEncoder

__all__ = ["CTTransformer"]


class CTTransformer(nn.Module):
    """Token ids -> punctuation logits.

    Args:
        vocab_size: rows of the token embedding (the token list's length).
        punc_size: punctuation classes (the punctuation list's length).
        embed_unit: embedding width; equals the encoder's ``input_size``.
        att_unit: encoder output width; equals the encoder's ``output_size``.
        encoder_conf: keyword arguments of :class:`SANMEncoder` (FunASR's ``encoder_conf`` names).
    """

    def __init__(self, vocab_size: int, punc_size: int, embed_unit: int, att_unit: int, encoder_conf: Dict[str, Any]):
        super().__init__()
        if encoder_conf.get("input_size") != embed_unit:
            raise ValueError(f"encoder input_size={encoder_conf.get('input_size')} must equal embed_unit={embed_unit}")
        if encoder_conf.get("output_size") != att_unit:
            raise ValueError(f"encoder output_size={encoder_conf.get('output_size')} must equal att_unit={att_unit}")
        self.embed = nn.Embedding(vocab_size, embed_unit)
        self.encoder = SANMEncoder(**encoder_conf)
        self.decoder = nn.Linear(att_unit, punc_size)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """ids: (B, T) token ids, lengths: (B,) valid tokens -> (B, T, punc_size) logits, and the (B,) lengths.

        Logits at padded positions are the output layer's bias (the encoder output is zero there)."""
        hidden, lengths = self.encoder(self.embed(ids), lengths)
        return self.decoder(hidden), lengths
