"""Write a CT-Transformer punctuation model dir with FunASR's own class and random weights (tests, benchmarks).

A helper module, not a command: ``tests/punc`` and ``tools/bench_punc.py`` import it. It imports funasr (the
test oracle), so only those use it. Random weights alone predict one class almost everywhere; the output
layer's weight is multiplied by ``scale`` and its bias set per class, so that several classes come out.
"""

import json
import os
from typing import Dict, List, Optional, Sequence

import yaml

PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]  # the released models' list


def build_punc_dir(
    out: str,
    tokens: List[str],
    *,
    bias: Sequence[float],
    d: int = 32,
    heads: int = 4,
    ffn: int = 64,
    blocks: int = 2,
    punc_list: Sequence[str] = PUNC_LIST,
    scale: float = 3.0,
    seed: int = 0,
    jieba_words: Optional[List[str]] = None,
    extra_config: Optional[Dict] = None,
) -> str:
    """Write config.yaml, model.pt, tokens.json, configuration.json (and, with ``jieba_words``, a
    jieba_usr_dict of them) as FunASR's CTTransformer(SANMEncoder) of width ``d`` saves them."""
    import torch
    from funasr.models.ct_transformer.model import CTTransformer
    from funasr.models.sanm.encoder import SANMEncoder  # noqa: F401  (registers SANMEncoder)

    os.makedirs(out, exist_ok=True)
    encoder_conf = dict(
        input_size=d,
        output_size=d,
        attention_heads=heads,
        linear_units=ffn,
        num_blocks=blocks,
        dropout_rate=0.1,
        positional_dropout_rate=0.1,
        attention_dropout_rate=0.0,
        input_layer="pe",
        pos_enc_class="SinusoidalPositionEncoder",
        normalize_before=True,
        kernel_size=11,
        sanm_shfit=0,
        selfattention_layer_type="sanm",
        padding_idx=0,
    )
    model_conf = dict(
        ignore_id=0,
        embed_unit=d,
        att_unit=d,
        dropout_rate=0.1,
        punc_list=list(punc_list),
        punc_weight=[1.0] * len(punc_list),
        sentence_end_id=3,
    )
    config = {
        "model": "CTTransformer",
        "model_conf": model_conf,
        "encoder": "SANMEncoder",
        "encoder_conf": encoder_conf,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>"},
        **(extra_config or {}),
    }
    torch.manual_seed(seed)
    model = CTTransformer(encoder="SANMEncoder", encoder_conf=encoder_conf, vocab_size=len(tokens), **model_conf)
    with torch.no_grad():
        model.decoder.weight.mul_(scale)
        model.decoder.bias.copy_(torch.tensor(list(bias), dtype=torch.float32))
    torch.save(model.state_dict(), os.path.join(out, "model.pt"))
    with open(os.path.join(out, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(tokens, f, ensure_ascii=False)
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    metas = {"init_param": "model.pt", "config": "config.yaml", "tokenizer_conf": {"token_list": "tokens.json"}}
    if jieba_words:
        with open(os.path.join(out, "jieba_usr_dict"), "w", encoding="utf-8") as f:
            f.write("".join(f"{w} 100000\n" for w in jieba_words))
        metas["jieba_usr_dict"] = "jieba_usr_dict"
    with open(os.path.join(out, "configuration.json"), "w", encoding="utf-8") as f:
        json.dump({"framework": "pytorch", "task": "punctuation", "file_path_metas": metas}, f)
    return out
