"""Tiny CT-Transformer punctuation dirs built with FunASR's own class.

Random weights alone predict one class almost everywhere; ``build_punc_dir`` scales the output layer and
sets its bias per class so that several classes come out (the tests assert which ones did).
"""

import json
import os
from typing import Dict, Optional, Sequence

import yaml

PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]
# 60 CJK characters, a few multi-character words (for the jieba model) and English words make the vocabulary
CHARS = list("今天是二零一三四五六七八九十年月日号电话码下午点分开会共元角明早上出发我的百千你好吗什么时候来去们在有这")
WORDS = ["今天", "下午", "开会", "时候", "什么", "我们", "电话", "号码"]
ENGLISH = ["hello", "world", "the", "ok", "is", "good", "morning", "Hello", "123"]
D = 32


def token_list(words: bool = False):
    return ["<unk>", "<s>", "</s>"] + CHARS + (WORDS if words else []) + ENGLISH


def build_punc_dir(
    out: str,
    *,
    bias: Sequence[float],
    punc_list: Sequence[str] = PUNC_LIST,
    scale: float = 3.0,
    seed: int = 0,
    jieba: bool = False,
    extra_config: Optional[Dict] = None,
) -> str:
    """Write config.yaml, model.pt, tokens.json, configuration.json (and jieba_usr_dict) with FunASR's
    CTTransformer; the output layer's weight is multiplied by ``scale`` and its bias set to ``bias``."""
    import torch
    from funasr.models.ct_transformer.model import CTTransformer
    from funasr.models.sanm.encoder import SANMEncoder  # noqa: F401  (registers SANMEncoder)

    os.makedirs(out, exist_ok=True)
    tokens = token_list(words=jieba)
    encoder_conf = dict(
        input_size=D,
        output_size=D,
        attention_heads=4,
        linear_units=64,
        num_blocks=2,
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
        embed_unit=D,
        att_unit=D,
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
    if jieba:
        with open(os.path.join(out, "jieba_usr_dict"), "w", encoding="utf-8") as f:
            f.write("".join(f"{w} 100000\n" for w in WORDS))
        metas["jieba_usr_dict"] = "jieba_usr_dict"
    with open(os.path.join(out, "configuration.json"), "w", encoding="utf-8") as f:
        json.dump({"framework": "pytorch", "task": "punctuation", "file_path_metas": metas}, f)
    return out


# name -> build_punc_dir arguments. "char": every class comes out, <unk> (class 0) now and then;
# "no_stop": no 。/？ inside a text, so long texts are carried over and cut at a comma;
# "ascii": a punctuation list with ASCII , and ? (which FunASR's rules do not recognise);
# "jieba": the word-level layout of the cn-en model.
VARIANTS = {
    "char": dict(bias=[-0.5, 1.0, 0.5, 0.3, 0.0, 0.0]),
    "no_stop": dict(bias=[-30.0, 1.0, 0.8, -30.0, -30.0, 0.0], seed=1),
    "ascii": dict(bias=[-30.0, 1.0, 0.5, 0.3, 0.0, 0.0], punc_list=["<unk>", "_", ",", "。", "?", "、"], seed=2),
    "jieba": dict(bias=[-30.0, 1.0, 0.5, 0.3, 0.0, 0.0], jieba=True, seed=3),
}
