"""Training data loaders: the small in-memory dataset, and :func:`build_dataloader` for both types.

The two dataset types of FunASR's ModelScope finetuning: ``small``, the utterances that pass
:func:`~funasr_lite.data.filters.scan_training_data` in memory (:class:`UtteranceDataset`), cut into
batches of ``batch_bins`` padded LFR frames by :class:`~funasr_lite.data.batching.BucketBatchSampler`;
``large``, shards from ``tools/make_shards.py`` scanned by :func:`~funasr_lite.data.shards.scan_shards` and
streamed by :class:`~funasr_lite.data.shards.ShardStream` (``batch_bins`` padded milliseconds). Features
(fbank + LFR + CMVN, dithered when training) are computed by :func:`~funasr_lite.data.batching.collate`
inside the DataLoader workers. The trainer calls :func:`build_dataloader` once per data set and
:func:`set_epoch` before each epoch.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Dict, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from funasr_lite.config.sections import FrontendConf
from funasr_lite.data.batching import BucketBatchSampler, Item, collate
from funasr_lite.data.filters import Utterance, scan_training_data
from funasr_lite.data.frontend import WavFrontend
from funasr_lite.data.options import DatasetConf
from funasr_lite.data.shards import ShardStream, scan_shards
from funasr_lite.utils.seeding import epoch_seed

__all__ = ["UtteranceDataset", "build_dataloader", "set_epoch"]


class UtteranceDataset(Dataset):
    """Map-style dataset over scanned utterances: item ``i`` is ``(key, wav (S,), token_ids (L,))``.

    An utterance whose audio fails to load at training time (changed or corrupt
    past its header) gives None, which :func:`~funasr_lite.data.batching.collate` drops.
    """

    def __init__(self, utts: Sequence[Utterance], sample_rate: int = 16000) -> None:
        self.utts = list(utts)
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, index: int) -> Optional[Item]:
        return self.utts[index].load(self.sample_rate)


def build_dataloader(
    data: str,
    tokenizer: Any,
    frontend_conf: FrontendConf,
    conf: DatasetConf,
    *,
    train: bool,
    seed: int = 0,
    max_bad_ratio: float = 0.1,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
) -> DataLoader:
    """The DataLoader of one data set; yields :func:`~funasr_lite.data.batching.collate` dicts with features ready.

    Args:
        data: small: a data dir (``wav.scp`` + ``text``); large: a ``data.list`` file or
            the dir holding it (made by ``funasr-lite make-shards``; see ``make-shards --data_path``).
        tokenizer: has ``encode(text) -> List[int]`` (and ``token_list`` for ``<unk>``).
        frontend_conf: the ``frontend_conf`` section (CMVN file included); the features, the LFR frame
            duration (:attr:`FrontendConf.frame_ms`) and the sample rate (``fs``) come from it.
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
    frame_ms, sr = frontend_conf.frame_ms, frontend_conf.fs
    conf = replace(conf, shuffle=conf.shuffle and train)
    fe_conf = frontend_conf.kwargs() if train else {**frontend_conf.kwargs(), "dither": 0.0}  # dither: training only
    collate_fn = functools.partial(collate, frontend=WavFrontend(**fe_conf).train(train))
    gen = torch.Generator().manual_seed(_loader_seed(seed, epoch, rank))  # worker seeds -> dither
    common: Dict[str, Any] = dict(collate_fn=collate_fn, num_workers=conf.num_workers, generator=gen)
    if conf.dataset_type == "small":
        utts, report = scan_training_data(
            data, tokenizer, conf, lfr_frame_ms=frame_ms, sample_rate=sr, max_bad_ratio=max_bad_ratio
        )
        sampler = BucketBatchSampler(
            [conf.batch_units(u.duration_ms, frame_ms) for u in utts],
            conf.batch_bins,
            shuffle=conf.shuffle,
            seed=seed,
            rank=rank,
            world_size=world_size,
            pad=train,
            epoch=epoch,
        )
        loader = DataLoader(UtteranceDataset(utts, sr), batch_sampler=sampler, **common)
    else:
        report = scan_shards(data, tokenizer, conf, sample_rate=sr, max_bad_ratio=max_bad_ratio)
        stream = ShardStream(
            data, tokenizer, conf, seed=seed, sample_rate=sr, rank=rank, world_size=world_size, epoch=epoch
        )
        loader = DataLoader(stream, batch_size=None, **common)
    loader.scan_report = report  # type: ignore[attr-defined]
    loader.seed, loader.rank = seed, rank  # type: ignore[attr-defined]
    return loader


def _loader_seed(seed: int, epoch: int, rank: int) -> int:
    return epoch_seed(seed, epoch, rank) % (2**63)  # a torch.Generator seed


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Prepare ``loader`` (from :func:`build_dataloader`) for ``epoch``: batch order,
    shard order/shuffle buffer and the worker seeds (dither) all follow ``seed + epoch``."""
    for part in (loader.batch_sampler, loader.dataset):  # BucketBatchSampler, ShardStream
        if callable(getattr(part, "set_epoch", None)):
            part.set_epoch(epoch)  # type: ignore[union-attr]
    seed = getattr(loader, "seed", None)
    if seed is not None and loader.generator is not None:
        loader.generator.manual_seed(_loader_seed(seed, epoch, getattr(loader, "rank", 0)))
