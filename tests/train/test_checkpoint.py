"""Checkpoint outputs: averaging math, ranking/pruning safety, atomic writes, resume state, plots, the CLI."""

import io
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from funasr_lite.errors import CheckpointError
from funasr_lite.train import checkpoint as ckpt
from funasr_lite.train.plot import CURVES_NAME, plot_training_curves

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sd(seed: int):
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(3, 4, generator=g),
        "half": torch.randn(5, generator=g).half(),
        "bn.num_batches_tracked": torch.tensor(seed * 10, dtype=torch.long),
        "flag": torch.tensor([True, False]),
    }


def _record(epoch, acc=None, cer=None, loss=None):
    return ckpt.EpochRecord(epoch=epoch, step=epoch * 10, lr=1e-3, dev_acc=acc, dev_cer=cer, dev_loss=loss)


def _average(tmp_path, sds):
    """ckpt.average_checkpoint_files over ``sds`` saved as files (best first)."""
    tmp_path.mkdir(exist_ok=True)
    paths = []
    for i, sd in enumerate(sds):
        paths.append(str(tmp_path / f"avg_in{i}.pb"))
        torch.save(sd, paths[-1])
    return ckpt.average_checkpoint_files(paths)


def _write_epochs(out, metrics):
    """metrics: list of (acc, cer) per epoch (1-based); writes {N}epoch.pb + sidecar; returns records."""
    records = []
    for i, (acc, cer) in enumerate(metrics, start=1):
        r = _record(i, acc, cer)
        ckpt.write_epoch_checkpoint(str(out), r, _sd(i))
        records.append(r)
    return records


# ------------------------------------------------------------------------------------------- averaging
def test_average_floats_mean_and_integers_from_best(tmp_path):
    sds = [_sd(s) for s in (1, 2, 3)]
    avg = _average(tmp_path, sds)
    expect_w = (sds[0]["w"].double() + sds[1]["w"].double() + sds[2]["w"].double()) / 3
    assert torch.allclose(avg["w"].double(), expect_w, atol=1e-7)
    assert avg["w"].dtype == torch.float32
    assert avg["half"].dtype == torch.float16
    expect_h = ((sds[0]["half"].double() + sds[1]["half"].double() + sds[2]["half"].double()) / 3).half()
    assert torch.equal(avg["half"], expect_h)
    # integer and bool buffers: taken from the first (best-ranked) checkpoint, never summed
    assert avg["bn.num_batches_tracked"].item() == 10
    assert avg["bn.num_batches_tracked"].dtype == torch.long
    assert torch.equal(avg["flag"], sds[0]["flag"])


def test_average_matches_funasr_on_floats_and_differs_on_ints(tmp_path):
    pytest.importorskip("funasr")
    from funasr.train_utils.average_nbest_models import average_checkpoints

    sds = [_sd(s) for s in (4, 5)]
    for sd in sds:
        del sd["flag"]  # FunASR's mean() crashes on bool buffers
    for i, sd in enumerate(sds):
        torch.save({"state_dict": sd}, tmp_path / f"model.pt.ep{i + 1}")
    out = average_checkpoints(str(tmp_path), last_n=2)  # no ranking metadata: averages the latest files
    theirs = torch.load(out, weights_only=True)["state_dict"]
    ours = _average(tmp_path, sds)
    assert torch.allclose(ours["w"], theirs["w"], atol=1e-6)
    # FunASR sums integer buffers (a counter doubles); we keep the best checkpoint's value
    assert theirs["bn.num_batches_tracked"].item() == 40 + 50
    assert ours["bn.num_batches_tracked"].item() == 40


def test_average_files_streaming_equals_in_memory(tmp_path):
    sds = [_sd(s) for s in (1, 2, 3, 4)]
    a = _average(tmp_path, sds)
    assert a.keys() == sds[0].keys()
    for k in ("w", "half"):  # the streamed float64 sum equals the mean computed in memory
        assert torch.equal(a[k], (sum(sd[k].double() for sd in sds) / 4).to(sds[0][k].dtype)), k
    for k in ("bn.num_batches_tracked", "flag"):
        assert torch.equal(a[k], sds[0][k]), k


