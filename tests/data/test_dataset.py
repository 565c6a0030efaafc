"""Training data: pre-flight filters/report, bucket batching, DDP split, shards and streaming."""

import os
import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from funasr_lite.config.sections import FrontendConf
from funasr_lite.data.batching import BucketBatchSampler, collate
from funasr_lite.data.dataset import build_dataloader, set_epoch
from funasr_lite.data.filters import scan_training_data
from funasr_lite.data.frontend import WavFrontend
from funasr_lite.data.options import DatasetConf, lfr_frames
from funasr_lite.data.shards import ShardStream, ensure_shards, make_shards, read_data_list, scan_shards
from funasr_lite.data.tokenizer import Tokenizer
from funasr_lite.errors import ConfigError, DataDirError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SR = 16000
LETTERS = list("abcdefghij")
TOKENS = ["<blank>", "<s>", "</s>"] + LETTERS + ["<unk>"]
FRONTEND = FrontendConf(dither=0.0, lfr_m=7, lfr_n=6)  # 80 mels, lfr 7/6 -> 560 dims, no CMVN


@pytest.fixture
def tok():
    return Tokenizer(TOKENS)


def write_wav(path, ms, seed=0, sr=SR):
    n = int(round(sr * ms / 1000.0))
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), sr, subtype="PCM_16")


def make_dir(root, utts, *, extra_wav=(), extra_text=()):
    """utts: list of (key, ms, text); ms None = no audio file written. Returns the dir."""
    os.makedirs(os.path.join(root, "wav"), exist_ok=True)
    wav_lines, text_lines = [], []
    for i, (key, ms, text) in enumerate(utts):
        path = os.path.join(root, "wav", f"{key}.wav")
        if ms is not None:
            write_wav(path, ms, seed=i)
        wav_lines.append(f"{key} {path}")
        text_lines.append(f"{key} {text}")
    wav_lines += list(extra_wav)
    text_lines += list(extra_text)
    # text in reverse order: keys must be matched, not positions
    with open(os.path.join(root, "wav.scp"), "w", encoding="utf-8") as f:
        f.write("\n".join(wav_lines) + "\n")
    with open(os.path.join(root, "text"), "w", encoding="utf-8") as f:
        f.write("\n".join(reversed(text_lines)) + "\n")
    return str(root)


def random_text(rng, n):
    return " ".join(rng.choice(LETTERS) for _ in range(n))


@pytest.fixture
def good_dir(tmp_path):
    """20 utterances of 0.2-2.0 s with 2-12 letter transcriptions."""
    rng = random.Random(1)
    utts = [(f"u{i:02d}", rng.randint(200, 2000), random_text(rng, rng.randint(2, 12))) for i in range(20)]
    return make_dir(tmp_path / "good", utts), {k: (ms, t) for k, ms, t in utts}


SEED = 3  # base seed of every loader and stream here


def opts(**kw):
    base = dict(batch_bins=200, num_workers=0, speech_length_min=100, speech_length_max=10000)
    base.update(kw)
    return DatasetConf(**base)


def all_keys(loader):
    return [k for batch in loader for k in batch["keys"]]


# -- options / sampler ---------------------------------------------------------------------------


def test_options_validate(tmp_path, tok):
    with pytest.raises(ConfigError):
        DatasetConf(dataset_type="medium")
    with pytest.raises(ConfigError):
        scan_training_data(str(tmp_path), tok, opts(), max_bad_ratio=1.5)
    with pytest.raises(ConfigError):
        DatasetConf(speech_length_min=5000, speech_length_max=1000)
    c = DatasetConf()  # FunASR's -1 (off) keeps funasr-lite's safe limits
    assert (c.min_speech_ms, c.max_speech_ms, c.max_tokens) == (100, 30000, 200)
    assert lfr_frames(60.0) == 1 and lfr_frames(61.0) == 2 and lfr_frames(1200.0) == 20


