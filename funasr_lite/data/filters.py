"""Pre-flight scan of training data: which utterances are usable, and a report of the rest.

Every utterance is matched by key (``wav.scp`` + ``text``), its text tokenised and checked
against the filters of a :class:`~funasr_lite.data.options.DatasetConf` by :func:`check_utterance`;
unusable ones are counted per reason (:data:`REASONS`) and named in a :class:`ScanReport`.
Above ``max_bad_ratio`` dropped, the scan raises :class:`~funasr_lite.errors.DataDirError`
with the report. :func:`scan_training_data` scans a data dir (small datasets) through
:func:`scan_data_dir`, which ``make_shards`` shares; :func:`funasr_lite.data.shards.scan_shards`
scans shards with the same checks. Token ids carry
no ``</s>``: the model appends it (FunASR's Paraformer does when ``predictor_bias == 1``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import soundfile as sf
import torch

from funasr_lite.data.audio import MIN_FRAME_MS, load_audio
from funasr_lite.data.datadir import DataDir, load_data_dir, read_scp
from funasr_lite.data.options import DatasetConf
from funasr_lite.errors import AudioError, ConfigError, DataDirError

__all__ = [
    "REASONS",
    "MAX_LISTED_BAD",
    "Utterance",
    "BadUtterance",
    "ScanReport",
    "header_ms",
    "check_utterance",
    "check_max_bad_ratio",
    "scan_data_dir",
    "scan_training_data",
]

logger = logging.getLogger(__name__)

MAX_LISTED_BAD = 1000  # dropped utterances a scan report names (its counts cover all of them)

# Why an utterance is dropped, in the order the checks run.
REASONS = {
    "data_dir": "bad wav.scp/text entry (no text, duplicate key, missing or empty audio file)",
    "empty_text": "empty transcription",
    "audio": "unreadable or corrupt audio",
    "too_short": "shorter than one 25 ms frame or speech_length_min",
    "too_long": "longer than speech_length_max",
    "exceeds_batch_bins": "longer than one batch can hold (batch_bins)",
    "no_tokens": "transcription gives no tokens (only punctuation?)",
    "too_many_tokens": "more tokens than token_length_max",
    "too_many_unk": "too many <unk> tokens (max_unk_ratio)",
}


@dataclass
class Utterance:
    """One usable training utterance."""

    key: str  # utterance id (wav.scp/text key)
    path: str  # audio file
    token_ids: List[int]  # tokenised transcription, no </s>
    duration_ms: float  # audio duration from the file header

    def load(self, sample_rate: int) -> "Optional[Tuple[str, torch.Tensor, torch.Tensor]]":
        """The training item ``(key, wav (S,), token_ids (L,))``, or None (logged) when the audio no longer
        loads (changed or corrupt past its header)."""
        try:
            wav = load_audio(self.path, sample_rate)
        except AudioError as exc:
            logger.warning("skipping utterance %s: %s", self.key, exc)
            return None
        return self.key, wav, torch.tensor(self.token_ids, dtype=torch.long)


@dataclass
class BadUtterance:
    """One dropped utterance and why."""

    key: str  # utterance id
    reason: str  # a key of REASONS
    detail: str  # the problem in words, naming the file (and line)

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}: {self.detail}"


@dataclass
class ScanReport:
    """What a pre-flight scan found: counts per reason and the bad files."""

    source: str  # data dir or data.list that was scanned
    total: int = 0  # utterances seen (wav.scp keys)
    kept: int = 0  # utterances that passed every check
    kept_ms: float = 0.0  # total audio of the kept utterances, ms
    counts: Dict[str, int] = field(default_factory=dict)  # reason -> utterances dropped
    bad: List[BadUtterance] = field(default_factory=list)  # dropped ones (at most MAX_LISTED_BAD)
    notes: List[str] = field(default_factory=list)  # problems not tied to an utterance (text-only keys)

    @property
    def dropped(self) -> int:
        """Number of utterances dropped, all reasons."""
        return sum(self.counts.values())

    @property
    def bad_ratio(self) -> float:
        """Dropped fraction of all utterances (0 for an empty scan)."""
        return self.dropped / self.total if self.total else 0.0

    def add(self, result: Any) -> None:
        """Count one scanned utterance: a :class:`BadUtterance` (listed while fewer than MAX_LISTED_BAD are),
        or a kept one (anything with a ``duration_ms``, e.g. an :class:`Utterance`)."""
        self.total += 1
        if not isinstance(result, BadUtterance):
            self.kept += 1
            self.kept_ms += result.duration_ms
            return
        self.counts[result.reason] = self.counts.get(result.reason, 0) + 1
        if len(self.bad) < MAX_LISTED_BAD:
            self.bad.append(result)

    def summary(self) -> str:
        """One line: kept/total, hours, and the count per reason."""
        why = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items(), key=lambda x: -x[1]))
        return (
            f"{self.source}: kept {self.kept} of {self.total} utterances "
            f"({self.kept_ms / 3.6e6:.2f} h); dropped {self.dropped}"
            + (f" ({self.bad_ratio:.1%}: {why})" if self.dropped else "")
        )

    def format(self, max_lines: Optional[int] = None) -> str:
        """The summary, what each reason means, then one line per bad utterance."""
        lines = [self.summary()]
        lines += [f"  {r}: {REASONS.get(r, r)}" for r in self.counts]
        lines += [f"  note: {n}" for n in self.notes]
        listed = self.bad if max_lines is None else self.bad[:max_lines]
        lines += [f"  {b}" for b in listed]
        more = self.dropped - len(listed)
        if more > 0:
            lines.append(f"  ... and {more} more")
        return "\n".join(lines)

    def log(self, max_lines: int = 20) -> None:
        """Log the summary (info), then notes and the first ``max_lines`` bad utterances (warning)."""
        logger.info("%s", self.summary())
        for line in [f"note: {n}" for n in self.notes[:max_lines]] + [f"dropped {b}" for b in self.bad[:max_lines]]:
            logger.warning("%s", line)
        if self.dropped > max_lines:
            logger.warning("... %d more dropped utterances (see the full report)", self.dropped - max_lines)

    def raise_if_too_bad(self, max_bad_ratio: float) -> None:
        """DataDirError with the report when more than ``max_bad_ratio`` is dropped, or nothing is kept."""
        if self.total and self.kept and self.bad_ratio <= max_bad_ratio:
            return
        if not self.total:
            raise DataDirError(f"{self.source}: no utterances to train on")
        head = (
            f"{self.source}: {self.dropped} of {self.total} utterances ({self.bad_ratio:.1%}) "
            f"are unusable, more than max_bad_ratio={max_bad_ratio:g}; fix the data or the "
            "dataset_conf filters (speech_length_min/max, token_length_max, max_unk_ratio, batch_bins), "
            "or raise max_bad_ratio to skip them"
        )
        raise DataDirError(head + "\n" + self.format(max_lines=50))


def header_ms(path: str) -> float:
    """Duration from the audio header in ms; AudioError naming the file if unreadable."""
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: cannot read audio header: {exc}") from exc
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioError(f"{path}: audio has no samples (header: {info.frames} frames at {info.samplerate} Hz)")
    return 1000.0 * info.frames / info.samplerate


def check_utterance(
    key: str,
    path: str,
    text: str,
    tokenizer: Any,
    conf: DatasetConf,
    *,
    lfr_frame_ms: float = 60.0,
    sample_rate: int = 16000,
    decode_audio: bool = False,
    duration_ms: Optional[float] = None,
    where: str,
) -> "Utterance | BadUtterance":
    """Run every filter of ``conf`` on one utterance: the usable :class:`Utterance`, or why it is dropped.

    Args:
        key, path, text: the utterance (audio path already resolved).
        tokenizer: has ``encode(text) -> List[int]``; with an int ``unk_id`` the <unk> share is checked too.
        lfr_frame_ms: milliseconds per LFR frame (small mode's batch_bins unit).
        sample_rate: the rate audio is decoded at (``decode_audio``).
        decode_audio: find the duration by decoding the file (finds corrupt data and NaN; slow)
            instead of reading its header.
        duration_ms: known duration (e.g. from a shard's utt2dur); read from the file when None.
        where: ``file:line`` prefix for messages.
    """
    if not text.strip():
        return BadUtterance(key, "empty_text", f"{where}: empty transcription")
    if duration_ms is None:
        try:
            if decode_audio:
                duration_ms = 1000.0 * load_audio(path, sample_rate).numel() / sample_rate
            else:
                duration_ms = header_ms(path)
        except AudioError as exc:
            return BadUtterance(key, "audio", f"{where}: {exc}")
    floor = max(MIN_FRAME_MS, conf.min_speech_ms)
    if duration_ms < floor:
        return BadUtterance(key, "too_short", f"{where}: {path}: {duration_ms:.0f} ms < {floor:g} ms")
    if duration_ms > conf.max_speech_ms:
        return BadUtterance(
            key, "too_long", f"{where}: {path}: {duration_ms:.0f} ms > speech_length_max={conf.max_speech_ms:g}"
        )
    units = conf.batch_units(duration_ms, lfr_frame_ms)
    if units > conf.batch_bins:
        return BadUtterance(
            key,
            "exceeds_batch_bins",
            f"{where}: {path}: {duration_ms:.0f} ms = {units} units > batch_bins={conf.batch_bins}",
        )
    ids = list(tokenizer.encode(text))
    if not ids:
        return BadUtterance(key, "no_tokens", f"{where}: no tokens in {text!r}")
    if len(ids) > conf.max_tokens:
        return BadUtterance(key, "too_many_tokens", f"{where}: {len(ids)} tokens > token_length_max={conf.max_tokens}")
    unk = getattr(tokenizer, "unk_id", None)
    if isinstance(unk, int):
        n_unk = sum(1 for i in ids if i == unk)
        if n_unk / len(ids) > conf.max_unk_ratio:
            return BadUtterance(key, "too_many_unk", f"{where}: {n_unk} of {len(ids)} tokens are <unk> in {text!r}")
    return Utterance(key, path, ids, float(duration_ms))


def _empty_text_keys(dd: Any, failed: Mapping[str, List[Any]]) -> set:
    """Failed keys whose only problem is an empty transcription line in ``text``."""
    text_file = os.path.join(dd.path, "text")
    suspects = [k for k, probs in failed.items() if k in dd.text_lines and all(p.file == text_file for p in probs)]
    if not suspects:
        return set()
    table = read_scp(text_file, what="text", allow_empty_value=True)
    return {k for k in suspects if table.entries.get(k) == ""}


def check_max_bad_ratio(max_bad_ratio: float) -> None:
    """ConfigError unless ``0 <= max_bad_ratio <= 1``."""
    if not 0.0 <= max_bad_ratio <= 1.0:
        raise ConfigError(f"max_bad_ratio must be in [0, 1], got {max_bad_ratio}")


def scan_data_dir(
    data_dir: str, check: Callable[[str, str, str, DataDir], Any], *, empty_text: bool = True
) -> "Tuple[List[Any], ScanReport]":
    """Load a training data dir and sort its utterances; returns what was kept (wav.scp order) and the report.

    A key with an error in the data dir is dropped as ``data_dir`` (``empty_text`` for an empty transcription
    when ``empty_text`` is set); every other one goes through ``check(key, audio path, text, data dir)``,
    which returns a :class:`BadUtterance` or what to keep (anything with a ``duration_ms``).
    """
    dd = load_data_dir(data_dir, mode="train", check_audio=True)
    report = ScanReport(source=os.fspath(data_dir), notes=[str(p) for p in dd.file_errors()])
    failed = dd.failed_keys()
    empty = _empty_text_keys(dd, failed) if empty_text else set()
    kept = []
    for key, path in dd.wavs.items():
        if key in failed:
            detail = "; ".join(str(p) for p in failed[key])
            result = BadUtterance(key, "empty_text" if key in empty else "data_dir", detail)
        else:
            result = check(key, path, dd.texts[key], dd)  # type: ignore[index]
        report.add(result)
        if not isinstance(result, BadUtterance):
            kept.append(result)
    return kept, report


def scan_training_data(
    data_dir: str,
    tokenizer: Any,
    conf: DatasetConf,
    *,
    lfr_frame_ms: float = 60.0,
    sample_rate: int = 16000,
    max_bad_ratio: float = 0.1,
    decode_audio: bool = False,
) -> "Tuple[List[Utterance], ScanReport]":
    """Pre-flight check of a training data dir (``wav.scp`` + ``text``, matched by key).

    Every wav.scp key is either returned as an :class:`Utterance` (wav.scp order)
    or counted in the report under one of :data:`REASONS` (at most ``MAX_LISTED_BAD``
    listed). The report is logged. ``lfr_frame_ms``, ``sample_rate`` and ``decode_audio``:
    see :func:`check_utterance`.

    Raises:
        ConfigError: ``max_bad_ratio`` is not in [0, 1].
        DataDirError: the dir or its files are unreadable, or more than
            ``max_bad_ratio`` of the utterances are dropped (message = report).
    """
    check_max_bad_ratio(max_bad_ratio)
    opts: Dict[str, Any] = dict(lfr_frame_ms=lfr_frame_ms, sample_rate=sample_rate, decode_audio=decode_audio)

    def check(key: str, path: str, text: str, dd: DataDir) -> "Utterance | BadUtterance":
        where = f"{os.path.join(dd.path, 'text')}:{dd.text_lines.get(key, '?')}"
        return check_utterance(key, path, text, tokenizer, conf, where=where, **opts)

    utts, report = scan_data_dir(data_dir, check)
    report.log()
    report.raise_if_too_bad(max_bad_ratio)
    return utts, report
