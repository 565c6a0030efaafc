"""Sentence splitting, text joining, timestamp shifting, punctuation stripping and SRT formatting."""

import random
import re

import pytest

from funasr_lite.decode.cer import score_corpus
from funasr_lite.decode.outputs import LONG_AUDIO_FIELDS
from funasr_lite.pipeline.sentences import (
    join_segment_texts,
    segment_sentences,
    sentence_text,
    shift_timestamps,
    split_sentences,
    strip_punctuation,
)
from funasr_lite.pipeline.subtitles import format_srt, srt_file_name, srt_time

PUNC_MARKS = ["，", "。", "？", "、"]


def _case(rng: random.Random, n: int, mismatch: int = 0):
    """n tokens (CJK chars and some Latin words), their ids and times; ``mismatch`` words fewer than tokens."""
    words = [rng.choice(["今", "天", "会", "hello", "OK", "九", "world", "点"]) for _ in range(n)]
    ids = [rng.choice([1, 1, 1, 2, 3, 4, 5, 0]) for _ in range(n)]
    t, stamps = 0, []
    for _ in range(n):
        t += rng.randint(0, 300)
        stamps.append([t, t + rng.randint(20, 200)])
        t = stamps[-1][1]
    return ids, stamps, " ".join(words[: n - mismatch])


@pytest.mark.parametrize("seed", range(12))
def test_split_sentences_matches_funasr_timestamp_sentence(seed):
    tools = pytest.importorskip("funasr.utils.timestamp_tools")
    rng = random.Random(seed)
    ids, stamps, text = _case(rng, rng.randint(1, 60), mismatch=rng.choice([0, 0, 1, 3]))
    ref = tools.timestamp_sentence(list(ids), [list(s) for s in stamps], text)
    ours = split_sentences(ids, stamps, text)
    assert ours == [{k: r[k] for k in ("text", "start", "end", "timestamp")} for r in ref]


def test_split_sentences_hand_checked():
    stamps = [[0, 100], [100, 200], [300, 400], [400, 500], [600, 700]]
    out = split_sentences([1, 2, 1, 1, 3], stamps, "今 天 hello world 会")
    assert out == [
        {"text": "今天，", "start": 0, "end": 200, "timestamp": stamps[:2]},
        # a Latin word gets a space before it, and so does the word after it
        {"text": " hello world 会。", "start": 300, "end": 700, "timestamp": stamps[2:]},
    ]
    # words after the last mark belong to no sentence
    assert split_sentences([1, 2, 1], stamps[:3], "今 天 会") == [
        {"text": "今天，", "start": 0, "end": 200, "timestamp": stamps[:2]}
    ]
    # no ids: the whole text is one sentence, its text the list of words (as FunASR gives it)
    assert split_sentences(None, stamps[:2], "今 天") == [
        {"text": ["今", "天"], "start": 0, "end": 200, "timestamp": stamps[:2]}
    ]
    assert split_sentences([1], [], "今") == [] and split_sentences([1], [[0, 1]], "") == []


def test_join_segment_texts_matches_funasr():
    auto = pytest.importorskip("funasr.auto.auto_model")
    cases = [
        ["电 四 海", "会 议"],
        ["hello world", "今 天", "", "OK"],
        ["", " ", "<|zh|>今 天"],
        ["九", "x", "点"],
        [],
    ]
    for texts in cases:
        assert join_segment_texts(texts) == auto._join_vad_texts(texts), texts
    assert join_segment_texts(["电 四 海", "会 议"]) == "电 四 海会 议"


def test_segment_sentences_matches_funasr():
    auto = pytest.importorskip("funasr.auto.auto_model")
    texts = ["今 天", "", "会 议 OK"]
    stamps = [[[1000, 1100], [1100, 1300]], [], [[5000, 5100], [5100, 5200], [5300, 5400]]]
    segments = [[900, 1500], [2000, 2500], [4900, 5600]]
    restored = [{"text": t, "timestamp": s} for t, s in zip(texts, stamps)]
    ref = auto._vad_segment_sentences(restored, segments)
    assert segment_sentences(texts, stamps, segments) == [
        {k: r[k] for k in ("text", "start", "end", "timestamp")} for r in ref
    ]
    # a segment with text but no token times spans the segment
    assert segment_sentences(["会"], [[]], [[10, 90]]) == [{"text": "会", "start": 10, "end": 90, "timestamp": []}]