def test_bucket_sampler_fills_to_batch_bins_and_covers_all():
    rng = random.Random(0)
    lengths = [rng.randint(1, 50) for _ in range(300)]
    s = BucketBatchSampler(lengths, 200, shuffle=True, seed=1)
    batches = list(s)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(300))  # every utterance exactly once
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 200
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
    # buckets are full: adding the next-longer utterance would overflow
    order = sorted(range(300), key=lambda i: (lengths[i], i))
    by_start = sorted(s.batches, key=lambda b: order.index(b[-1]))
    for b, nxt in zip(by_start, by_start[1:]):
        assert (len(b) + 1) * lengths[nxt[0 if len(nxt) == 1 else -1]] > 200
    # an utterance longer than batch_bins still gets (its own) batch
    s2 = BucketBatchSampler([5, 500, 5], 100, shuffle=False)
    assert sorted(map(sorted, s2)) == [[0, 2], [1]]


def test_bucket_sampler_deterministic_per_seed_and_epoch():
    lengths = [random.Random(2).randint(1, 30) for _ in range(200)]
    a = BucketBatchSampler(lengths, 100, seed=5)
    b = BucketBatchSampler(lengths, 100, seed=5)
    assert list(a) == list(b)
    e0 = list(a)
    a.set_epoch(1)
    assert list(a) != e0 and sorted(map(tuple, a)) == sorted(map(tuple, e0))
    assert list(BucketBatchSampler(lengths, 100, seed=6)) != e0
    assert list(BucketBatchSampler(lengths, 100, shuffle=False)) == list(
        BucketBatchSampler(lengths, 100, shuffle=False, epoch=4)
    )


@pytest.mark.parametrize("world", [2, 3, 4])
def test_bucket_sampler_rank_split(world):
    lengths = [random.Random(3).randint(1, 30) for _ in range(101)]
    full = BucketBatchSampler(lengths, 90, seed=1)
    per_rank = [list(BucketBatchSampler(lengths, 90, seed=1, rank=r, world_size=world)) for r in range(world)]
    assert len({len(p) for p in per_rank}) == 1  # same number of batches on every rank
    assert all(len(p) == len(BucketBatchSampler(lengths, 90, rank=0, world_size=world)) for p in per_rank)
    seen = Counter(i for p in per_rank for b in p for i in b)
    assert set(seen) == set(range(101))
    pad = len(per_rank[0]) * world - len(full.batches)
    assert 0 <= pad < world
    if pad == 0:
        assert all(n == 1 for n in seen.values())
    # without padding (evaluation): disjoint, exactly once overall
    nopad = [list(BucketBatchSampler(lengths, 90, seed=1, rank=r, world_size=world, pad=False)) for r in range(world)]
    assert sorted(i for p in nopad for b in p for i in b) == list(range(101))


# -- pre-flight scan ---------------------------------------------------------------------------


def test_scan_filters_and_report(tmp_path, tok):
    utts = [(f"ok{i}", 500 + 100 * i, "a b c") for i in range(10)]
    utts += [
        ("empty", 500, ""),
        ("missing", None, "a b"),
        ("short", 10, "a"),
        ("minshort", 60, "a"),
        ("long", 12000, "a b"),
        ("many_tok", 800, random_text(random.Random(0), 30)),
        ("unk", 800, "x y z a"),
        ("punct", 800, "，。"),
        ("blank", 700, "   "),
    ]
    d = make_dir(tmp_path / "d", utts, extra_wav=[f"notext {tmp_path}/d/wav/ok0.wav"], extra_text=["orphan a b"])
    with open(os.path.join(d, "wav", "corrupt.wav"), "wb") as f:
        f.write(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 3)
    with open(os.path.join(d, "wav.scp"), "a", encoding="utf-8") as f:
        f.write(f"corrupt {d}/wav/corrupt.wav\n")
    with open(os.path.join(d, "text"), "a", encoding="utf-8") as f:
        f.write("corrupt a b\n")
    o = opts(token_length_max=20, max_unk_ratio=0.5)
    seg_tok = Tokenizer(TOKENS, {c: [c] for c in LETTERS}, seg_mode="fmm")  # drops punctuation
    kept, rep = scan_training_data(d, seg_tok, o, max_bad_ratio=1.0)
    assert [u.key for u in kept] == [f"ok{i}" for i in range(10)]
    assert kept[0].token_ids == tok.encode("a b c") and kept[0].duration_ms == pytest.approx(500)
    assert rep.counts == {
        "empty_text": 2,
        "data_dir": 2,
        "too_short": 2,
        "too_long": 1,
        "too_many_tokens": 1,
        "too_many_unk": 1,
        "no_tokens": 1,
        "audio": 1,
    }
    assert rep.total == 21 and rep.kept == 10 and rep.bad_ratio == pytest.approx(11 / 21)
    text = rep.format()
    for key in ("missing", "notext", "corrupt", "long", "unk"):
        assert key in text
    assert "corrupt.wav" in text and "missing.wav" in text
    assert any("orphan" in n for n in rep.notes)
    by_key = {b.key: b for b in rep.bad}
    assert by_key["short"].reason == "too_short" and by_key["minshort"].reason == "too_short"
    assert by_key["blank"].reason == "empty_text" and by_key["punct"].reason == "no_tokens"