def test_average_rejects_mismatched_checkpoints(tmp_path):
    a, b = _sd(1), _sd(2)
    b["w"] = torch.zeros(2, 2)
    with pytest.raises(CheckpointError, match="shape"):
        _average(tmp_path, [a, b])
    c = _sd(3)
    del c["flag"]
    with pytest.raises(CheckpointError, match="keys differ"):
        _average(tmp_path, [a, c])
    with pytest.raises(CheckpointError):
        ckpt.average_checkpoint_files([])


# ----------------------------------------------------------------------------------- ranking / pruning
def test_rank_records_order_and_ties():
    recs = [_record(1, 0.5, 9.0), _record(2, 0.7, 3.0), _record(3, 0.7, 5.0), _record(4, None, float("nan"))]
    assert [r.epoch for r in ckpt.rank_records(recs, "acc")] == [3, 2, 1]  # tie 0.7: later epoch first
    assert [r.epoch for r in ckpt.rank_records(recs, "cer")] == [2, 3, 1]  # NaN / None never ranked
    with pytest.raises(ValueError):
        ckpt.rank_records(recs, "wer")


@pytest.mark.parametrize("seed", range(6))
def test_pruning_never_deletes_a_file_that_averaging_needs(tmp_path, seed):
    rnd = random.Random(seed)
    keep_nbest = [1, 2, 3]
    criteria = ["acc", "cer"]
    records = []
    for epoch in range(1, 13):
        # metrics with plateaus and ties, sometimes missing
        acc = None if rnd.random() < 0.1 else round(rnd.choice([0.5, 0.6, 0.6, 0.7]) + epoch * 0.01 * rnd.random(), 2)
        cer = None if rnd.random() < 0.1 else rnd.choice([10.0, 12.0, 12.0, 8.0])
        r = _record(epoch, acc, cer)
        ckpt.write_epoch_checkpoint(str(tmp_path), r, _sd(epoch))
        records.append(r)
        ckpt.prune_epoch_files(str(tmp_path), records, criteria, max(keep_nbest))
        # invariant after every epoch: the current top-K of each criterion is on disk
        for m in criteria:
            for rr in ckpt.rank_records(records, m)[: max(keep_nbest)]:
                assert (tmp_path / ckpt.epoch_ckpt_name(rr.epoch)).exists(), (epoch, m, rr.epoch)
    for m in criteria:
        ranked = ckpt.rank_records(records, m)
        written = ckpt.write_averages(str(tmp_path), records, m, keep_nbest)
        for n, path in written.items():
            side = yaml.safe_load(open(os.path.splitext(path)[0] + ".yaml"))
            assert side["epochs"] == [r.epoch for r in ranked[:n]]  # exactly the n best, none missing
            expect = _average(tmp_path / "avg", [_sd(e) for e in side["epochs"]])
            got = torch.load(path, weights_only=True)
            assert torch.equal(got["w"], expect["w"])
    # sidecars of pruned epochs stay (the curves need them); only .pb files were deleted
    assert len(ckpt.read_sidecars(str(tmp_path))) == 12
    kept = ckpt.kept_epochs(records, criteria, max(keep_nbest))
    on_disk = {int(f[: -len("epoch.pb")]) for f in os.listdir(tmp_path) if f.endswith("epoch.pb") and f[0].isdigit()}
    assert on_disk == kept


