"""Token lists, ``seg_dict``, text -> ids for training targets, ids -> text for results.

Behaviour follows FunASR (checked against funasr 1.4.16 in ``tests/test_tokenizer.py``):

Encoding (``Tokenizer.encode``), as FunASR's ``CharTokenizer`` with ``split_with_space``:

* With a ``seg_dict`` (``seg_mode="word"``, FunASR 1.x): the text is split into
  words at whitespace and each word is lower-cased. A word found in ``seg_dict``
  becomes its pieces (English words: ``hel@@ lo``). Otherwise, if the word starts
  with a CJK character (U+4E00..U+9FA5), an ASCII letter or a digit, each of its
  characters becomes that character's pieces, or ``<unk>`` when the character is
  not in ``seg_dict``. Any other word (punctuation such as ``，``) becomes one
  ``<unk>``.
* With a ``seg_dict`` and ``seg_mode="fmm"`` (FunASR 0.x preprocessor):
  all spaces are removed, the text is lower-cased and cut by forward maximum
  matching against the ``seg_dict`` keys. A segment starting with a CJK
  character, letter or digit becomes its pieces (or ``<unk>``); any other segment
  (punctuation) is dropped.
* Without a ``seg_dict``: every non-space character is one token.

Pieces map to ids through the token list; an unknown piece gives ``<unk>``.
``encode`` returns no ``</s>``; the model appends it for training targets.

Decoding (``Tokenizer.decode``): the ids of blank, ``<s>`` and ``</s>`` are
dropped (as Paraformer inference does), the rest are mapped to tokens and
post-processed like FunASR's ``sentence_postprocess``; see :func:`postprocess_tokens`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from funasr_lite.errors import ModelDirError
from funasr_lite.utils.textio import read_utf8

__all__ = ["load_token_list", "load_seg_dict", "postprocess_tokens", "postprocess_tokens_timed", "Tokenizer"]

# A word (or segment) whose first character matches this goes through seg_dict
# character by character; FunASR uses the same class (note: CJK only up to U+9FA5).
_SEG_START = re.compile("[\u4e00-\u9fa5A-Za-z0-9]")

# Tokens that sentence post-processing removes wherever they appear as a whole token.
_DROPPED_TOKENS = frozenset(("<s>", "</s>", "<unk>", "<OOV>"))
# Substrings ignored when classifying a token as CJK-like or alphabetic (in this order).
_IGNORED_SUBSTRINGS = (" ", "</s>", "<s>", "<unk>", "<OOV>")
_BLANK = " "  # the word separator element used during post-processing


# The special tokens a Paraformer token list holds (FunASR: <blank> id 0, <s> 1, </s> 2, <unk> last);
# :class:`Tokenizer` needs all four.
SPECIAL_SYMBOLS = ("<blank>", "<s>", "</s>", "<unk>")


def load_token_list(path: str, required: Sequence[str] = SPECIAL_SYMBOLS) -> List[str]:
    """Load a token list: ``tokens.json`` (a JSON list of strings) or ``tokens.txt``.

    ``tokens.txt`` holds one token per line (trailing whitespace stripped, as
    FunASR does); the line number minus one is the id. A file whose name ends in
    neither ``.json`` nor ``.txt`` is read as JSON when it starts with ``[``.

    Raises:
        ModelDirError: unreadable file, bad JSON, a non-string or empty token,
            a duplicated token, an empty list, or one of the ``required`` special
            tokens missing. The message names the file.
    """
    path = os.fspath(path)
    text = read_utf8(path, "token list", ModelDirError)
    as_json = path.endswith(".json") or (not path.endswith(".txt") and text.lstrip().startswith("["))
    if as_json:
        try:
            tokens = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelDirError(f"{path}:{e.lineno}: invalid JSON in token list: {e.msg}") from None
        if not isinstance(tokens, list):
            raise ModelDirError(f"{path}: token list must be a JSON list of strings, got {type(tokens).__name__}")
        for i, t in enumerate(tokens):
            if not isinstance(t, str) or not t:
                raise ModelDirError(f"{path}: entry {i} of the token list is {t!r}, expected a non-empty string")
    else:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        tokens = []
        for lineno, line in enumerate(lines, start=1):
            token = line.rstrip()
            if not token:
                raise ModelDirError(
                    f"{path}:{lineno}: empty line in token list (every line is one token; ids are line numbers - 1)"
                )
            tokens.append(token)
    if not tokens:
        raise ModelDirError(f"{path}: token list is empty")
    seen: Dict[str, int] = {}
    for i, t in enumerate(tokens):
        if t in seen:
            raise ModelDirError(f"{path}: token {t!r} is duplicated (ids {seen[t]} and {i})")
        seen[t] = i
    missing = [t for t in required if t not in seen]
    if missing:
        raise ModelDirError(
            f"{path}: the token list has no {', '.join(missing)} ({len(tokens)} tokens, first: {tokens[:3]}); "
            f"the model needs {' '.join(required)} (FunASR: <blank> is id 0, <s> 1, </s> 2, <unk> last): "
            "use the tokens file the model was trained with"
        )
    return tokens


def load_seg_dict(path: str) -> Dict[str, List[str]]:
    """Load a FunASR ``seg_dict``: lines ``word piece1 piece2 ...`` (whitespace separated).

    Blank lines are skipped. A later line for the same word replaces an earlier
    one (as in FunASR). Returns ``{word: [pieces]}``.

    Raises:
        ModelDirError: the file is missing, unreadable or not UTF-8 (names file:line).
    """
    lines = read_utf8(os.fspath(path), "seg_dict", ModelDirError).splitlines()
    return {fields[0]: fields[1:] for fields in map(str.split, lines) if fields}


def _forward_max_match(text: str, keys: Dict[str, List[str]], max_len: int) -> List[str]:
    """Cut ``text`` into the longest ``keys`` entries, left to right; unmatched chars stand alone."""
    out: List[str] = []
    i = 0
    while i < len(text):
        end = next((j for j in range(min(len(text), i + max_len), i + 1, -1) if text[i:j] in keys), i + 1)
        out.append(text[i:end])
        i = end
    return out


def _strip_ignored(token: str) -> str:
    """``token`` without what post-processing ignores when it classifies tokens (:data:`_IGNORED_SUBSTRINGS`)."""
    for s in _IGNORED_SUBSTRINGS:
        token = token.replace(s, "")
    return token


def _cjk_like(s: str) -> bool:
    """FunASR's "Chinese" test: starts with a CJK char (U+4E00..U+9FFF) or a digit, or is ``@``.

    It compares whole strings (as FunASR does), so a string starting with U+9FFF or ``9``
    qualifies only if it is exactly that character.
    """
    return "\u4e00" <= s <= "\u9fff" or "0" <= s <= "9" or s == "@"


def _all_cjk_like(items: Iterable[str]) -> bool:
    """Every item (with markers and spaces ignored) is CJK-like; False for no items."""
    cleaned = [_strip_ignored(x) for x in items]
    return bool(cleaned) and all(_cjk_like(x) for x in cleaned)


def _all_alpha(items: Iterable[str]) -> bool:
    """Every item (markers/spaces ignored) is alphabetic and not CJK-like, or is ``'``."""
    cleaned = [_strip_ignored(x) for x in items]
    return bool(cleaned) and all(x == "'" or (x.isalpha() and not _cjk_like(x)) for x in cleaned)


def _is_ascii_letter(s: str) -> bool:
    return len(s) == 1 and s.isascii() and s.isalpha()


def _merge_abbreviations(elems: List[str]) -> List[Tuple[str, int, int]]:
    """Merge runs ``x, " ", y[, " ", z ...]`` of single ASCII letters into one upper-case word.

    Returns ``(element, first, last)``: each output element with the span of input positions it came from."""
    out: List[Tuple[str, int, int]] = []
    i = 0
    n = len(elems)
    while i < n:
        if _is_ascii_letter(elems[i]):
            end = i
            while end + 2 < n and elems[end + 1] == _BLANK and _is_ascii_letter(elems[end + 2]):
                end += 2
            if end > i:
                out.append(("".join(elems[i : end + 1 : 2]).upper(), i, end))
                i = end + 1
                continue
        out.append((elems[i], i, i))
        i += 1
    return out


def _elements(
    tokens: Sequence[str], stamps: Optional[Sequence[Sequence[float]]]
) -> Tuple[List[str], List[List[float]]]:
    """The words and separators of :func:`postprocess_tokens` (bytes tokens decoded, the dropped specials
    left out), and with ``stamps`` (one per token) the times FunASR gives them: a CJK-like token or a
    completed English word gets one ``[start, end]`` (a word from its first piece's start to its last
    piece's end), punctuation none; when every token is CJK-like the stamps are kept as given."""
    toks = [t.decode("utf-8") if isinstance(t, bytes) else t for t in tokens]
    toks = [t for t in toks if t not in _DROPPED_TOKENS]
    elems: List[str] = []
    times: List[List[float]] = []
    pending = ""  # text of @@ pieces waiting for the rest of their word

    def stamp(i: int) -> List[float]:
        return list(stamps[i]) if stamps is not None and i < len(stamps) else [-1, -1]

    if _all_cjk_like(toks):
        elems = [t.replace(" ", "") for t in toks]
        times = [list(x) for x in stamps] if stamps is not None else []
        return elems, times
    start: Optional[float] = None  # start of the word being read (None: at a word boundary)
    begin, end = -1.0, -1.0  # the stamp of the item being read (FunASR's begin/end)
    if _all_alpha(toks):
        for i, t in enumerate(toks):
            if start is None:
                start = stamp(i)[0]
            if "@@" in t:
                pending += t.replace("@@", "")
            else:
                elems += [pending + t, _BLANK]
                times.append([start, stamp(i)[1]])
                pending, start = "", None
        return elems, times
    after_word = False  # the last element is the space after an English word (or replaced it)
    at_boundary = True  # FunASR's ts_flag: the next token's own stamp starts the next item
    for i, t in enumerate(toks):
        if at_boundary:
            begin, end = stamp(i)
        if _all_cjk_like(t):
            if after_word:
                elems.pop()
            elems.append(t)
            times.append([begin, end])
            after_word, at_boundary = False, True
        elif "@@" in t:
            pending += t.replace("@@", "")
            end = stamp(i)[1]
            after_word, at_boundary = False, False
        elif _all_alpha(t):
            elems += [pending + t, _BLANK]
            end = stamp(i)[1]
            times.append([begin, end])
            pending = ""
            after_word, at_boundary = True, True
        else:
            elems.append(t)
    return elems, times


def postprocess_tokens(tokens: Sequence[str]) -> Tuple[str, List[str]]:
    """Turn model tokens into a sentence and a word list, like FunASR's ``sentence_postprocess``.

    * ``<s> </s> <unk> <OOV>`` tokens are dropped.
    * If every remaining token is CJK-like (a CJK char or digit first, or ``@``),
      the tokens are joined with no spaces (spaces inside tokens removed).
    * Else if every token is alphabetic, tokens are words separated by spaces;
      a token containing ``@@`` is glued (without ``@@``) to the next one.
    * Otherwise (mixed) tokens are scanned left to right: a CJK-like token is
      appended, removing the space element after a preceding English word; a
      ``@@`` piece is held and glued to the next alphabetic token; an
      alphabetic token completes a word followed by a space; anything else
      (punctuation) is appended as is. FunASR's quirks are kept: a trailing
      ``@@`` piece with nothing after it vanishes, a pending ``@@`` piece waits
      across CJK tokens, and punctuation right after an English word is removed
      (instead of the space) when a CJK token follows.
    * Runs of single letters separated by spaces become one upper-case
      abbreviation (``i b m 公 司`` -> ``IBM公司``).

    Returns:
        ``(sentence, words)``: the joined, stripped sentence, and the word list
        (each CJK char, each English word, each other token).
    """
    elems, _ = _elements(tokens, None)
    merged = [e for e, _, _ in _merge_abbreviations(elems)]
    words = [e for e in merged if e != _BLANK]
    return "".join(merged).strip(), words


def postprocess_tokens_timed(
    tokens: Sequence[str], stamps: Sequence[Sequence[float]]
) -> Tuple[str, List[str], List[List[float]]]:
    """FunASR's ``sentence_postprocess`` with timestamps (BiCif/SeACo results): the words of
    :func:`postprocess_tokens` joined with single spaces, and a ``[start, end]`` per word.

    ``stamps`` has one entry per token of ``tokens`` (specials included). FunASR's index quirks are kept:
    dropped specials (``<unk>``) keep their stamps when every token is CJK-like (later words then get the
    stamps of earlier tokens), punctuation in mixed text uses up a stamp without getting one, an
    abbreviation spans the stamps of its letters, and words past the last stamp get none (so the
    stamp list may be shorter than the word list).

    Returns:
        ``(sentence, words, word_stamps)``.
    """
    elems, times = _elements(tokens, stamps)
    position = []  # per element: how many non-separator elements come before it (FunASR's ts_nums)
    count = 0
    for e in elems:
        position.append(count)
        count += e != _BLANK
    words: List[str] = []
    word_times: List[List[float]] = []
    for word, first, last in _merge_abbreviations(elems):
        if word == _BLANK:
            continue
        words.append(word)
        if position[last] < len(times):
            word_times.append([times[position[first]][0], times[position[last]][1]])
    return " ".join(words).strip(), words, word_times


class Tokenizer:
    """Maps text to token ids (training targets) and ids back to text (results).

    Args:
        token_list: the model's tokens; the position is the id.
        seg_dict: ``{word: [pieces]}`` (see :func:`load_seg_dict`), or None.
        unk: the unknown-token symbol; it must be in ``token_list``.
        blank: the CTC blank symbol (id 0 in FunASR models).
        sos: the start-of-sentence symbol.
        eos: the end-of-sentence symbol (may equal ``sos``, e.g. ``<sos/eos>``).
        seg_mode: ``"word"`` (FunASR 1.x CharTokenizer) or ``"fmm"`` (FunASR 0.x
            forward maximum matching); only used with a ``seg_dict``.

    Raises:
        ValueError: empty or duplicated tokens, a special symbol missing from
            ``token_list``, or an unknown ``seg_mode``.
    """

    def __init__(
        self,
        token_list: Sequence[str],
        seg_dict: Optional[Dict[str, List[str]]] = None,
        unk: str = "<unk>",
        blank: str = "<blank>",
        sos: str = "<s>",
        eos: str = "</s>",
        seg_mode: str = "word",
    ) -> None:
        if seg_mode not in ("word", "fmm"):
            raise ValueError(f"seg_mode must be 'word' or 'fmm', got {seg_mode!r}")
        self.token_list: List[str] = list(token_list)
        if not self.token_list:
            raise ValueError("token_list is empty")
        self.token2id: Dict[str, int] = {}
        for i, t in enumerate(self.token_list):
            if not isinstance(t, str):
                raise ValueError(f"token {i} is {t!r}, expected a string")
            if t in self.token2id:
                raise ValueError(f"token {t!r} is duplicated in token_list (ids {self.token2id[t]} and {i})")
            self.token2id[t] = i

        symbols = (("unk", unk), ("blank", blank), ("sos", sos), ("eos", eos))
        missing = [f"{name} symbol {symbol!r}" for name, symbol in symbols if symbol not in self.token2id]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the token list "
                f"({len(self.token_list)} tokens, first: {self.token_list[:3]})"
            )
        self.unk_id: int = self.token2id[unk]  # id that unknown pieces map to
        self.blank_id: int = self.token2id[blank]  # CTC blank, dropped when decoding
        self.sos_id: int = self.token2id[sos]  # start of sentence, dropped when decoding
        self.eos_id: int = self.token2id[eos]  # end of sentence, dropped when decoding
        self.unk: str = unk
        self.seg_dict: Optional[Dict[str, List[str]]] = (
            None if seg_dict is None else {k: list(v) for k, v in seg_dict.items()}
        )
        self.seg_mode: str = seg_mode
        self._seg_max_len = max((len(k) for k in self.seg_dict), default=1) if self.seg_dict else 1
        self._dropped_ids = frozenset((self.blank_id, self.sos_id, self.eos_id))

    @property
    def vocab_size(self) -> int:
        """Number of tokens (the model's output dimension)."""
        return len(self.token_list)

    def tokenize(self, text: str) -> List[str]:
        """Split ``text`` into model tokens (pieces); see the module docstring for the rules."""
        if self.seg_dict is None:
            return [c for c in text if not c.isspace()]
        out: List[str] = []
        if self.seg_mode == "fmm":
            joined = "".join(text.split()).lower()
            for seg in _forward_max_match(joined, self.seg_dict, self._seg_max_len):
                if _SEG_START.match(seg):
                    out += self.seg_dict.get(seg, [self.unk])
            return out
        for word in text.split():
            word = word.lower()
            if word in self.seg_dict:
                out += self.seg_dict[word]
            elif _SEG_START.match(word):
                for ch in word:
                    out += self.seg_dict.get(ch, [self.unk])
            else:
                out.append(self.unk)
        return out

    def encode(self, text: str) -> List[int]:
        """Token ids of ``text`` for a training target (no ``</s>`` appended); an unknown token gives ``unk_id``."""
        return [self.token2id.get(t, self.unk_id) for t in self.tokenize(text)]

    def ids_to_tokens(self, ids: Iterable[int]) -> List[str]:
        """Tokens of ``ids`` with the blank, ``<s>`` and ``</s>`` ids dropped.

        ``ids`` may be a list, a 1-D numpy array or a 1-D tensor of ints.

        Raises:
            ValueError: an id outside ``[0, vocab_size)``.
        """
        out: List[str] = []
        n = len(self.token_list)
        for x in ids:
            i = int(x)
            if i in self._dropped_ids:
                continue
            if not 0 <= i < n:
                raise ValueError(f"token id {i} is out of range for a vocabulary of {n} tokens")
            out.append(self.token_list[i])
        return out

    def decode(self, ids: Iterable[int]) -> Tuple[str, List[str]]:
        """Post-processed ``(sentence, words)`` of ``ids``; see :func:`postprocess_tokens`."""
        return postprocess_tokens(self.ids_to_tokens(ids))
