"""CER scoring: scoring units, Levenshtein alignment, FunASR's ``text.cer`` and an error report.

Scoring unit (:func:`cer_units`): each CJK character (any East Asian wide or
fullwidth character: hanzi, kana, hangul, fullwidth punctuation) is one unit,
each digit is one unit (FunASR's post-processing treats digits like CJK chars),
a run of letters (with apostrophes and combining marks) is one word unit, and
any other character is a unit of its own, except whitespace and invisible
format characters (BOM, zero-width space), which are ignored. Units are case-folded.
Whitespace only separates words, so ``我 爱 北京`` and ``我爱北京`` score the same.

Alignment (:func:`align`): Levenshtein distance with unit costs. Where several
edit paths have the same cost, the backtrace (from the end) prefers a
substitution, then an insertion, then a deletion, like FunASR's ``compute_wer``,
so ins/del/sub counts match it. The total equals ``editdistance.eval``.

Corpus scoring (:func:`score_corpus`) iterates over the *references*, unlike
FunASR: a reference with no hypothesis counts as all deletions and is listed in
``CerReport.missing_hyp``; hypotheses with no reference are listed in
``CerReport.extra_hyp`` and not scored. An empty reference never divides by zero.

``text.cer`` format (:func:`format_text_cer`), as FunASR's ``compute_wer`` writes it::

    utt1(nwords=4,cor=3,ins=0,del=1,sub=0) corr:75.00%,cer:25.00%
    ref:\t我 爱 北 京
    hyp:\t我 爱 北
    <one empty line>
    %WER 25.0 [ 1 / 4, 0 ins, 1 del, 0 sub ]
    %SER 100.0 [ 1 / 1 ]
    Scored 1 sentences, 0 not present in hyp.

The last line counts references that have no hypothesis. Per-utterance
percentages of an empty reference use a denominator of 1 (``cer`` = number of
insertions x 100%; ``corr`` is 100% when the hypothesis is empty too).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from funasr_lite.utils.fileio import atomic_write_text

__all__ = [
    "cer_units",
    "align",
    "AlignedPair",
    "UttScore",
    "CerReport",
    "score_utterance",
    "score_corpus",
    "format_text_cer",
    "write_text_cer",
    "format_error_report",
    "write_error_report",
]

# Alignment operations.
COR, SUB, INS, DEL = "C", "S", "I", "D"
_OP_CODE = {COR: 0, SUB: 1, INS: 2, DEL: 3}
_CODE_OP = {code: op for op, code in _OP_CODE.items()}


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _is_word_char(ch: str) -> bool:
    """Letters (not wide), apostrophes and combining marks form word units."""
    if _is_wide(ch):
        return False
    return ch.isalpha() or ch == "'" or unicodedata.category(ch).startswith("M")


def cer_units(text: str) -> List[str]:
    """Split ``text`` into case-folded scoring units (see the module docstring).

    >>> cer_units("我 爱 Beijing 2024年!")
    ['我', '爱', 'beijing', '2', '0', '2', '4', '年', '!']
    """
    units: List[str] = []
    word: List[str] = []
    for ch in text:
        if _is_word_char(ch):
            word.append(ch)
            continue
        if word:
            units.append("".join(word))
            word = []
        if not ch.isspace() and unicodedata.category(ch) != "Cf":  # Cf: BOM, zero-width chars
            units.append(ch)
    if word:
        units.append("".join(word))
    return [u.casefold() for u in units]


@dataclass(frozen=True)
class AlignedPair:
    """One column of an alignment."""

    op: str  # "C" correct, "S" substitution, "I" insertion, "D" deletion
    ref: str  # the reference unit ("" for an insertion)
    hyp: str  # the hypothesis unit ("" for a deletion)


def align(ref: Sequence[str], hyp: Sequence[str]) -> List[AlignedPair]:
    """The aligned columns, in order, of a minimum-edit alignment of two unit sequences (see the module
    docstring for ties). Units are compared exactly: case-fold them first.

    One numpy row per hypothesis unit: the row's substitution/insertion candidates are computed at once and
    the deletions by a running minimum, so an hour-long utterance (16 k x 16 k units) takes seconds and one
    byte per cell for the traceback, not Python lists of n x m objects."""
    n, m = len(hyp), len(ref)
    ids: Dict[str, int] = {}
    ref_ids = np.fromiter((ids.setdefault(u, len(ids)) for u in ref), dtype=np.int64, count=m)
    hyp_ids = np.fromiter((ids.setdefault(u, len(ids)) for u in hyp), dtype=np.int64, count=n)
    # step[i, j]: the op that reached (hyp[:i], ref[:j]); a match or substitution on a tie wins over an
    # insertion, which wins over a deletion (a deletion only when strictly cheaper)
    step = np.empty((n + 1, m + 1), dtype=np.uint8)
    step[0, 0] = _OP_CODE[COR]
    step[0, 1:] = _OP_CODE[DEL]
    cols = np.arange(m + 1, dtype=np.int64)
    prev = cols.copy()  # cost of hyp[:0] against ref[:j]
    for i in range(1, n + 1):
        match = ref_ids == hyp_ids[i - 1]
        diag, up = prev[:-1], prev[1:]
        cand = np.where(match, diag, np.minimum(diag, up) + 1)
        ops = np.where(match, _OP_CODE[COR], np.where(up < diag, _OP_CODE[INS], _OP_CODE[SUB]))
        # row[j] = min(cand[j], row[j - 1] + 1), row[0] = i: a running minimum of cand[j] - j
        shifted = np.concatenate(([i], cand - cols[1:]))
        row = np.minimum.accumulate(shifted) + cols
        ops = np.where(row[1:] < cand, _OP_CODE[DEL], ops)
        step[i, 0] = _OP_CODE[INS]
        step[i, 1:] = ops
        prev = row
    out: List[AlignedPair] = []
    i, j = n, m
    while i > 0 or j > 0:
        op = _CODE_OP[step[i, j]]
        if op == COR or op == SUB:
            out.append(AlignedPair(op, ref[j - 1], hyp[i - 1]))
            i -= 1
            j -= 1
        elif op == INS:
            out.append(AlignedPair(INS, "", hyp[i - 1]))
            i -= 1
        else:
            out.append(AlignedPair(DEL, ref[j - 1], ""))
            j -= 1
    out.reverse()
    return out


def _pct(num: int, den: int) -> str:
    return format(num / max(den, 1), ".2%")


def _round_pct(num: int, den: int) -> float:
    return round(num * 100 / max(den, 1), 2)


@dataclass
class UttScore:
    """The score of one utterance."""

    key: str  # utterance id
    ref: List[str]  # reference units
    hyp: List[str]  # hypothesis units (empty when missing)
    alignment: List[AlignedPair]  # aligned columns
    missing_hyp: bool = False  # True when there was no hypothesis for this key
    cor: int = 0  # correct units
    sub: int = 0  # substitutions
    ins: int = 0  # insertions
    dels: int = 0  # deletions

    @property
    def nwords(self) -> int:
        return len(self.ref)

    @property
    def wrong(self) -> int:
        return self.sub + self.ins + self.dels

    @property
    def cer(self) -> float:
        """wrong / nwords (denominator 1 for an empty reference)."""
        return self.wrong / max(self.nwords, 1)

    def detail_line(self) -> str:
        """The ``key(nwords=..,cor=..,ins=..,del=..,sub=..) corr:..%,cer:..%`` line."""
        if self.nwords == 0:
            corr = format(1.0 if self.wrong == 0 else 0.0, ".2%")
        else:
            corr = _pct(self.cor, self.nwords)
        return (
            f"{self.key}(nwords={self.nwords},cor={self.cor},ins={self.ins},del={self.dels},"
            f"sub={self.sub}) corr:{corr},cer:{_pct(self.wrong, self.nwords)}"
        )


def score_utterance(key: str, ref_text: str, hyp_text: Optional[str]) -> UttScore:
    """Score one utterance; ``hyp_text=None`` means the hypothesis is missing."""
    ref = cer_units(ref_text)
    hyp = [] if hyp_text is None else cer_units(hyp_text)
    ali = align(ref, hyp)
    n = Counter(p.op for p in ali)
    return UttScore(key, ref, hyp, ali, missing_hyp=hyp_text is None, cor=n[COR], sub=n[SUB], ins=n[INS], dels=n[DEL])


@dataclass
class CerReport:
    """Scores of a corpus, in reference order."""

    utts: List[UttScore] = field(default_factory=list)  # one per reference key, reference order
    missing_hyp: List[str] = field(default_factory=list)  # reference keys with no hypothesis
    extra_hyp: List[str] = field(default_factory=list)  # hypothesis keys with no reference (not scored)

    # corpus totals of the per-utterance counts
    @property
    def nwords(self) -> int:
        return sum(u.nwords for u in self.utts)

    @property
    def cor(self) -> int:
        return sum(u.cor for u in self.utts)

    @property
    def sub(self) -> int:
        return sum(u.sub for u in self.utts)

    @property
    def ins(self) -> int:
        return sum(u.ins for u in self.utts)

    @property
    def dels(self) -> int:
        return sum(u.dels for u in self.utts)

    @property
    def wrong(self) -> int:
        return sum(u.wrong for u in self.utts)

    @property
    def num_sentences(self) -> int:
        """Number of scored utterances (= number of references)."""
        return len(self.utts)

    @property
    def wrong_sentences(self) -> int:
        return sum(1 for u in self.utts if u.wrong > 0)

    @property
    def cer(self) -> float:
        """Corpus CER as a fraction: wrong / nwords (denominator 1 when there are no units)."""
        return self.wrong / max(self.nwords, 1)

    def summary_line(self) -> str:
        """``%WER <err> [ <wrong> / <nwords>, <I> ins, <D> del, <S> sub ]`` (FunASR format)."""
        return (
            f"%WER {_round_pct(self.wrong, self.nwords)} [ {self.wrong} / {self.nwords}, "
            f"{self.ins} ins, {self.dels} del, {self.sub} sub ]"
        )

    def ser_line(self) -> str:
        """``%SER <err> [ <wrong sentences> / <sentences> ]``."""
        return (
            f"%SER {_round_pct(self.wrong_sentences, self.num_sentences)} "
            f"[ {self.wrong_sentences} / {self.num_sentences} ]"
        )

    def scored_line(self) -> str:
        """``Scored <N> sentences, <M> not present in hyp.`` (M = references without hypothesis)."""
        return f"Scored {self.num_sentences} sentences, {len(self.missing_hyp)} not present in hyp."


def score_corpus(refs: Dict[str, str], hyps: Dict[str, str]) -> CerReport:
    """Score every reference (``key -> text``, in its order) against its hypothesis (``key -> text``); a missing
    hypothesis counts as all deletions."""
    report = CerReport()
    for key, ref_text in refs.items():
        hyp_text = hyps.get(key)
        if hyp_text is None:
            report.missing_hyp.append(key)
        report.utts.append(score_utterance(key, ref_text, hyp_text))
    report.extra_hyp = [k for k in hyps if k not in refs]
    return report


def format_text_cer(report: CerReport) -> str:
    """The whole ``text.cer`` file content (see the module docstring)."""
    lines: List[str] = []
    for u in report.utts:
        lines.append(u.detail_line())
        lines.append("ref:\t" + " ".join(u.ref))
        lines.append("hyp:\t" + " ".join(u.hyp))
    lines += ["", report.summary_line(), report.ser_line(), report.scored_line()]
    return "\n".join(lines) + "\n"


def write_text_cer(path: str, report: CerReport) -> None:
    """Write ``text.cer`` atomically."""
    atomic_write_text(path, format_text_cer(report))


# ---------------------------------------------------------------------------
# Aligned error report (icefall errs-* / sclite style)
# ---------------------------------------------------------------------------


def _width(s: str) -> int:
    """Display width in a monospace terminal (wide chars count 2, combining marks 0)."""
    w = 0
    for ch in s:
        if unicodedata.combining(ch):
            continue
        w += 2 if _is_wide(ch) else 1
    return w


def _pad(s: str, width: int) -> str:
    return s + " " * (width - _width(s))


def _aligned_rows(ali: Sequence[AlignedPair]) -> Tuple[str, str, str]:
    """REF, HYP and OPS rows with one column per aligned pair (``*`` marks a gap)."""
    refs, hyps, ops = [], [], []
    for p in ali:
        r = p.ref if p.op != INS else "*"
        h = p.hyp if p.op != DEL else "*"
        w = max(_width(r), _width(h), 1)
        refs.append(_pad(r, w))
        hyps.append(_pad(h, w))
        ops.append(_pad("" if p.op == COR else p.op, w))
    return " ".join(refs).rstrip(), " ".join(hyps).rstrip(), " ".join(ops).rstrip()


def format_error_report(report: CerReport, max_confusions: int = 50) -> str:
    """A human-readable error analysis.

    Sections: the summary lines; keys with no hypothesis / no reference; every
    utterance with errors, worst first (most errors, then highest CER), as
    aligned REF/HYP/OPS rows marking S, I and D; then the most frequent
    substitutions (``ref -> hyp``), deletions and insertions with their counts, at most
    ``max_confusions`` entries per table.
    """
    out: List[str] = [
        "CER error report (units: CJK chars and digits, English words; case-folded)",
        report.summary_line(),
        report.ser_line(),
        report.scored_line(),
        f"Correct units: {report.cor} / {report.nwords}",
    ]
    if report.missing_hyp:
        out.append(f"No hypothesis (counted as deletions), {len(report.missing_hyp)}: " + " ".join(report.missing_hyp))
    if report.extra_hyp:
        out.append(f"Hypothesis without reference (not scored), {len(report.extra_hyp)}: " + " ".join(report.extra_hyp))

    order = {u.key: i for i, u in enumerate(report.utts)}
    bad = sorted((u for u in report.utts if u.wrong > 0), key=lambda u: (-u.wrong, -u.cer, order[u.key]))
    out += ["", f"UTTERANCES WITH ERRORS, worst first: {len(bad)} of {report.num_sentences}"]
    for u in bad:
        note = "  (no hypothesis)" if u.missing_hyp else ""
        out.append("")
        out.append(
            f"{u.key}: {u.wrong} errors / {u.nwords} ref units, cer {_pct(u.wrong, u.nwords)}: "
            f"{u.sub} sub, {u.ins} ins, {u.dels} del{note}"
        )
        ref_row, hyp_row, ops_row = _aligned_rows(u.alignment)
        out += ["  REF: " + ref_row, "  HYP: " + hyp_row, "  OPS: " + ops_row]

    columns = [p for u in report.utts for p in u.alignment]
    subs = Counter((p.ref, p.hyp) for p in columns if p.op == SUB)
    dels = Counter(p.ref for p in columns if p.op == DEL)
    inss = Counter(p.hyp for p in columns if p.op == INS)

    def table(title: str, counter: Counter, fmt) -> None:
        out.append("")
        out.append(f"{title}: {sum(counter.values())} in total, {len(counter)} distinct")
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
        for item, count in ranked[:max_confusions]:
            out.append(f"{count:6d}  {fmt(item)}")
        if len(ranked) > max_confusions:
            out.append(f"   ... {len(ranked) - max_confusions} more")

    table("SUBSTITUTIONS (ref -> hyp), most frequent first", subs, lambda rh: f"{rh[0]} -> {rh[1]}")
    table("DELETIONS (ref), most frequent first", dels, str)
    table("INSERTIONS (hyp), most frequent first", inss, str)
    return "\n".join(out) + "\n"


def write_error_report(path: str, report: CerReport, max_confusions: int = 50) -> None:
    """Write :func:`format_error_report` to ``path`` atomically."""
    atomic_write_text(path, format_error_report(report, max_confusions))
