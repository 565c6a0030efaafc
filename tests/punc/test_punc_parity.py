"""funasr_lite.punc vs FunASR 1.4.16's AutoModel(model=dir).generate(input=text) on the same tiny weights."""

import random

import pytest
from tiny_punc import CHARS, ENGLISH, WORDS

from funasr_lite.punc import PuncResult, load_punc
from funasr_lite.punc.window import LONG_SENTENCE


def _random_text(n: int, seed: int, english: float = 0.15, unknown: float = 0.0) -> str:
    rng = random.Random(seed)
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < english:
            parts.append(" " + rng.choice(ENGLISH) + " ")
        elif r < english + unknown:
            parts.append(rng.choice(["龘", "é", "😀", "Zebra", "ü"]))
        else:
            parts.append(rng.choice(CHARS + WORDS))
        if rng.random() < 0.1:
            parts.append(" ")
    return "".join(parts)


TEXTS = {
    "chinese": "今天是二零一三年五月十号我们下午三点开会你好吗什么时候来",
    "mixed": "hello world 今天 是 the ok 你好 good morning 我们123去开会",
    "ends_english": "我们明天去开会 ok",
    "ends_number": "电话号码是一三八 123",
    "ends_fullwidth_mark": "你好吗？",
    "ends_ascii_mark": "我们走吧.",
    "ends_comma": "今天，",
    "one_char": "好",
    "one_word": "hello",
    "unknown": "今天龘é😀 Zebra 去了",
    "leading_space": "   今天 hello 下午   ",
    "mixed_long": _random_text(150, seed=1),
    "long": _random_text(420, seed=2, english=0.05, unknown=0.02),
}


def _funasr(model, text):
    res = model.generate(input=text)[0]
    ids = [] if res["punc_array"] is None else [int(i) for i in res["punc_array"]]
    return res["text"], ids


@pytest.mark.parametrize("variant", ["char", "no_stop", "ascii", "jieba"])
def test_punctuate_equals_funasr(variant, punc_dirs, funasr_punc):
    model_dir = punc_dirs[variant]
    punc = load_punc(model_dir, device="cpu")
    reference = funasr_punc(model_dir)
    seen = set()
    for name, text in TEXTS.items():
        r = punc.punctuate(text)
        assert isinstance(r, PuncResult)
        assert (r.text, r.punc_ids) == _funasr(reference, text), f"{variant}/{name}: {text!r}"
        assert len(r.words) == len(r.punc_ids)
        seen.update(r.punc_ids)
    # the weights make several different classes, so equal texts mean something
    assert len(seen) >= 3, seen
    if variant == "char":
        assert {0, 1, 2, 3, 4, 5} <= seen  # every class, the <unk> class 0 included
        assert "<unk>" in punc.punctuate(TEXTS["long"]).text  # class 0 writes "<unk>", as FunASR does


def test_sliding_window_carries_and_cuts(punc_dirs, funasr_punc, monkeypatch):
    """Windows carry the unfinished sentence over (longer than split_size); without sentence ends the carry
    grows past LONG_SENTENCE and is cut at a comma, which becomes a full stop."""
    for variant, cut in (("char", False), ("no_stop", True)):
        punc = load_punc(punc_dirs[variant], device="cpu")
        windows = []
        classify = punc._classify
        monkeypatch.setattr(punc, "_classify", lambda ids: windows.append(len(ids)) or classify(ids))
        text = TEXTS["long"]
        r = punc.punctuate(text)
        assert (r.text, r.punc_ids) == _funasr(funasr_punc(punc_dirs[variant]), text)
        assert len(windows) > 10 and max(windows) > punc.split_size
        inner_stops = [i for i, c in enumerate(r.punc_ids[:-1]) if c == 3]
        if cut:
            assert max(windows) > LONG_SENTENCE and inner_stops  # a comma became a full stop
        else:
            assert max(windows) <= LONG_SENTENCE


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text(text, punc_dirs, funasr_punc):
    punc = load_punc(punc_dirs["char"], device="cpu")
    assert _funasr(funasr_punc(punc_dirs["char"]), text) == ("", [])  # FunASR: text "", punc_array None
    assert punc.punctuate(text) == PuncResult("", [], [])


def test_words_and_punc_list(punc_dirs):
    punc = load_punc(punc_dirs["char"], device="cpu")
    assert punc.punc_list == ["<unk>", "_", "，", "。", "？", "、"]
    assert punc.punctuate("hello 今天123好 world").words == ["hello", "今", "天", "123", "好", "world"]
    jieba = load_punc(punc_dirs["jieba"], device="cpu")
    assert jieba.punctuate("我们今天 hello 下午").words == ["我", "们", "今", "天", "hello", "下", "午"]
    with pytest.raises(TypeError):
        punc.punctuate(["今天"])


@pytest.mark.parametrize("variant", ["char", "jieba"])
def test_punctuate_batch_equals_punctuate(variant, punc_dirs):
    punc = load_punc(punc_dirs[variant], device="cpu")
    texts = list(TEXTS.values()) + ["", "  "]
    assert punc.punctuate_batch(texts, batch_size=4) == [punc.punctuate(t) for t in texts]
