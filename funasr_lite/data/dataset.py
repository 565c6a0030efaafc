"""Training data: pre-flight scan, length-bucketed batches and the DataLoader.

Two dataset types, as in FunASR's ModelScope finetuning (recipes spec 5.2):

* ``small``: the filtered utterance list lives in memory; :class:`UtteranceDataset`
  gives ``(key, waveform, token_ids)`` and :class:`BucketBatchSampler` fills
  length-sorted batches while ``batch_size x longest <= batch_bins``, counted in
  LFR frames (``ceil(ms / 60)``), like FunASR's ``LengthBatchSampler`` (which
  may overshoot by one utterance; we never do).
* ``large``: shards from ``tools/make_shards.py`` streamed by
  :class:`funasr_lite.data.shards.ShardStream`; ``batch_bins`` is padded milliseconds.

Both match ``wav.scp`` and ``text`` by key, tokenise the text and drop unusable
utterances (:data:`REASONS`), counted per reason and named in a
:class:`ScanReport`; above ``max_bad_ratio`` dropped, the scan raises
:class:`~funasr_lite.errors.DataDirError` with the report. Features (fbank + LFR
+ CMVN, dithered when training) are computed by :class:`Collator` inside the
DataLoader workers. Token ids carry no ``</s>``: the model appends it
(FunASR's Paraformer does when ``predictor_bias == 1``). The trainer calls
:func:`build_dataloader` once per data set and :func:`set_epoch` before each epoch.
"""

from __future__ import annotations

import logging
import os
import random
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from funasr_lite.data.audio import MIN_FRAME_MS, load_audio
from funasr_lite.data.datadir import load_data_dir, read_scp
from funasr_lite.data.options import DatasetConf
from funasr_lite.errors import AudioError, ConfigError, DataDirError
from funasr_lite.utils.seeding import epoch_seed

__all__ = [
    "REASONS", "Utterance", "BadUtterance", "ScanReport", "check_utterance", "check_max_bad_ratio",
    "scan_training_data", "UtteranceDataset", "BucketBatchSampler", "Collator", "build_frontend",
    "build_dataloader", "set_epoch",
]

logger = logging.getLogger(__name__)

# Why an utterance is dropped, in the order the checks run.
REASONS = OrderedDict([
    ("data_dir", "bad wav.scp/text entry (no text, duplicate key, missing or empty audio file)"),
    ("empty_text", "empty transcription"),
    ("audio", "unreadable or corrupt audio"),
    ("too_short", "shorter than one 25 ms frame or speech_length_min"),
    ("too_long", "longer than speech_length_max"),
    ("exceeds_batch_bins", "longer than one batch can hold (batch_bins)"),
    ("no_tokens", "transcription gives no tokens (only punctuation?)"),
    ("too_many_tokens", "more tokens than token_length_max"),
    ("too_many_unk", "too many <unk> tokens (max_unk_ratio)"),
])


@dataclass
class Utterance:
    """One usable training utterance."""

    key: str  # utterance id (wav.scp/text key)
    path: str  # audio file
    token_ids: List[int]  # tokenised transcription, no </s>
    duration_ms: float  # audio duration from the file header


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
    bad: List[BadUtterance] = field(default_factory=list)  # dropped ones (at most max_listed_bad)
    notes: List[str] = field(default_factory=list)  # problems not tied to an utterance (text-only keys)

    @property
    def dropped(self) -> int:
        """Number of utterances dropped, all reasons."""
        return sum(self.counts.values())

    @property
    def bad_ratio(self) -> float:
        """Dropped fraction of all utterances (0 for an empty scan)."""
        return self.dropped / self.total if self.total else 0.0

    def add_bad(self, bad: BadUtterance, max_listed: int) -> None:
        """Count a dropped utterance; keep it in ``bad`` while fewer than ``max_listed`` are."""
        self.counts[bad.reason] = self.counts.get(bad.reason, 0) + 1
        if len(self.bad) < max_listed:
            self.bad.append(bad)

    def summary(self) -> str:
        """One line: kept/total, hours, and the count per reason."""
        why = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items(), key=lambda x: -x[1]))
        return (f"{self.source}: kept {self.kept} of {self.total} utterances "
                f"({self.kept_ms / 3.6e6:.2f} h); dropped {self.dropped}"
                + (f" ({self.bad_ratio:.1%}: {why})" if self.dropped else ""))

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
        head = (f"{self.source}: {self.dropped} of {self.total} utterances ({self.bad_ratio:.1%}) "
                f"are unusable, more than max_bad_ratio={max_bad_ratio:g}; fix the data or the "
                "dataset_conf filters (speech_length_min/max, token_length_max, max_unk_ratio, batch_bins), "
                "or raise max_bad_ratio to skip them")
        raise DataDirError(head + "\n" + self.format(max_lines=50))


