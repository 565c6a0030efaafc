"""Hotword input: the ``--hotword`` value (or ``transcribe(hotword=...)``) -> token ids per hotword.

The value is read as FunASR 1.4.16's hotword models read theirs:

* a value ending in ``.txt`` is a file, one hotword per line. A line of several space-separated words is
  one hotword made of all their tokens (FunASR's rule). FunASR silently uses no hotwords when the file
  does not exist; here that is a :class:`~funasr_lite.errors.ConfigError` naming the file. Blank lines are
  skipped (FunASR makes them zero-length hotwords, which crash its LSTM).
* a value starting with ``http`` is a URL that FunASR downloads; funasr-lite refuses it (download the file
  and pass its path).
* anything else is a string of hotwords separated by whitespace.

Each hotword is tokenised as FunASR does for hotwords (not as for training text): with the model dir's
``seg_dict``, each word (lower-cased) found in it becomes its pieces; otherwise a word made only of CJK
characters (U+4E00..U+9FA5) and digits becomes the pieces of each character; anything else is ``<unk>``.
Without a ``seg_dict`` each word is looked up as one token. A hotword with an ``<unk>`` token is dropped
and named in a warning (FunASR keeps it, biasing towards ``<unk>``).

Limits: FunASR 1.4.16 applies none when decoding (no maximum count or length of hotwords; SeACo's
decoder keeps the 50 best-scoring hotwords per utterance, which is model behaviour, not an input limit),
and neither does funasr-lite. ``hotword_min_length`` 2 / ``hotword_max_length`` 8 tokens are FunASR's
bounds for hotwords *sampled from targets in training* (:mod:`funasr_lite.models.hotword_sampling`).

A data dir may hold a ``hotword`` file beside ``wav.scp``: ``key word word ...`` per line, the hotwords of
that utterance (see :func:`load_utterance_hotwords`).
"""

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from funasr_lite.data.tokenizer import Tokenizer
from funasr_lite.errors import ConfigError, DataDirError
from funasr_lite.utils.textio import read_utf8

__all__ = ["Hotwords", "read_hotword_value", "tokenize_hotwords", "parse_hotword", "load_utterance_hotwords"]

logger = logging.getLogger(__name__)

# FunASR's hotword rule: a word of CJK characters (up to U+9FA5) and digits only is split into characters.
_CHARS_WORD = re.compile("^[\u4e00-\u9fa50-9]+$")
# Characters that make a hotword line unusable (control characters other than tab).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Hotwords:
    """Parsed hotwords, ready for a model's decode entry."""

    # the hotwords kept, as written (a file line's words joined by one space)
    words: Tuple[str, ...] = ()
    # token ids of each kept hotword, WITHOUT the "no bias" entry (the model appends it)
    ids: Tuple[Tuple[int, ...], ...] = ()
    # hotwords dropped because a token is unknown
    dropped: Tuple[str, ...] = field(default=(), compare=False)

    def id_lists(self) -> List[List[int]]:
        """``ids`` as lists, the form decode entries take."""
        return [list(h) for h in self.ids]


