"""Text -> the units a punctuation model gives one class each, as FunASR 1.4.16's CT-Transformer splits it.

Character level (``split_units``, the default): the text is split on whitespace; inside each piece a run of
one-byte (ASCII) characters stays one unit (an English word, a number; case kept), and every other
character is a unit of its own (a Chinese character, but also ``é`` or a full-width mark).

Word level (:class:`JiebaSplitter`, models that ship a ``jieba_usr_dict``): whitespace-separated pieces that
are plain English words (``[a-zA-Z']+``) stay units; each run of the other pieces is joined without spaces
and cut by jieba (its default dictionary plus the model's user dictionary, no HMM). The model still
returns one class per such unit; :meth:`JiebaSplitter.expand` spreads the classes back to characters.

:class:`UnitVocab` maps units to embedding ids (an unknown unit -> the ``<unk>`` id; no lowercasing).
"""

import re
from typing import Dict, List, Sequence, Tuple

from funasr_lite.errors import ModelDirError

__all__ = ["split_units", "JiebaSplitter", "UnitVocab", "is_one_byte"]

_ENGLISH_WORD = re.compile(r"^[a-zA-Z']+$")
# First characters of the jieba words whose class FunASR spreads over their characters (U+0E00..U+9FA5 as
# FunASR writes it: Thai through CJK).
_SPREAD_FIRST = ("\u0e00", "\u9fa5")
_NO_MARK_ID = 1  # the class id FunASR writes for the characters before a word's last one


def is_one_byte(ch: str) -> bool:
    """Whether ``ch`` is one byte in UTF-8 (ASCII): FunASR's test for "English" throughout."""
    return len(ch.encode("utf-8")) == 1


def split_units(text: str) -> List[str]:
    """Character-level units of ``text``: ASCII runs whole, every other character alone; whitespace splits."""
    units: List[str] = []
    for piece in text.split():
        run = ""
        for ch in piece:
            if is_one_byte(ch):
                run += ch
                continue
            if run:
                units.append(run)
                run = ""
            units.append(ch)
        if run:
            units.append(run)
    return units


class JiebaSplitter:
    """Word-level units with jieba and a user dictionary (the cn-en model's ``jieba_usr_dict``).

    A private ``jieba.Tokenizer`` with jieba's default dictionary is used (FunASR loads the user dictionary
    into jieba's global one; the words are the same)."""

    def __init__(self, user_dict: str):
        try:
            import jieba
        except ImportError as e:  # pragma: no cover - jieba is installed with funasr
            raise ImportError(
                f"this punctuation model cuts words with jieba ({user_dict}); install it: pip install jieba"
            ) from e
        self._jieba = jieba.Tokenizer()
        try:
            self._jieba.load_userdict(user_dict)
        except (OSError, ValueError) as e:  # jieba: "dictionary file ... must be utf-8", unreadable file
            raise ModelDirError(f"{user_dict}: cannot read the jieba user dictionary: {e}") from None

    def __call__(self, text: str) -> List[str]:
        groups: List[Tuple[bool, List[str]]] = []
        for piece in text.split():
            english = bool(_ENGLISH_WORD.match(piece))
            if groups and groups[-1][0] == english:
                groups[-1][1].append(piece)
            else:
                groups.append((english, [piece]))
        units: List[str] = []
        for english, pieces in groups:
            if english:
                units.extend(pieces)
            else:
                units.extend(self._jieba.cut("".join(pieces).strip(), HMM=False))
        return units

    @staticmethod
    def expand(units: Sequence[str], classes: Sequence[int]) -> Tuple[List[str], List[int]]:
        """Spread one class per word to one per character for words starting in U+0E00..U+9FA5: the word's
        class goes on its last character, the others get class 1 (no mark). Returns (units, classes)."""
        out_units: List[str] = []
        out_classes: List[int] = []
        for unit, cls in zip(units, classes):
            if len(unit) > 1 and _SPREAD_FIRST[0] <= unit[0] <= _SPREAD_FIRST[1]:
                out_units.extend(unit)
                out_classes.extend([_NO_MARK_ID] * (len(unit) - 1) + [cls])
            else:
                out_units.append(unit)
                out_classes.append(cls)
        return out_units, out_classes


class UnitVocab:
    """Unit -> embedding id, exactly (no case folding); unknown units map to ``unk_symbol``'s id."""

    def __init__(self, token_list: Sequence[str], unk_symbol: str = "<unk>"):
        self.token_list = list(token_list)
        self._ids: Dict[str, int] = {t: i for i, t in enumerate(self.token_list)}
        if unk_symbol not in self._ids:
            raise ValueError(f"the token list has no unknown symbol {unk_symbol!r}")
        self.unk_id = self._ids[unk_symbol]

    def __len__(self) -> int:
        return len(self.token_list)

    def encode(self, units: Sequence[str]) -> List[int]:
        """Units -> ids, ``<unk>`` for units not in the list."""
        return [self._ids.get(u, self.unk_id) for u in units]
