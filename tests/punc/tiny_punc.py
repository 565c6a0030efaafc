"""The tiny punctuation model dirs of the punc tests: vocabulary and weight variants for
``tools/punc_model_dir.build_punc_dir`` (FunASR's own CTTransformer class)."""

import os
import sys

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
from punc_model_dir import build_punc_dir  # noqa: E402  (tools/punc_model_dir.py)

# 60 CJK characters, a few multi-character words (for the jieba model) and English words make the vocabulary
CHARS = list("今天是二零一三四五六七八九十年月日号电话码下午点分开会共元角明早上出发我的百千你好吗什么时候来去们在有这")
WORDS = ["今天", "下午", "开会", "时候", "什么", "我们", "电话", "号码"]
ENGLISH = ["hello", "world", "the", "ok", "is", "good", "morning", "Hello", "123"]

# name -> build_punc_dir arguments. "char": every class comes out, <unk> (class 0) now and then;
# "no_stop": no 。/？ inside a text, so long texts are carried over and cut at a comma;
# "ascii": a punctuation list with ASCII , and ? (which FunASR's rules do not recognise);
# "jieba": the word-level layout (jieba_usr_dict) of the cn-en model.
VARIANTS = {
    "char": dict(bias=[-0.5, 1.0, 0.5, 0.3, 0.0, 0.0]),
    "no_stop": dict(bias=[-30.0, 1.0, 0.8, -30.0, -30.0, 0.0], seed=1),
    "ascii": dict(bias=[-30.0, 1.0, 0.5, 0.3, 0.0, 0.0], punc_list=["<unk>", "_", ",", "。", "?", "、"], seed=2),
    "jieba": dict(bias=[-30.0, 1.0, 0.5, 0.3, 0.0, 0.0], jieba_words=WORDS, seed=3),
}


def build_variant(out: str, name: str) -> str:
    """Write the tiny dir of VARIANTS[name] to ``out``."""
    kw = VARIANTS[name]
    tokens = ["<unk>", "<s>", "</s>"] + CHARS + (WORDS if kw.get("jieba_words") else []) + ENGLISH
    return build_punc_dir(out, tokens, **kw)