def test_scan_threshold_stops_with_report(tmp_path, tok):
    utts = [(f"ok{i}", 600, "a b") for i in range(8)] + [("gone1", None, "a"), ("gone2", None, "b")]
    d = make_dir(tmp_path / "d", utts)
    with pytest.raises(DataDirError) as ei:
        scan_training_data(d, tok, opts(), max_bad_ratio=0.1)
    msg = str(ei.value)
    assert "2 of 10" in msg and "max_bad_ratio" in msg and "gone1.wav" in msg
    kept, rep = scan_training_data(d, tok, opts(), max_bad_ratio=0.2)  # 20% <= 20%: skip them
    assert len(kept) == 8 and rep.counts == {"data_dir": 2}
    with pytest.raises(DataDirError, match="2 of 10"):
        build_dataloader(d, tok, FRONTEND, opts(), train=True, seed=SEED, max_bad_ratio=0.1)


def test_scan_exceeds_batch_bins(tmp_path, tok):
    d = make_dir(tmp_path / "d", [("a", 600, "a"), ("b", 3100, "b")])
    kept, rep = scan_training_data(d, tok, opts(batch_bins=50), max_bad_ratio=1.0)  # 3100 ms = 52 frames
    assert [u.key for u in kept] == ["a"] and rep.counts == {"exceeds_batch_bins": 1}


def test_scan_decode_audio_finds_nan(tmp_path, tok):
    d = make_dir(tmp_path / "d", [(f"ok{i}", 600, "a") for i in range(3)] + [("nan", 600, "b")])
    x = np.zeros(9600, dtype=np.float32)
    x[100] = np.nan
    sf.write(os.path.join(d, "wav", "nan.wav"), x, SR, subtype="FLOAT")
    kept, _ = scan_training_data(d, tok, opts(), max_bad_ratio=1.0)
    assert len(kept) == 4  # header looks fine
    kept, rep = scan_training_data(d, tok, opts(), max_bad_ratio=1.0, decode_audio=True)
    assert len(kept) == 3 and rep.counts == {"audio": 1} and "NaN" in rep.bad[0].detail


# -- small DataLoader ----------------------------------------------------------------------------


def test_small_loader_batches(good_dir, tok):
    d, meta = good_dir
    o = opts(batch_bins=60)
    loader = build_dataloader(d, tok, FRONTEND, o, train=True, seed=SEED)
    assert loader.scan_report.kept == 20
    fe = WavFrontend(**FRONTEND.kwargs())
    keys = []
    for batch in loader:
        b = len(batch["keys"])
        keys += batch["keys"]
        assert batch["speech"].shape[0] == b and batch["speech"].shape[2] == 560
        assert batch["speech_lengths"].dtype == torch.int64 and batch["text"].dtype == torch.int64
        assert int(batch["speech_lengths"].max()) == batch["speech"].shape[1]
        assert b * max(lfr_frames(meta[k][0]) for k in batch["keys"]) <= 60
        for j, k in enumerate(batch["keys"]):
            ids = tok.encode(meta[k][1])
            n = int(batch["text_lengths"][j])
            assert batch["text"][j, :n].tolist() == ids
            assert (batch["text"][j, n:] == -1).all()
        # padding-invariant features: equal to the frontend on the utterance alone
        k0 = batch["keys"][-1]
        from funasr_lite.data.audio import load_audio

        wav = load_audio(os.path.join(d, "wav", f"{k0}.wav"))
        ref, ref_len = fe(wav[None], torch.tensor([wav.numel()]))
        n = int(batch["speech_lengths"][-1])
        assert n == int(ref_len[0])
        torch.testing.assert_close(batch["speech"][-1, :n], ref[0, :n])
    assert sorted(keys) == sorted(meta)  # every utterance exactly once per epoch