def read_hotword_value(value: Union[str, "os.PathLike[str]"]) -> Tuple[List[str], str]:
    """The hotword strings of a ``--hotword`` value and a description of where they came from.

    Raises:
        ConfigError: a URL; a ``.txt`` file that is missing, unreadable, not UTF-8 or holds control
            characters (naming the file and line).
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"hotword must be a string (hotwords or a .txt file), got {type(value).__name__}")
    if value.startswith("http") and not (value.endswith(".txt") and os.path.exists(value)):
        raise ConfigError(
            f"--hotword {value}: hotword URLs are not supported (FunASR downloads them); download the file and "
            "pass its path (ending in .txt)"
        )
    if value.endswith(".txt"):
        if not os.path.exists(value):
            raise ConfigError(f"--hotword {value}: no such hotword file (a value ending in .txt names a file)")
        text = read_utf8(value, "hotword", ConfigError)
        words = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            bad = _CONTROL.search(line)
            if bad:
                raise ConfigError(
                    f"{value}:{lineno}: control character {bad.group()!r} in a hotword line (one hotword per line)"
                )
            if line.split():
                words.append(" ".join(line.split()))
        return words, f"hotword file {value}"
    if os.path.isfile(value):
        logger.warning("--hotword %r names a file but does not end in .txt: it is read as hotwords, not a file", value)
    return value.split(), "--hotword"


def _hotword_tokens(hotword: str, tokenizer: Tokenizer) -> List[str]:
    """FunASR's hotword tokens of one hotword (its whitespace-separated words, in order)."""
    if tokenizer.seg_dict is None:
        return hotword.split()
    out: List[str] = []
    for word in hotword.split():
        word = word.lower()
        if word in tokenizer.seg_dict:
            out += tokenizer.seg_dict[word]
        elif _CHARS_WORD.match(word):
            out += [p for ch in word for p in tokenizer.seg_dict.get(ch, [tokenizer.unk])]
        else:
            out.append(tokenizer.unk)
    return out


def tokenize_hotwords(words: Sequence[str], tokenizer: Tokenizer, source: str = "--hotword") -> Hotwords:
    """Token ids of each hotword; hotwords with an unknown token are dropped and named in one warning."""
    kept, ids, dropped = [], [], []
    for word in words:
        tokens = _hotword_tokens(word, tokenizer)
        token_ids = [tokenizer.token2id.get(t, tokenizer.unk_id) for t in tokens]
        if not token_ids or tokenizer.unk_id in token_ids:
            dropped.append(word)
            continue
        kept.append(word)
        ids.append(tuple(token_ids))
    if dropped:
        why = (
            "the model dir has no seg_dict, so each hotword must be a single token of the vocabulary"
            if tokenizer.seg_dict is None
            else "they contain characters or words outside the model's vocabulary"
        )
        logger.warning(
            "%s: dropped %d hotword(s) that tokenise to <unk> (%s): %s", source, len(dropped), why, " ".join(dropped)
        )
    return Hotwords(tuple(kept), tuple(ids), tuple(dropped))


def parse_hotword(value: Optional[str], tokenizer: Tokenizer) -> Optional[Hotwords]:
    """``--hotword`` value -> :class:`Hotwords` (None for None; see the module docstring)."""
    if value is None:
        return None
    words, source = read_hotword_value(value)
    hotwords = tokenize_hotwords(words, tokenizer, source)
    if not hotwords.words:
        logger.warning("%s holds no usable hotwords: decoding with an empty hotword list", source)
        return hotwords
    logger.info("%s: %d hotword(s): %s", source, len(hotwords.words), " ".join(hotwords.words[:20]))
    return hotwords


def load_utterance_hotwords(data_dir: str, keys: Sequence[str]) -> Optional[Dict[str, List[str]]]:
    """The per-utterance hotwords of ``data_dir/hotword`` (``key word word ...``), or None without that file.

    A key with no words, or absent from the file, has no hotwords of its own.

    Raises:
        DataDirError: unreadable or non-UTF-8 file, a duplicated key, a key not in wav.scp (naming file and line).
    """
    path = os.path.join(data_dir, "hotword")
    if not os.path.exists(path):
        return None
    known = set(keys)
    out: Dict[str, List[str]] = {}
    for lineno, line in enumerate(read_utf8(path, "hotword", DataDirError).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        bad = _CONTROL.search(line)
        if bad:
            raise DataDirError(f"{path}:{lineno}: control character {bad.group()!r} in a hotword line")
        key = fields[0]
        if key in out:
            raise DataDirError(f"{path}:{lineno}: key {key!r} appears twice")
        if key not in known:
            raise DataDirError(f"{path}:{lineno}: key {key!r} is not in wav.scp")
        out[key] = fields[1:]
    return out