def test_fewer_epochs_than_n_uses_all_and_says_so(tmp_path, caplog):
    records = _write_epochs(tmp_path, [(0.5, 20.0), (0.6, 15.0), (0.55, 18.0)])
    with caplog.at_level("WARNING"):
        written = ckpt.write_averages(str(tmp_path), records, "acc", [2, 10])
    assert set(written) == {2, 10}
    side = yaml.safe_load(open(tmp_path / "valid.acc.ave_10best.yaml"))
    assert side["n_requested"] == 10 and side["n_used"] == 3 and side["epochs"] == [2, 3, 1]
    assert "only 3 epoch" in side["note"]
    assert "only 3 epoch" in caplog.text
    side2 = yaml.safe_load(open(tmp_path / "valid.acc.ave_2best.yaml"))
    assert side2["n_used"] == 2 and side2["note"] == ""
    # valid.acc.ave.pb = the largest n
    ave = torch.load(tmp_path / "valid.acc.ave.pb", weights_only=True)
    ten = torch.load(tmp_path / "valid.acc.ave_10best.pb", weights_only=True)
    assert torch.equal(ave["w"], ten["w"])
    assert yaml.safe_load(open(tmp_path / "valid.acc.ave.yaml"))["n_requested"] == 10


def test_best_files_are_real_files_not_symlinks(tmp_path):
    records = _write_epochs(tmp_path, [(0.5, 20.0), (0.8, 25.0), (0.6, 10.0)])
    assert ckpt.update_best(str(tmp_path), records, "acc").epoch == 2
    assert ckpt.update_best(str(tmp_path), records, "cer").epoch == 3
    ckpt.write_averages(str(tmp_path), records, "acc", [1, 2])
    for name in os.listdir(tmp_path):
        assert not os.path.islink(tmp_path / name), name
    best = torch.load(tmp_path / "valid.acc.best.pb", weights_only=True)
    assert torch.equal(best["w"], _sd(2)["w"])
    assert yaml.safe_load(open(tmp_path / "valid.cer.best.yaml"))["epoch"] == 3
    one = torch.load(tmp_path / "valid.acc.ave_1best.pb", weights_only=True)
    assert torch.equal(one["w"], _sd(2)["w"])
    # the best file survives pruning of its epoch file (hard link or copy, never a dangling link)
    os.unlink(tmp_path / "2epoch.pb")
    assert torch.equal(torch.load(tmp_path / "valid.acc.best.pb", weights_only=True)["w"], _sd(2)["w"])


def test_epoch_checkpoint_is_plain_state_dict_with_sidecar(tmp_path):
    r = ckpt.EpochRecord(
        epoch=3,
        step=42,
        lr=1e-4,
        train_loss=1.5,
        dev_loss=1.2,
        dev_acc=0.8,
        dev_cer=12.5,
        epoch_time=3.2,
        wall_time=9.9,
    )
    path = ckpt.write_epoch_checkpoint(str(tmp_path), r, _sd(1))
    assert os.path.basename(path) == "3epoch.pb"
    sd = torch.load(path, weights_only=True)
    assert set(sd) == set(_sd(1))
    (side,) = ckpt.read_sidecars(str(tmp_path))
    assert side == r
    assert side.checkpoint == "3epoch.pb"
    (tmp_path / "4epoch.yaml").write_text("[1, 2")
    with pytest.raises(CheckpointError, match="4epoch.yaml"):
        ckpt.read_sidecars(str(tmp_path))


# ------------------------------------------------------------------------------------------ atomicity
def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    r = _record(1, 0.5, 10.0)
    ckpt.write_epoch_checkpoint(str(tmp_path), r, _sd(1))
    before = (tmp_path / "1epoch.pb").read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        ckpt.write_epoch_checkpoint(str(tmp_path), r, _sd(2))
    with pytest.raises(OSError):
        ckpt.save_resume_state(str(tmp_path), {"model": _sd(2)})
    monkeypatch.undo()
    assert (tmp_path / "1epoch.pb").read_bytes() == before
    assert not (tmp_path / ckpt.RESUME_NAME).exists()
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_remove_stale_temp_files(tmp_path):
    (tmp_path / ".checkpoint.pb.abc123.tmp").write_bytes(b"half")
    (tmp_path / "3epoch.pb").write_bytes(b"x")
    assert ckpt.remove_stale_temp_files(str(tmp_path)) == [".checkpoint.pb.abc123.tmp"]
    assert os.listdir(tmp_path) == ["3epoch.pb"]