def test_small_loader_epochs_deterministic(good_dir, tok):
    d, meta = good_dir
    o = opts(batch_bins=60)
    a = build_dataloader(d, tok, FRONTEND, o, train=True, seed=SEED)
    b = build_dataloader(d, tok, FRONTEND, o, train=True, seed=SEED)
    ka, kb = all_keys(a), all_keys(b)
    assert ka == kb
    set_epoch(a, 1)
    k1 = all_keys(a)
    assert k1 != ka and sorted(k1) == sorted(ka)
    set_epoch(a, 0)
    assert all_keys(a) == ka
    ev = build_dataloader(d, tok, FRONTEND, o, train=False, seed=SEED)
    assert all_keys(ev) == all_keys(ev)


def test_small_loader_dither_and_workers(good_dir, tok):
    """Features come out of 2 worker processes; train dither is seeded by seed + epoch."""
    d, _ = good_dir
    o = opts(batch_bins=60, num_workers=2)
    conf = FrontendConf(dither=1.0, lfr_m=7, lfr_n=6)
    a = build_dataloader(d, tok, conf, o, train=True, seed=SEED)
    b = build_dataloader(d, tok, conf, o, train=True, seed=SEED)
    ba, bb = next(iter(a)), next(iter(b))
    assert ba["keys"] == bb["keys"]
    torch.testing.assert_close(ba["speech"], bb["speech"])
    clean = build_dataloader(d, tok, conf, opts(batch_bins=60, num_workers=0, shuffle=False), train=True, seed=SEED)
    ev = build_dataloader(d, tok, conf, opts(batch_bins=60, num_workers=0), train=False, seed=SEED)
    bc, be = next(iter(clean)), next(iter(ev))
    assert bc["keys"] == be["keys"]
    assert not torch.allclose(bc["speech"], be["speech"])  # dither in training, none in eval


def test_small_loader_rank_split(good_dir, tok):
    d, meta = good_dir
    o = opts(batch_bins=40)
    loaders = [build_dataloader(d, tok, FRONTEND, o, train=True, seed=SEED, rank=r, world_size=2) for r in range(2)]
    assert len(loaders[0]) == len(loaders[1])
    per = [all_keys(ld) for ld in loaders]
    assert not set(per[0]) & set(per[1]) or len(loaders[0].batch_sampler.batches) % 2
    assert set(per[0]) | set(per[1]) == set(meta)


def test_collator_pads():
    items = [("x", torch.ones(5), torch.tensor([3, 4])), None, ("y", torch.ones(8), torch.tensor([5, 6, 7]))]
    out = collate(items)
    assert out["keys"] == ["x", "y"]
    assert out["speech"].shape == (2, 8) and out["speech_lengths"].tolist() == [5, 8]
    assert out["text"].tolist() == [[3, 4, -1], [5, 6, 7]] and out["text_lengths"].tolist() == [2, 3]


def test_small_loader_synth_fixture(synth_data_dir):
    tok = Tokenizer(
        ["<blank>", "<s>", "</s>"]
        + list("今天是二零四年三月五日电话号码一八下午点十分开会共九元角明早上出发我的六")
        + ["<unk>"]
    )
    loader = build_dataloader(
        synth_data_dir, tok, FRONTEND, opts(batch_bins=400), train=True, seed=SEED, max_bad_ratio=0.0
    )
    keys = all_keys(loader)
    assert sorted(keys) == [f"utt0{i}" for i in range(1, 7)]


# -- shards / large ------------------------------------------------------------------------------


def test_make_shards_round_trip(good_dir, tmp_path, tok):
    d, meta = good_dir
    out = str(tmp_path / "shards")
    summary = make_shards(d, out, utts_per_shard=6)
    assert summary.num_shards == 4 and summary.written == 20
    pairs = read_data_list(out)
    assert len(pairs) == 4
    with open(os.path.join(out, "data.list"), encoding="utf-8") as f:
        assert f.readline().split() == ["split/00001/wav.scp", "split/00001/text"]
    small_kept, _ = scan_training_data(d, tok, opts())
    rep = scan_shards(out, tok, opts(dataset_type="large", batch_bins=5000))
    assert rep.kept == len(small_kept) == 20
    o = opts(dataset_type="large", batch_bins=5000, buffer_size=4, sort_size=3)
    loader = build_dataloader(out, tok, FRONTEND, o, train=True, seed=SEED)
    keys = []
    for batch in loader:
        keys += batch["keys"]
        assert len(batch["keys"]) * max(meta[k][0] for k in batch["keys"]) <= 5000
        assert batch["speech"].shape[2] == 560
        for j, k in enumerate(batch["keys"]):
            assert batch["text"][j, : int(batch["text_lengths"][j])].tolist() == tok.encode(meta[k][1])
    assert sorted(keys) == sorted(u.key for u in small_kept)
    # deterministic per seed + epoch, different across epochs
    assert all_keys(loader) == keys
    set_epoch(loader, 1)
    assert all_keys(loader) != keys