def unk_id_of(tokenizer: Any) -> Optional[int]:
    """The tokenizer's ``unk_id`` (see :class:`funasr_lite.data.tokenizer.Tokenizer`), or None."""
    value = getattr(tokenizer, "unk_id", None)
    return value if isinstance(value, int) else None


def header_ms(path: str) -> float:
    """Duration from the audio header in ms; AudioError naming the file if unreadable."""
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: cannot read audio header: {exc}") from exc
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioError(f"{path}: audio has no samples (header: {info.frames} frames "
                         f"at {info.samplerate} Hz)")
    return 1000.0 * info.frames / info.samplerate


def check_utterance(key: str, path: str, text: str, tokenizer: Any, conf: DatasetConf, *,
                    lfr_frame_ms: float = 60.0, sample_rate: int = 16000, decode_audio: bool = False,
                    duration_ms: Optional[float] = None, where: str = "",
                    unk_id: Optional[int] = None) -> "Tuple[Optional[Utterance], Optional[BadUtterance]]":
    """Run every filter of ``conf`` on one utterance; exactly one of the pair is None.

    Args:
        key, path, text: the utterance (audio path already resolved).
        lfr_frame_ms: milliseconds per LFR frame (small mode's batch_bins unit).
        sample_rate: the rate audio is decoded at (``decode_audio``).
        decode_audio: find the duration by decoding the file (finds corrupt data and NaN; slow)
            instead of reading its header.
        duration_ms: known duration (e.g. from a shard's utt2dur); read from the file when None.
        where: ``file:line`` prefix for messages.
        unk_id: the ``<unk>`` id (looked up from the tokenizer when None).
    """
    pre = f"{where}: " if where else ""
    if not text.strip():
        return None, BadUtterance(key, "empty_text", f"{pre}empty transcription")
    if duration_ms is None:
        try:
            if decode_audio:
                duration_ms = 1000.0 * load_audio(path, sample_rate).numel() / sample_rate
            else:
                duration_ms = header_ms(path)
        except AudioError as exc:
            return None, BadUtterance(key, "audio", f"{pre}{exc}")
    floor = max(MIN_FRAME_MS, conf.min_speech_ms)
    if duration_ms < floor:
        return None, BadUtterance(key, "too_short", f"{pre}{path}: {duration_ms:.0f} ms < {floor:g} ms")
    if duration_ms > conf.max_speech_ms:
        return None, BadUtterance(key, "too_long",
                                  f"{pre}{path}: {duration_ms:.0f} ms > speech_length_max={conf.max_speech_ms:g}")
    units = conf.batch_units(duration_ms, lfr_frame_ms)
    if units > conf.batch_bins:
        return None, BadUtterance(key, "exceeds_batch_bins",
                                  f"{pre}{path}: {duration_ms:.0f} ms = {units} units > batch_bins={conf.batch_bins}")
    ids = list(tokenizer.encode(text))
    if not ids:
        return None, BadUtterance(key, "no_tokens", f"{pre}no tokens in {text!r}")
    if len(ids) > conf.max_tokens:
        return None, BadUtterance(key, "too_many_tokens",
                                  f"{pre}{len(ids)} tokens > token_length_max={conf.max_tokens}")
    unk = unk_id_of(tokenizer) if unk_id is None else unk_id
    if unk is not None:
        n_unk = sum(1 for i in ids if i == unk)
        if n_unk / len(ids) > conf.max_unk_ratio:
            return None, BadUtterance(key, "too_many_unk",
                                      f"{pre}{n_unk} of {len(ids)} tokens are <unk> in {text!r}")
    return Utterance(key, path, ids, float(duration_ms)), None


