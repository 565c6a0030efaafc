"""tools/hotword_recall.py: its recall count and its carrier sentences (no synthesis, no training)."""

import hotword_recall as hr


def test_hotword_hits_counts_each_occurrence_once():
    words = ["西湖", "李白"]
    # spaces are ignored; a word said twice and found once counts 1 of 2; a hyp-only word counts nothing
    assert hr.hotword_hits("我 们 去 西 湖 西 湖", "我们去西湖", words) == (1, 2)
    assert hr.hotword_hits("李白的电话", "李白的电话李白", words) == (1, 1)
    assert hr.hotword_hits("明天开会", "西湖李白", words) == (0, 0)
    assert hr.recall({"a": "去西湖", "b": "李 白 到", "c": "西湖"}, {"a": "去西湖", "b": "里白到"}, words) == (1, 3)


def test_carriers_hold_each_hotword_and_never_repeat():
    words = hr.DEFAULT_HOTWORDS
    sents = hr.hotword_sentences(words, {"train": 3, "test": 5}, seed=0)
    assert [w for w, _ in sents["test"]] == [w for w in words for _ in range(5)]
    texts = [t for split in sents.values() for _, t in split]
    assert len(set(texts)) == len(texts)
    assert all(w in t for split in sents.values() for w, t in split)
    # outside the hotword, every character is one the demo model knows
    vocab = set(hr.demo_vocab())
    assert all(set(t.replace(w, "")) <= vocab for split in sents.values() for w, t in split)
