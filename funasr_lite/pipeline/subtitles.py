"""SubRip (``.srt``) subtitles from sentences, and the file name a recording's subtitles get.

Each cue is its 1-based index, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, the text on one line, and a blank line::

    1
    00:00:01,230 --> 00:00:03,450
    今天是二零二四年三月五日。

"""

import hashlib
from typing import Any, Dict, Sequence

from funasr_lite.pipeline.sentences import sentence_text

__all__ = ["srt_time", "format_srt", "srt_file_name", "MAX_NAME_BYTES"]


def srt_time(ms: int) -> str:
    """``HH:MM:SS,mmm`` of a time in milliseconds (negative times clamp to 0; hours may exceed 99)."""
    ms = max(0, int(ms))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"


def format_srt(sentences: Sequence[Dict[str, Any]]) -> str:
    """The SRT text of ``sentences`` (dicts with ``text``, ``start``, ``end`` in ms), one cue each.

    A cue's text is put on one line (line breaks and runs of spaces become one space); a sentence with no
    text gets no cue; an end before the start is raised to the start. No sentences: an empty file."""
    cues = []
    for sentence in sentences:
        text = sentence_text(sentence["text"])
        if not text:
            continue
        start = int(sentence["start"])
        end = max(start, int(sentence["end"]))
        cues.append(f"{len(cues) + 1}\n{srt_time(start)} --> {srt_time(end)}\n{text}\n\n")
    return "".join(cues)


def srt_file_name(key: str) -> str:
    """``<key>.srt`` with the key percent-encoded where it is not a safe file name (``/``, ``%``, control
    characters, a leading dot), so two keys never share a file and none escapes the subtitles dir.

    A name longer than :data:`MAX_NAME_BYTES` in UTF-8 (file systems allow 255 bytes, and the temporary file
    it is written through is 14 bytes longer) is cut and ends in ``~`` and the first 16 hex digits of the
    key's SHA-256 instead; ``~`` is never in a name that was not cut, so it shares no file with another key."""
    name = "".join(f"%{ord(ch):02X}" if ch in _UNSAFE or not ch.isprintable() else ch for ch in key)
    if name.startswith("."):
        name = "%2E" + name[1:]
    name = name.replace("~", "%7E")
    if len(name.encode("utf-8")) + len(".srt") > MAX_NAME_BYTES:
        tail = "~" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16] + ".srt"
        head = name.encode("utf-8")[: MAX_NAME_BYTES - len(tail)].decode("utf-8", errors="ignore")
        return head + tail
    return name + ".srt"


# the longest subtitle file name, in UTF-8 bytes
MAX_NAME_BYTES = 200


# characters that would reach outside the dir, or make two keys' names collide
_UNSAFE = frozenset("/\\%")
