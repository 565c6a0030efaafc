"""FunASR 1.4.16's sliding-window punctuation of a unit sequence, and how it writes the punctuated text.

The units are cut into windows of ``split_size``. Each window is classified together with the *cache*: the
units after the last sentence end (class ``。`` or ``？``) found in the previous window, searched from its
second-to-last unit down to its third. A window with no sentence end is carried over whole; once the
carried text exceeds ``LONG_SENTENCE`` units, it is cut at its last comma instead, which becomes a full
stop. The last window is written whole.

Writing a window: English units (first character one byte) are capitalised at the window start and after
a full stop / question mark, get a leading space at the window start and between two English units, and
take ASCII ``,`` ``.`` ``?`` instead of ``，`` ``。`` ``？``; every class other than ``_`` inserts its mark
(class 0, ``<unk>`` in the released lists, inserts the literal string ``<unk>``: FunASR does, so do we).
At the very end the text is closed with a full stop: a trailing ``，``/``、`` becomes ``。``, ``,`` becomes
``.``, and text not ending in ``。？.?`` gets ``。`` (after a non-ASCII character) or ``.``; the last class
then becomes ``sentence_end_id`` (also when the text already ended in ``。？.?``, nothing changes).

This is pure Python over a ``classify`` callable, so the rules are testable without a model.
"""

from typing import Callable, Generator, List, Sequence, Tuple

from funasr_lite.punc.units import is_one_byte

__all__ = ["punctuate_windows", "drive_steps", "window_steps", "split_windows", "LONG_SENTENCE"]

# A carried-over text longer than this many units is cut at its last comma (FunASR's cache_pop_trigger_limit).
LONG_SENTENCE = 200
_SENTENCE_ENDS = ("。", "？")
_TO_ASCII = {"，": ",", "。": ".", "？": "?"}


def split_windows(n: int, split_size: int) -> List[Tuple[int, int]]:
    """(start, end) of the windows over ``n`` units: consecutive runs of ``split_size``, the last shorter;
    one window (possibly empty) when ``n <= split_size``."""
    if split_size < 2:
        raise ValueError(f"split_size must be >= 2, got {split_size}")
    if n <= split_size:
        return [(0, n)]
    return [(s, min(s + split_size, n)) for s in range(0, n, split_size)]


def _write(units: Sequence[str], classes: Sequence[int], punc_list: Sequence[str]) -> str:
    """The punctuated text of one window."""
    parts: List[str] = []
    for i, unit in enumerate(units):
        english = is_one_byte(unit[0])
        word = unit
        if english and (i == 0 or punc_list[classes[i - 1]] in _SENTENCE_ENDS):
            word = word.capitalize()
        if english and (i == 0 or is_one_byte(units[i - 1][0])):
            word = " " + word
        parts.append(word)
        mark = punc_list[classes[i]]
        if mark != "_":
            parts.append(_TO_ASCII.get(mark, mark) if english else mark)
    return "".join(parts)


def _close(text: str) -> Tuple[str, bool]:
    """The text closed with a full stop, and whether the last class becomes the sentence end."""
    last = text[-1]
    if last in ("，", "、"):
        return text[:-1] + "。", True
    if last == ",":
        return text[:-1] + ".", True
    if last not in _SENTENCE_ENDS and not is_one_byte(last):
        return text + "。", True
    if last not in (".", "?") and is_one_byte(last):
        return text + ".", True
    return text, False


def window_steps(
    units: Sequence[str], ids: Sequence[int], punc_list: Sequence[str], sentence_end_id: int, split_size: int
) -> Generator[List[int], List[int], Tuple[str, List[int]]]:
    """The window loop as a generator: yields each window's ids, is sent back one class per id, and returns
    (text, classes), one class per unit, as FunASR's ``text`` and ``punc_array``. ``units`` must be non-empty
    and have one id each. :func:`punctuate_windows` drives one; several can be driven in lockstep."""
    if not units or len(units) != len(ids):
        raise ValueError(f"need as many ids as units, at least one ({len(units)} units, {len(ids)} ids)")
    windows = split_windows(len(units), split_size)
    cache_units: List[str] = []
    cache_ids: List[int] = []
    text = ""
    all_classes: List[int] = []
    for k, (start, end) in enumerate(windows):
        w_units = cache_units + list(units[start:end])
        w_ids = cache_ids + list(ids[start:end])
        classes = list((yield w_ids))
        if len(classes) != len(w_ids):
            raise ValueError(f"classify returned {len(classes)} classes for {len(w_ids)} ids")
        is_last = k == len(windows) - 1
        if not is_last:
            cut, last_comma = -1, -1
            for i in range(len(classes) - 2, 1, -1):
                mark = punc_list[classes[i]]
                if mark in _SENTENCE_ENDS:
                    cut = i
                    break
                if last_comma < 0 and mark == "，":
                    last_comma = i
            if cut < 0 and len(w_units) > LONG_SENTENCE and last_comma >= 0:
                cut = last_comma
                classes[cut] = sentence_end_id
            cache_units, cache_ids = w_units[cut + 1 :], w_ids[cut + 1 :]
            w_units, classes = w_units[: cut + 1], classes[: cut + 1]
        text += _write(w_units, classes, punc_list)
        if is_last:
            text, closed = _close(text)
            if closed:
                classes[-1] = sentence_end_id
        all_classes += classes
    return text, all_classes


def punctuate_windows(
    units: Sequence[str],
    ids: Sequence[int],
    classify: Callable[[List[int]], List[int]],
    punc_list: Sequence[str],
    sentence_end_id: int,
    split_size: int,
) -> Tuple[str, List[int]]:
    """Punctuate ``units`` (non-empty, with their embedding ``ids``); ``classify`` maps a window's ids to one
    class per id. Returns (text, classes) as :func:`window_steps` does."""
    return drive_steps(window_steps(units, ids, punc_list, sentence_end_id, split_size), classify)


def drive_steps(
    steps: Generator[List[int], List[int], Tuple[str, List[int]]], classify: Callable[[List[int]], List[int]]
) -> Tuple[str, List[int]]:
    """Run one :func:`window_steps` generator to its end, classifying each window with ``classify``;
    its (text, classes)."""
    window = next(steps)
    while True:
        try:
            window = steps.send(classify(window))
        except StopIteration as done:
            return done.value