def _empty_text_keys(dd: Any, failed: Mapping[str, List[Any]]) -> set:
    """Failed keys whose only problem is an empty transcription line in ``text``."""
    text_file = os.path.join(dd.path, "text")
    suspects = [k for k, probs in failed.items()
                if k in dd.text_lines and all(p.file == text_file for p in probs)]
    if not suspects:
        return set()
    table = read_scp(text_file, what="text", allow_empty_value=True)
    return {k for k in suspects if table.entries.get(k) == ""}


def check_max_bad_ratio(max_bad_ratio: float) -> None:
    """ConfigError unless ``0 <= max_bad_ratio <= 1``."""
    if not 0.0 <= max_bad_ratio <= 1.0:
        raise ConfigError(f"max_bad_ratio must be in [0, 1], got {max_bad_ratio}")


def scan_training_data(data_dir: str, tokenizer: Any, conf: DatasetConf, *, lfr_frame_ms: float = 60.0,
                       sample_rate: int = 16000, max_bad_ratio: float = 0.1, decode_audio: bool = False,
                       max_listed_bad: int = 1000) -> "Tuple[List[Utterance], ScanReport]":
    """Pre-flight check of a training data dir (``wav.scp`` + ``text``, matched by key).

    Every wav.scp key is either returned as an :class:`Utterance` (wav.scp order)
    or counted in the report under one of :data:`REASONS` (at most ``max_listed_bad``
    listed). The report is logged. ``lfr_frame_ms``, ``sample_rate`` and ``decode_audio``:
    see :func:`check_utterance`.

    Raises:
        ConfigError: ``max_bad_ratio`` is not in [0, 1].
        DataDirError: the dir or its files are unreadable, or more than
            ``max_bad_ratio`` of the utterances are dropped (message = report).
    """
    check_max_bad_ratio(max_bad_ratio)
    dd = load_data_dir(data_dir, mode="train", check_audio=True)
    report = ScanReport(source=os.fspath(data_dir))
    failed = dd.failed_keys()
    report.notes = [str(p) for p in dd.file_errors()]
    unk = unk_id_of(tokenizer)
    utts: List[Utterance] = []
    texts = dd.texts or {}
    empty = _empty_text_keys(dd, failed)
    for key, path in dd.wavs.items():
        report.total += 1
        if key in failed:
            detail = "; ".join(str(p) for p in failed[key])
            report.add_bad(BadUtterance(key, "empty_text" if key in empty else "data_dir", detail),
                           max_listed_bad)
            continue
        where = f"{os.path.join(dd.path, 'text')}:{dd.text_lines.get(key, '?')}"
        utt, bad = check_utterance(key, path, texts.get(key, ""), tokenizer, conf, lfr_frame_ms=lfr_frame_ms,
                                   sample_rate=sample_rate, decode_audio=decode_audio, where=where, unk_id=unk)
        if bad is not None:
            report.add_bad(bad, max_listed_bad)
        elif utt is not None:
            utts.append(utt)
            report.kept += 1
            report.kept_ms += utt.duration_ms
    report.log()
    report.raise_if_too_bad(max_bad_ratio)
    return utts, report


Item = Tuple[str, torch.Tensor, torch.Tensor]


class UtteranceDataset(Dataset):
    """Map-style dataset over scanned utterances: item ``i`` is ``(key, wav (S,), token_ids (L,))``.

    An utterance whose audio fails to load at training time (changed or corrupt
    past its header) gives None, which :class:`Collator` drops with a warning.
    """

    def __init__(self, utts: Sequence[Utterance], sample_rate: int = 16000) -> None:
        self.utts = list(utts)
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, index: int) -> Optional[Item]:
        u = self.utts[index]
        try:
            wav = load_audio(u.path, self.sample_rate)
        except AudioError as exc:
            logger.warning("skipping utterance %s: %s", u.key, exc)
            return None
        return u.key, wav, torch.tensor(u.token_ids, dtype=torch.long)