# --------------------------------------------------------------------------------------- resume state
def test_resume_state_roundtrip_weights_only_and_rng(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.random(), np.random.randn(), torch.randn(1), np.random.randn()  # state mid-stream
    state = {
        "model": _sd(1),
        "rng": ckpt.capture_rng_state(),
        "epoch": 2,
        "step": 7,
        "records": [_record(1, 0.5).to_dict()],
    }
    expect = (random.random(), np.random.randn(3).tolist(), torch.randn(3).tolist())
    ckpt.save_resume_state(str(tmp_path), state)
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    loaded = ckpt.load_resume_state(str(tmp_path))  # weights_only=True inside
    ckpt.restore_rng_state(loaded["rng"])
    assert (random.random(), np.random.randn(3).tolist(), torch.randn(3).tolist()) == expect
    assert loaded["epoch"] == 2 and loaded["records"][0]["dev_acc"] == 0.5
    assert torch.equal(loaded["model"]["w"], _sd(1)["w"])
    torch.load(tmp_path / ckpt.RESUME_NAME, weights_only=True)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_load_resume_state_refuses_bad_files(tmp_path):
    assert ckpt.load_resume_state(str(tmp_path)) is None
    path = tmp_path / ckpt.RESUME_NAME
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot read the resume state"):
        ckpt.load_resume_state(str(tmp_path))
    buf = io.BytesIO()
    torch.save({"format": ckpt.RESUME_FORMAT, "x": _Evil()}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError):
        ckpt.load_resume_state(str(tmp_path))
    torch.save({"model": _sd(1)}, path)  # a plain state_dict is not a resume state
    with pytest.raises(CheckpointError, match="not a funasr-lite resume state"):
        ckpt.load_resume_state(str(tmp_path))


# ------------------------------------------------------------------------------------- plot and tool
def test_plot_training_curves_png(tmp_path):
    recs = []
    for e in range(1, 4):
        r = ckpt.EpochRecord(
            epoch=e,
            step=e * 5,
            lr=1e-3 * e,
            train_loss=3.0 / e,
            dev_loss=3.5 / e,
            dev_acc=0.3 * e,
            dev_cer=None if e == 1 else 50.0 / e,
        )
        ckpt.write_epoch_checkpoint(str(tmp_path), r, _sd(e))
        recs.append(r)
    path = plot_training_curves(str(tmp_path), ckpt.read_sidecars(str(tmp_path)))
    assert path == str(tmp_path / CURVES_NAME)
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    assert plot_training_curves(str(tmp_path / "nope"), records=[]) is None


@pytest.mark.slow  # tool subprocesses that import torch
def test_average_checkpoints_tool(tmp_path):
    _write_epochs(tmp_path, [(0.5, 20.0), (0.9, 30.0), (0.7, 10.0), (0.8, 12.0)])
    os.unlink(tmp_path / "4epoch.pb")  # pruned earlier: ranked by its sidecar but must be skipped
    out = tmp_path / "avg_cer2.pb"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "average_checkpoints.py"),
            "--dir",
            str(tmp_path),
            "--metric",
            "cer",
            "--num",
            "2",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    side = yaml.safe_load(open(tmp_path / "avg_cer2.yaml"))
    assert side["epochs"] == [3, 1]  # epoch 4 (cer 12) has no file any more
    got = torch.load(out, weights_only=True)
    assert torch.allclose(got["w"], _average(tmp_path, [_sd(3), _sd(1)])["w"])
    assert "4epoch.pb" in proc.stderr + proc.stdout
    bad = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "average_checkpoints.py"),
            "--dir",
            str(tmp_path / "missing"),
            "--num",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
