"""``large`` datasets: split a data dir into shards, then stream them with bounded memory.

:func:`make_shards` writes ``OUT/split/NNNNN/{wav.scp,text,utt2dur}`` (keys
matched, audio paths absolute, durations in ms from the audio headers), a
``data.list`` with one ``<wav.scp> <text>`` pair per line (paths relative to
``data.list``), ``bad_utts.txt`` (utterances left out, and why) and
``shards.json`` (counts, and a fingerprint of the source files so
:func:`ensure_shards` rebuilds stale shards instead of reusing them, unlike
FunASR's ``split/`` dirs). ``data.list`` and ``shards.json`` are written last,
so an interrupted run leaves no usable-looking half output.

:class:`ShardStream` streams them to the DataLoader workers.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import random
import shutil
from collections import Counter, namedtuple
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Tuple

import torch
from torch.utils.data import IterableDataset, get_worker_info

from funasr_lite.data.datadir import DataDir, read_scp
from funasr_lite.data.filters import (
    MAX_LISTED_BAD,
    BadUtterance,
    ScanReport,
    Utterance,
    check_max_bad_ratio,
    check_utterance,
    header_ms,
    scan_data_dir,
)
from funasr_lite.data.options import DatasetConf
from funasr_lite.errors import AudioError, DataDirError
from funasr_lite.utils.fileio import atomic_write_json, atomic_write_text

__all__ = ["ShardSummary", "make_shards", "ensure_shards", "read_data_list", "scan_shards", "ShardStream"]

logger = logging.getLogger(__name__)

MANIFEST = "shards.json"

_Row = namedtuple("_Row", "key path text duration_ms")  # one utterance of a shard being written


@dataclass
class ShardSummary:
    """What :func:`make_shards` wrote."""

    data_list: str  # path of data.list
    num_shards: int  # shard dirs written
    written: int  # utterances in the shards
    report: ScanReport  # utterances left out (data_dir / audio reasons only)


def _fingerprint(data_dir: str) -> Dict[str, List[int]]:
    """Size and mtime of ``wav.scp`` and ``text``: shards made from them are stale when these change."""
    stats = {name: os.stat(os.path.join(data_dir, name)) for name in ("wav.scp", "text")}
    return {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}


def make_shards(data_dir: str, out_dir: str, utts_per_shard: int = 1000, *, overwrite: bool = False) -> ShardSummary:
    """Split ``data_dir`` into shards of ``utts_per_shard`` utterances under ``out_dir``.

    Utterances with a bad wav.scp/text entry or an unreadable audio header are left
    out and listed in ``out_dir/bad_utts.txt`` (they are counted again by
    :func:`scan_shards`, so the training threshold sees them).

    Raises:
        DataDirError: unreadable data dir, no usable utterance, or ``out_dir`` already
            holds shards and ``overwrite`` is False.
    """
    data_list = os.path.join(out_dir, "data.list")
    split = os.path.join(out_dir, "split")
    if os.path.exists(data_list) or os.path.exists(split):
        if not overwrite:
            raise DataDirError(
                f"{out_dir}: already holds shards (data.list or split/); pass --overwrite to rebuild them"
            )
        if os.path.exists(split) and not os.path.exists(os.path.join(out_dir, MANIFEST)):
            raise DataDirError(
                f"{split}: exists but was not made by make_shards (no {MANIFEST}); "
                "remove it yourself or choose another out_dir"
            )
        for name in ("data.list", MANIFEST):
            if os.path.exists(os.path.join(out_dir, name)):
                os.unlink(os.path.join(out_dir, name))
        shutil.rmtree(split, ignore_errors=True)

    def header(key: str, path: str, text: str, dd: DataDir) -> "_Row | BadUtterance":
        try:
            return _Row(key, os.path.abspath(path), text, header_ms(path))
        except AudioError as exc:
            return BadUtterance(key, "audio", f"{dd.path}/wav.scp:{dd.wav_lines[key]}: {exc}")

    rows, report = scan_data_dir(data_dir, header, empty_text=False)
    if not rows:
        raise DataDirError(f"{data_dir}: no usable utterance to shard\n{report.format(50)}")
    os.makedirs(split, exist_ok=True)
    pairs = []
    n_shards = -(-len(rows) // utts_per_shard)
    for s in range(n_shards):
        chunk = rows[s * utts_per_shard : (s + 1) * utts_per_shard]
        sdir = os.path.join(split, f"{s + 1:05d}")
        os.makedirs(sdir, exist_ok=True)
        atomic_write_text(os.path.join(sdir, "wav.scp"), "".join(f"{k} {p}\n" for k, p, _, _ in chunk))
        atomic_write_text(os.path.join(sdir, "text"), "".join(f"{k} {t}\n" for k, _, t, _ in chunk))
        atomic_write_text(os.path.join(sdir, "utt2dur"), "".join(f"{k} {ms:.3f}\n" for k, _, _, ms in chunk))
        rel = os.path.join("split", f"{s + 1:05d}")
        pairs.append(f"{rel}/wav.scp {rel}/text\n")
    atomic_write_text(os.path.join(out_dir, "bad_utts.txt"), "".join(f"{b}\n" for b in report.bad))
    atomic_write_json(
        os.path.join(out_dir, MANIFEST),
        {
            "source": os.path.abspath(data_dir),
            "fingerprint": _fingerprint(data_dir),
            "utts_per_shard": utts_per_shard,
            "num_shards": n_shards,
            "total": report.total,
            "written": len(rows),
            "bad_counts": report.counts,
            "bad": [[b.key, b.reason, b.detail] for b in report.bad],
        },
    )
    atomic_write_text(data_list, "".join(pairs))
    report.log()
    return ShardSummary(data_list, n_shards, len(rows), report)


def ensure_shards(data_dir: str, out_dir: str, utts_per_shard: int = 1000) -> str:
    """Reuse ``out_dir``'s shards if made from the same, unchanged ``data_dir``; else rebuild.

    Returns the ``data.list`` path.
    """
    data_list = os.path.join(out_dir, "data.list")
    if os.path.exists(data_list) and os.path.exists(os.path.join(out_dir, MANIFEST)):
        try:
            meta = _read_manifest(out_dir)
            same = (
                meta.get("source") == os.path.abspath(data_dir)
                and meta.get("fingerprint") == _fingerprint(data_dir)
                and meta.get("utts_per_shard") == utts_per_shard
            )
        except (DataDirError, OSError):
            same = False
        if same:
            logger.info("reusing shards in %s (source %s unchanged)", out_dir, data_dir)
            return data_list
        logger.info("rebuilding stale shards in %s", out_dir)
    return make_shards(data_dir, out_dir, utts_per_shard, overwrite=True).data_list


def read_data_list(data: str) -> List[Tuple[str, str]]:
    """``(wav.scp, text)`` path pairs from a data.list file (or a dir holding one).

    Lines are ``<wav.scp> <text>`` (tab- or space-separated); relative paths are
    taken relative to the data.list's dir.

    Raises:
        DataDirError: no data.list, a malformed line or a missing shard file.
    """
    path = os.path.join(data, "data.list") if os.path.isdir(data) else data
    if not os.path.isfile(path):
        raise DataDirError(
            f"{path}: no data.list; dataset_type 'large' reads <data_path>/train/data.list and "
            f"<data_path>/dev/data.list: make them with 'funasr-lite make-shards --data_path DATA OUT' "
            f"(DATA holding train/ and dev/ data dirs) and pass --data_path OUT"
        )
    base = os.path.dirname(os.path.abspath(path))
    pairs = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) != 2:
                raise DataDirError(f"{path}:{lineno}: expected '<wav.scp> <text>', got {line!r}")
            full = [os.path.join(base, p) for p in parts]  # an absolute p stays as it is
            for p in full:
                if not os.path.isfile(p):
                    raise DataDirError(f"{path}:{lineno}: shard file not found: {p}")
            pairs.append((full[0], full[1]))
    if not pairs:
        raise DataDirError(f"{path}: is empty (no shards)")
    return pairs


def _read_manifest(out_dir: str) -> Dict[str, Any]:
    """``out_dir``'s shards.json ({} if there is none); DataDirError naming it if unreadable."""
    manifest = os.path.join(out_dir, MANIFEST)
    if not os.path.isfile(manifest):
        return {}
    try:
        with open(manifest, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise DataDirError(f"{manifest}: unreadable shard manifest: {exc}") from exc


def _shard_utterances(
    shards: List[Tuple[str, str]], tokenizer: Any, conf: DatasetConf, sample_rate: int
) -> Iterator["Utterance | BadUtterance"]:
    """Every wav.scp entry of ``shards`` (``(wav.scp, text)`` pairs) through the filters, in file order."""
    check = functools.partial(check_utterance, tokenizer=tokenizer, conf=conf, sample_rate=sample_rate)
    for wav_scp, text_path in shards:
        wavs = read_scp(wav_scp, what="wav.scp")
        texts = read_scp(text_path, what="text").entries
        base = os.path.dirname(wav_scp)
        durs: Dict[str, float] = {}
        dur_path = os.path.join(base, "utt2dur")
        if os.path.isfile(dur_path):
            for key, value in read_scp(dur_path, what="text").entries.items():
                try:
                    durs[key] = float(value)
                except ValueError:
                    logger.warning("%s: bad duration %r for %s; reading the header instead", dur_path, value, key)
        for p in wavs.problems:
            logger.warning("%s", p)
        for key, path in wavs.entries.items():
            if not os.path.isabs(path) and not os.path.exists(path):
                path = os.path.join(base, path)
            where = f"{wav_scp}:{wavs.lines[key]}"
            if key not in texts:
                yield BadUtterance(key, "data_dir", f"{where}: key {key!r} has no line in the shard's text")
            elif not os.path.isfile(path):
                yield BadUtterance(key, "data_dir", f"{where}: audio file not found: {path}")
            else:
                yield check(key, path, texts[key], duration_ms=durs.get(key), where=where)


def scan_shards(
    data: str, tokenizer: Any, conf: DatasetConf, *, sample_rate: int = 16000, max_bad_ratio: float = 0.1
) -> ScanReport:
    """Pre-flight of a large dataset: stream every shard, count and list what would be dropped.

    Memory: counts plus at most ``MAX_LISTED_BAD`` bad entries. Utterances
    :func:`make_shards` left out (from ``shards.json``) count as dropped too.
    ``sample_rate``: see :func:`~funasr_lite.data.filters.check_utterance`.

    Raises:
        ConfigError: ``max_bad_ratio`` is not in [0, 1].
        DataDirError: bad data.list, or more than ``max_bad_ratio`` dropped.
    """
    check_max_bad_ratio(max_bad_ratio)
    report = ScanReport(source=os.fspath(data))
    meta = _read_manifest(data if os.path.isdir(data) else os.path.dirname(data))
    for reason, n in meta.get("bad_counts", {}).items():
        report.counts[reason] = int(n)
        report.total += int(n)
    report.bad = [BadUtterance(*b) for b in meta.get("bad", [])[:MAX_LISTED_BAD]]
    for result in _shard_utterances(read_data_list(data), tokenizer, conf, sample_rate):
        report.add(result)
    report.log()
    report.raise_if_too_bad(max_bad_ratio)
    return report


class ShardStream(IterableDataset):
    """Streams batches of ``(key, wav (S,), token_ids (L,))`` items from shards.

    Per epoch the shard list is dealt out by rank, then by DataLoader worker. Each worker reads
    one shard at a time, filters utterances with :func:`~funasr_lite.data.filters.check_utterance`
    before touching the audio, keeps at most ``buffer_size`` utterance records (no audio) in a
    shuffle buffer, sorts windows of ``sort_size`` by duration and yields batches with
    ``len(batch) x longest_ms <= batch_bins``; audio is loaded (at ``sample_rate``) only for the batch
    being yielded. With ``conf.shuffle`` the shard order (``seed + epoch``) and the shuffle buffer
    (also rank and worker) are random; otherwise everything is in file order except the sort window.
    Counts of dropped utterances are logged per worker at the end of each epoch (and kept in
    ``last_stats`` when there are no workers). Use with ``DataLoader(batch_size=None)`` and :func:`~funasr_lite.data.batching.collate`.
    """

    def __init__(
        self,
        data: str,
        tokenizer: Any,
        conf: DatasetConf,
        *,
        seed: int = 0,
        sample_rate: int = 16000,
        rank: int = 0,
        world_size: int = 1,
        epoch: int = 0,
    ) -> None:
        super().__init__()
        self.shards = read_data_list(data)
        if len(self.shards) < world_size:
            raise DataDirError(
                f"{data}: {len(self.shards)} shard(s) for {world_size} ranks; every rank "
                "needs at least one: make more shards (smaller --utts_per_shard)"
            )
        self.tokenizer, self.conf, self.seed, self.sample_rate = tokenizer, conf, seed, sample_rate
        self.rank, self.world_size, self.epoch = rank, world_size, epoch
        self.last_stats: Counter = Counter()  # counts of the last epoch run in this process

    def set_epoch(self, epoch: int) -> None:
        """Select the shard order and shuffle of ``epoch``."""
        self.epoch = epoch

    def my_shards(self, worker_id: int = 0, num_workers: int = 1) -> List[Tuple[str, str]]:
        """The shards this rank and worker read this epoch."""
        shards = list(self.shards)
        if self.conf.shuffle:
            random.Random(self.seed + self.epoch).shuffle(shards)
        return shards[self.rank :: self.world_size][worker_id::num_workers]

    def _utterances(self, shards: List[Tuple[str, str]], stats: Counter) -> Iterator[Utterance]:
        for result in _shard_utterances(shards, self.tokenizer, self.conf, self.sample_rate):
            if isinstance(result, BadUtterance):
                stats[result.reason] += 1
                logger.debug("dropped %s", result)
            else:
                stats["kept"] += 1
                yield result

    def _shuffled(self, utts: Iterator[Utterance], rng: random.Random, stats: Counter) -> Iterator[Utterance]:
        if not self.conf.shuffle:
            yield from utts
            return
        buf: List[Utterance] = []
        for u in utts:
            buf.append(u)
            stats["max_buffered"] = max(stats["max_buffered"], len(buf))
            if len(buf) >= self.conf.buffer_size:
                j = rng.randrange(len(buf))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf

    def _sorted(self, utts: Iterator[Utterance]) -> Iterator[Utterance]:
        while win := list(itertools.islice(utts, self.conf.sort_size)):
            yield from sorted(win, key=lambda x: x.duration_ms)

    def _batches(self, utts: Iterator[Utterance]) -> Iterator[List[Utterance]]:
        cur: List[Utterance] = []
        longest = 0
        for u in utts:
            units = self.conf.batch_units(u.duration_ms)
            if cur and (len(cur) + 1) * max(longest, units) > self.conf.batch_bins:
                yield cur
                cur, longest = [], 0
            cur.append(u)
            longest = max(longest, units)
        if cur:
            yield cur

    def __iter__(self) -> Iterator[List[Tuple[str, torch.Tensor, torch.Tensor]]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.rank}-{wid}")
        stats: Counter = Counter()
        self.last_stats = stats
        utts = self._sorted(self._shuffled(self._utterances(self.my_shards(wid, nw), stats), rng, stats))
        for batch in self._batches(utts):
            items = [u.load(self.sample_rate) for u in batch]
            stats["audio"] += sum(it is None for it in items)
            items = [it for it in items if it is not None]
            stats["batches"] += 1
            if items:
                yield items
        dropped = {k: v for k, v in stats.items() if k not in ("kept", "batches", "max_buffered")}
        logger.info(
            "rank %d worker %d epoch %d: %d utterances in %d batches, dropped %s",
            self.rank,
            wid,
            self.epoch,
            stats["kept"] - stats["audio"],
            stats["batches"],
            dropped or "none",
        )