class BucketBatchSampler(Sampler[List[int]]):
    """Length-sorted buckets with ``len(batch) * longest <= batch_bins``; batch order shuffled per epoch.

    Sorted by (length, index) and cut greedily (a lone over-long utterance is its own
    batch); indices longest first. With ``shuffle`` the fixed batches are permuted by
    ``Random(seed + epoch)``, identically on every rank; with ``pad`` the list is padded
    by repeating its first batches to a multiple of ``world_size``, and rank ``r`` takes
    batches ``r, r + world_size, ...``, so every rank gets ``len(self)`` batches.
    """

    def __init__(self, lengths: Sequence[int], batch_bins: int, *, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1, pad: bool = True, epoch: int = 0) -> None:
        if batch_bins <= 0:
            raise ValueError(f"batch_bins must be > 0, got {batch_bins}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
        if not lengths:
            raise ValueError("no utterances to batch")
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        self.batches: List[List[int]] = []
        cur: List[int] = []
        for i in order:
            if cur and (len(cur) + 1) * lengths[i] > batch_bins:
                self.batches.append(cur[::-1])
                cur = []
            cur.append(i)
        self.batches.append(cur[::-1])
        self.shuffle, self.seed, self.rank, self.world_size, self.pad = shuffle, seed, rank, world_size, pad
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the batch order of ``epoch``."""
        self.epoch = epoch

    def _rank_batches(self) -> List[List[int]]:
        batches = list(self.batches)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(batches)
        if self.pad and self.world_size > 1:
            n = -(-len(batches) // self.world_size) * self.world_size
            batches += [batches[i % len(batches)] for i in range(n - len(batches))]
        return batches[self.rank::self.world_size]

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._rank_batches())

    def __len__(self) -> int:
        n = len(self.batches)
        return -(-n // self.world_size) if self.pad else len(range(self.rank, n, self.world_size))


class Collator:
    """Pads a list of ``(key, wav, ids)`` items and extracts features.

    Returns a dict:
        ``keys``: List[str] (B); ``speech``: (B, T, D) float32 features from the
        frontend (D = 80 x lfr_m = 560), or (B, S) padded waveforms when
        ``frontend`` is None; ``speech_lengths``: (B,) int64;
        ``text``: (B, L) int64 token ids padded with -1; ``text_lengths``: (B,) int64.
    None items (audio that failed to load) are dropped; if none is left B is 0.
    """

    def __init__(self, frontend: Optional[torch.nn.Module] = None) -> None:
        self.frontend = frontend

    @staticmethod
    def pad(seqs: Sequence[torch.Tensor], value: float, dtype: torch.dtype) -> "Tuple[torch.Tensor, torch.Tensor]":
        """1-D tensors -> (B, max_len) padded with ``value``, and their lengths (B,) int64."""
        lens = torch.tensor([x.numel() for x in seqs], dtype=torch.long)
        out = torch.full((len(seqs), int(lens.max()) if seqs else 0), value, dtype=dtype)
        for b, x in enumerate(seqs):
            out[b, :x.numel()] = x
        return out, lens

    def __call__(self, items: Sequence[Optional[Item]]) -> Dict[str, Any]:
        items = [it for it in items if it is not None]
        keys = [it[0] for it in items]
        wavs, wav_lens = self.pad([it[1] for it in items], 0.0, torch.float32)
        text, text_lens = self.pad([it[2] for it in items], -1, torch.long)
        if self.frontend is None:
            speech, speech_lens = wavs, wav_lens
        elif not items:
            dim = int(getattr(self.frontend, "output_size", lambda: 0)())
            speech, speech_lens = torch.zeros(0, 0, dim), wav_lens
        else:
            with torch.no_grad():
                speech, speech_lens = self.frontend(wavs, wav_lens)
            speech_lens = torch.as_tensor(speech_lens, dtype=torch.long)
        return {"keys": keys, "speech": speech, "speech_lengths": speech_lens,
                "text": text, "text_lengths": text_lens}


def build_frontend(frontend_conf: Mapping[str, Any], *, train: bool) -> torch.nn.Module:
    """``WavFrontend(**frontend_conf)``, with dither forced to 0 when not training."""
    from funasr_lite.data.frontend import WavFrontend

    conf = dict(frontend_conf)
    if not train:
        conf["dither"] = 0.0
    frontend = WavFrontend(**conf)
    frontend.train(train)
    return frontend


def build_dataloader(data: str, tokenizer: Any, frontend_conf: Mapping[str, Any], conf: DatasetConf, *,
                     train: bool, seed: int = 0, max_bad_ratio: float = 0.1, rank: int = 0, world_size: int = 1,
                     epoch: int = 0) -> DataLoader:
    """The DataLoader of one data set; yields :class:`Collator` dicts with features ready.

    Args:
        data: small: a data dir (``wav.scp`` + ``text``); large: a ``data.list`` file or
            the dir holding it (made by ``tools/make_shards.py``).
        tokenizer: has ``encode(text) -> List[int]`` (and ``token_list`` for ``<unk>``).
        frontend_conf: ``WavFrontend`` kwargs (FunASR's ``frontend_conf``, CMVN included); the
            LFR frame duration (``frame_shift x lfr_n``) and sample rate (``fs``) come from it.
        conf: filters and batching (``dataset_conf``).
        train: shuffle (if ``conf.shuffle``) and dither; when False, fixed order, dither 0
            and, with several ranks, no padding (ranks may get one batch less).
        seed: base seed (``train_conf.seed``): batch order, shuffle buffer and dither follow it.
        max_bad_ratio: stop with the scan report when more of the utterances are dropped.
        rank, world_size: DDP split (see :class:`BucketBatchSampler` / ``ShardStream``).
        epoch: initial epoch; call :func:`set_epoch` before each later epoch.

    The pre-flight report is ``loader.scan_report``. Large mode: ranks may yield
    different numbers of batches; the trainer must stop all ranks when one runs out.

    Raises:
        ConfigError: ``max_bad_ratio`` is not in [0, 1].
        DataDirError: unreadable data, or too many bad utterances (``max_bad_ratio``).
    """
    frame_ms = float(frontend_conf.get("frame_shift", 10)) * float(frontend_conf.get("lfr_n", 6))
    sr = int(frontend_conf.get("fs", 16000))
    conf = replace(conf, shuffle=conf.shuffle and train)
    collate = Collator(build_frontend(frontend_conf, train=train))
    gen = torch.Generator().manual_seed(_loader_seed(seed, epoch, rank))  # worker seeds -> dither
    common: Dict[str, Any] = dict(collate_fn=collate, num_workers=conf.num_workers, generator=gen)
    if conf.dataset_type == "small":
        utts, report = scan_training_data(data, tokenizer, conf, lfr_frame_ms=frame_ms, sample_rate=sr,
                                          max_bad_ratio=max_bad_ratio)
        sampler = BucketBatchSampler([conf.batch_units(u.duration_ms, frame_ms) for u in utts], conf.batch_bins,
                                     shuffle=conf.shuffle, seed=seed, rank=rank,
                                     world_size=world_size, pad=train, epoch=epoch)
        loader = DataLoader(UtteranceDataset(utts, sr), batch_sampler=sampler, **common)
    else:
        from funasr_lite.data.shards import ShardStream, scan_shards

        report = scan_shards(data, tokenizer, conf, sample_rate=sr, max_bad_ratio=max_bad_ratio)
        stream = ShardStream(data, tokenizer, conf, seed=seed, sample_rate=sr, rank=rank, world_size=world_size,
                             epoch=epoch)
        loader = DataLoader(stream, batch_size=None, **common)
    loader.scan_report = report  # type: ignore[attr-defined]
    loader.seed, loader.rank = seed, rank  # type: ignore[attr-defined]
    return loader


def _loader_seed(seed: int, epoch: int, rank: int) -> int:
    return epoch_seed(seed, epoch, rank) % (2 ** 63)  # a torch.Generator seed


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Prepare ``loader`` (from :func:`build_dataloader`) for ``epoch``: batch order,
    shard order/shuffle buffer and the worker seeds (dither) all follow ``seed + epoch``."""
    sampler = loader.batch_sampler
    if isinstance(sampler, BucketBatchSampler):
        sampler.set_epoch(epoch)
    if callable(getattr(loader.dataset, "set_epoch", None)):
        loader.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
    seed = getattr(loader, "seed", None)
    if seed is not None and loader.generator is not None:
        loader.generator.manual_seed(_loader_seed(seed, epoch, getattr(loader, "rank", 0)))
