"""The text and timestamp rules of FunASR 1.4.16's VAD + ASR + punctuation pipeline, as pure functions.

* :func:`join_segment_texts`: the text the punctuation model gets: the segments' texts in time order, empty
  ones left out, joined with no space between two CJK characters and one space otherwise.
* :func:`join_raw_texts`: the raw (unpunctuated) text of a recording: the segments' texts joined by one space.
* :func:`shift_timestamps`: a segment's token times moved by the segment's start.
* :func:`split_sentences`: sentences cut after each token whose punctuation id is > 1 (FunASR's
  ``timestamp_sentence``): the words of the text are paired with the punctuation ids and token times in order.
* :func:`segment_sentences`: one sentence per non-empty VAD segment, used when the punctuation ids and the
  token times do not pair up (FunASR's fallback), and when there is no punctuation model.
* :func:`strip_punctuation`: a text without the punctuation model's marks, for scoring.
* :func:`sentence_text`: a sentence's text on one line, as the subtitles show it.

A sentence is a dict ``{"text": str, "start": int, "end": int, "timestamp": [[start_ms, end_ms], ...]}``.
"""

import re
from itertools import zip_longest
from typing import Any, Dict, Iterable, List, Optional, Sequence

__all__ = [
    "SENTENCE_MARKS",
    "join_segment_texts",
    "join_raw_texts",
    "shift_timestamps",
    "split_sentences",
    "segment_sentences",
    "strip_punctuation",
    "sentence_text",
]

# the mark that closes a sentence for punctuation id 2, 3, 4, 5 (FunASR's fixed list, not the model's)
SENTENCE_MARKS = ("，", "。", "？", "、")
# the ASCII forms the punctuation model writes after a Latin word
_ASCII_FORMS = {"，": ",", "。": ".", "？": "?", "、": ","}
# rich-text tags some ASR models emit (<|zh|>, <|NEUTRAL|>); they are not words
_TAG = re.compile(r"<\|[^|]*\|>")


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff"


def _is_latin(ch: str) -> bool:
    return "a" <= ch <= "z" or "A" <= ch <= "Z"


def join_segment_texts(texts: Iterable[str]) -> str:
    """The punctuation model's input: ``["电 四 海", "会 议"]`` -> ``"电 四 海会 议"`` (CJK|CJK joins with no
    space, anything else with one); tags are removed and empty texts left out."""
    parts = [t for t in (_TAG.sub("", text).strip() for text in texts) if t]
    if not parts:
        return ""
    joined = parts[0]
    for part in parts[1:]:
        joined += ("" if _is_cjk(joined[-1]) and _is_cjk(part[0]) else " ") + part
    return joined


def join_raw_texts(texts: Sequence[str]) -> str:
    """The recording's raw text: the segments' texts joined by one space each (empty ones included, as FunASR
    does, so ``["a", ""]`` gives ``"a "``)."""
    return " ".join(texts)


def shift_timestamps(stamps: Sequence[Sequence[int]], offset_ms: int) -> List[List[int]]:
    """``[[s + offset_ms, e + offset_ms], ...]`` (new lists; the input is not changed)."""
    return [[int(s) + int(offset_ms), int(e) + int(offset_ms)] for s, e in stamps]


def split_sentences(
    punc_ids: Optional[Sequence[int]], timestamps: Sequence[Sequence[int]], text: str
) -> List[Dict[str, Any]]:
    """Sentences of a punctuated recording (FunASR's ``timestamp_sentence``).

    Args:
        punc_ids: one punctuation id per token (1: none; 2..5: ``，。？、``); None or empty: the whole text is one
            sentence, whose ``text`` is the list of its words (as FunASR gives it).
        timestamps: ``[[start_ms, end_ms], ...]`` per token.
        text: the punctuation model's input; its whitespace-separated words are paired with the ids in order.
    Returns:
        the sentences that end in a mark; words after the last mark belong to no sentence. A Latin word is
        preceded by a space, and so is any word after one.
    """
    if text is None or timestamps is None or not len(timestamps) or not len(text):
        return []
    if punc_ids is None or not len(punc_ids):
        return [
            {"text": text.split(), "start": timestamps[0][0], "end": timestamps[-1][1], "timestamp": list(timestamps)}
        ]
    sentences: List[Dict[str, Any]] = []
    words = text.split()
    current, stamps = "", []
    start: Optional[int] = timestamps[0][0]
    end = timestamps[0][1]
    for pid, stamp, word in zip_longest(punc_ids, timestamps, words, fillvalue=None):
        if start is None and stamp is not None:
            start = stamp[0]
        if word is not None:
            latin_next = _is_latin(word[0]) or (current and _is_latin(current[-1]))
            current += (" " + word) if latin_next else word
        stamps.append(stamp)
        end = stamp[1] if stamp is not None else end
        pid = int(pid) if pid is not None else 1
        if pid > 1:
            current += SENTENCE_MARKS[pid - 2]
            sentences.append({"text": current, "start": start, "end": end, "timestamp": stamps})
            current, stamps, start = "", [], None
    return sentences


def segment_sentences(
    texts: Sequence[str], stamps: Sequence[Sequence[Sequence[int]]], segments: Sequence[Sequence[int]]
) -> List[Dict[str, Any]]:
    """One sentence per VAD segment whose text is not empty: its text, its (shifted) token times, and the
    first/last token time as start/end (the segment's bounds when it has no token times)."""
    sentences = []
    for text, times, (seg_start, seg_end) in zip(texts, stamps, segments):
        text = _TAG.sub("", str(text)).strip()
        if not text:
            continue
        times = [[int(s), int(e)] for s, e in times]
        sentences.append(
            {
                "text": text,
                "start": times[0][0] if times else seg_start,
                "end": times[-1][1] if times else seg_end,
                "timestamp": times,
            }
        )
    return sentences


def sentence_text(text: Any) -> str:
    """A sentence's ``text`` on one line: a word list (:func:`split_sentences` without punctuation ids) joined
    by spaces, line breaks and runs of spaces made one space."""
    return " ".join((" ".join(text) if isinstance(text, list) else str(text)).split())


def strip_punctuation(text: str, marks: Iterable[str]) -> str:
    """``text`` without the punctuation ``marks`` (and the ASCII forms of ``，。？、`` among them), each mark
    replaced by a space so that the words around it stay apart; runs of spaces become one."""
    table = set()
    for mark in marks:
        if mark and mark not in ("_", "<unk>"):
            table.add(mark)
            if mark in _ASCII_FORMS:
                table.add(_ASCII_FORMS[mark])
    if not table:
        return " ".join(text.split())
    pattern = re.compile("|".join(re.escape(m) for m in sorted(table, key=len, reverse=True)))
    return " ".join(pattern.sub(" ", text).split())
