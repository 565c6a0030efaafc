"""Short names of hub models, as FunASR's ``AutoModel`` accepts them (``vad_model="fsmn-vad"``)."""

import os
from typing import Dict

__all__ = ["MODEL_ALIASES", "resolve_alias"]

# alias -> ModelScope id
MODEL_ALIASES: Dict[str, str] = {
    "fsmn-vad": "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
    "ct-punc": "iic/punc_ct-transformer_cn-en-common-vocab471067-large",
    "ct-punc-c": "iic/punc_ct-transformer_zh-cn-common-vocab272727-pytorch",
    "paraformer-zh": "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
}


def resolve_alias(model: str) -> str:
    """The hub id of an alias; any other name (a dir, a hub id) unchanged. A local dir named like an alias wins."""
    if model in MODEL_ALIASES and not os.path.isdir(model):
        return MODEL_ALIASES[model]
    return model