def test_make_shards_bad_utts_and_threshold(tmp_path, tok):
    utts = [(f"ok{i}", 600, "a b") for i in range(6)] + [("gone", None, "a"), ("tiny", 10, "a")]
    d = make_dir(tmp_path / "d", utts)
    out = str(tmp_path / "s")
    summary = make_shards(d, out, utts_per_shard=4)
    assert summary.written == 7 and summary.report.counts == {"data_dir": 1}
    assert "gone" in open(os.path.join(out, "bad_utts.txt"), encoding="utf-8").read()
    rep = scan_shards(out, tok, opts(dataset_type="large", batch_bins=5000), max_bad_ratio=0.5)
    assert rep.total == 8 and rep.kept == 6 and rep.counts == {"data_dir": 1, "too_short": 1}
    with pytest.raises(DataDirError, match="2 of 8"):
        scan_shards(out, tok, opts(dataset_type="large", batch_bins=5000), max_bad_ratio=0.2)
    with pytest.raises(DataDirError, match="already holds shards"):
        make_shards(d, out, utts_per_shard=4)


def test_ensure_shards_reuses_or_rebuilds(good_dir, tmp_path):
    d, _ = good_dir
    out = str(tmp_path / "s")
    lst = ensure_shards(d, out, 5)
    m1 = os.stat(lst).st_mtime_ns
    assert ensure_shards(d, out, 5) == lst and os.stat(lst).st_mtime_ns == m1
    ensure_shards(d, out, 7)  # other shard size: rebuilt
    assert len(read_data_list(out)) == 3


def test_shuffle_buffer_bounded_and_rank_worker_split(good_dir, tmp_path, tok):
    d, meta = good_dir
    out = str(tmp_path / "s")
    make_shards(d, out, utts_per_shard=3)  # 7 shards
    o = opts(dataset_type="large", batch_bins=100000, buffer_size=4, sort_size=1)
    st = ShardStream(out, tok, o, seed=SEED)
    keys = [k for b in st for k, _, _ in b]
    assert sorted(keys) == sorted(meta)
    assert st.last_stats["max_buffered"] == 4  # never more than buffer_size records
    o_ns = opts(dataset_type="large", batch_bins=100000, shuffle=False, sort_size=1)
    plain = [k for b in ShardStream(out, tok, o_ns, seed=SEED) for k, _, _ in b]
    assert plain == sorted(meta) and keys != plain
    # ranks x workers partition the shards
    seen = []
    for rank in range(2):
        s = ShardStream(out, tok, o, seed=SEED, rank=rank, world_size=2)
        for wid in range(2):
            seen += s.my_shards(wid, 2)
    assert sorted(seen) == sorted(read_data_list(out))
    with pytest.raises(DataDirError, match="shard"):
        ShardStream(out, tok, o, seed=SEED, rank=0, world_size=8)


def test_large_loader_workers(good_dir, tmp_path, tok):
    d, meta = good_dir
    out = str(tmp_path / "s")
    make_shards(d, out, utts_per_shard=5)
    o = opts(dataset_type="large", batch_bins=4000, num_workers=2, buffer_size=3, sort_size=2)
    keys = all_keys(build_dataloader(out, tok, FRONTEND, o, train=True, seed=SEED))
    assert sorted(keys) == sorted(meta)


@pytest.mark.slow  # three tool subprocesses that import torch
def test_make_shards_cli(good_dir, tmp_path):
    d, _ = good_dir
    out = str(tmp_path / "cli")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "make_shards.py"), d, out, "--utts_per_shard", "8"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "3 shard(s), 20 utterance(s)" in r.stdout
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cmd[:2] + [str(tmp_path / "nope"), out + "2"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "does not exist" in r.stderr