def test_shift_timestamps_makes_new_lists():
    stamps = [[0, 100], [150, 200]]
    assert shift_timestamps(stamps, 1230) == [[1230, 1330], [1380, 1430]]
    assert stamps == [[0, 100], [150, 200]]


def test_strip_punctuation_keeps_the_cer():
    marks = ["_", "<unk>", "，", "。", "？", "、"]
    assert strip_punctuation("今天，开会。hello, world? OK.", marks) == "今天 开会 hello world OK"
    refs = {"a": "今 天 开 会", "b": "明 天、出 发。"}
    plain = {"a": "今天开会", "b": "明天去发"}
    punctuated = {"a": "今天，开会。", "b": "明天、去发？"}
    strip = lambda d: {k: strip_punctuation(v, marks) for k, v in d.items()}  # noqa: E731
    base = score_corpus(strip(refs), plain)
    assert score_corpus(strip(refs), strip(punctuated)).summary_line() == base.summary_line()
    assert base.wrong == 1
    # unstripped, the marks would count as insertions
    assert score_corpus(refs, punctuated).wrong > base.wrong
    # no marks: only whitespace is normalized
    assert strip_punctuation(" a  b ", []) == "a b"


def test_srt_time():
    assert srt_time(0) == "00:00:00,000"
    assert srt_time(3_723_045) == "01:02:03,045"
    assert srt_time(-5) == "00:00:00,000"
    assert srt_time(100 * 3_600_000 + 1) == "100:00:00,001"


def test_format_srt_is_well_formed():
    sentences = [
        {"text": "今天，", "start": 1230, "end": 3450, "timestamp": []},
        {"text": "", "start": 3500, "end": 3600, "timestamp": []},  # no text: no cue
        {"text": ["hello", "world"], "start": 4000, "end": 3990, "timestamp": []},  # end before start
        {"text": "多\n行  文本", "start": 61_000, "end": 3_661_001, "timestamp": []},
    ]
    srt = format_srt(sentences)
    assert srt == (
        "1\n00:00:01,230 --> 00:00:03,450\n今天，\n\n"
        "2\n00:00:04,000 --> 00:00:04,000\nhello world\n\n"
        "3\n00:01:01,000 --> 01:01:01,001\n多 行 文本\n\n"
    )
    cue = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n([^\n]+)\n\n")
    assert "".join(m.group(0) for m in cue.finditer(srt)) == srt
    assert format_srt([]) == ""


def test_sentence_text_is_the_sentences_file_text():
    texts = ["今天，", ["hello", "world"], "多\n行  文本", " a\tb "]
    assert [sentence_text(t) for t in texts] == ["今天，", "hello world", "多 行 文本", "a b"]
    info = [{"text": t, "start": i, "end": i + 1} for i, t in enumerate(texts)]
    lines = LONG_AUDIO_FIELDS["sentences"]({"sentence_info": info})
    assert lines == [f"{i} {i + 1} {sentence_text(t)}" for i, t in enumerate(texts)]


def test_srt_file_name_stays_in_the_dir_and_is_unique():
    assert srt_file_name("rec01") == "rec01.srt"
    assert srt_file_name("会议-1") == "会议-1.srt"
    names = [srt_file_name(k) for k in ["a/b", "a%2Fb", "..", ".hidden", "a\\b", "a\tb"]]
    assert len(set(names)) == len(names)
    assert all("/" not in n and "\\" not in n and not n.startswith(".") for n in names)


def test_srt_file_name_of_a_long_key_fits_a_file_system(tmp_path):
    """Kaldi keys may be any length; a name over 255 bytes (here 300 ASCII or 270 UTF-8 bytes) cannot be created,
    and stopped the whole job. Long names are cut and end in a hash of the key, still one file per key."""
    from funasr_lite.decode.outputs import write_subtitles
    from funasr_lite.pipeline.subtitles import MAX_NAME_BYTES

    keys = ["k" * 300, "k" * 299 + "j", "我" * 90, "我" * 90 + "x", "k" * 196, "a~b"]
    names = [srt_file_name(k) for k in keys]
    assert len(set(names)) == len(names)
    assert all(len(n.encode("utf-8")) <= MAX_NAME_BYTES and n.endswith(".srt") for n in names)
    assert names[4] == "k" * 196 + ".srt" and "~" not in names[4] + names[5]  # only a cut name holds a '~'
    for key, name in zip(keys, names):
        write_subtitles(str(tmp_path), name, key)
        assert (tmp_path / "subtitles" / name).read_text(encoding="utf-8") == key
