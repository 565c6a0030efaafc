"""The training loop: scheduler formula, exact resume, Ctrl-C, kill -9, NaN skips, disk full, torchrun DDP.

Most tests use a toy model (mean-pooled features -> linear classifier, with dropout) so that the
loop itself is tested in seconds; tests/test_finetune.py-style end-to-end runs with a tiny
Paraformer live at the bottom of this file. This file is also a script: ``python tests/test_trainer.py
job --out DIR ...`` runs one toy training job (used under torchrun and for the kill -9 test).
"""

import argparse
import logging
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from funasr_lite import checkpoint as ckpt  # noqa: E402
from funasr_lite.distributed import DistInfo, cleanup_distributed, setup_distributed  # noqa: E402
from funasr_lite.errors import ConfigError  # noqa: E402
from funasr_lite.scheduler import WarmupLR, build_optimizer, build_scheduler, warmup_lr_value  # noqa: E402
from funasr_lite.trainer import (DiskFullError, Trainer, TrainerOptions, TrainingDiverged,  # noqa: E402
                                 TrainingInterrupted)

DIM, VOCAB = 6, 5


# ------------------------------------------------------------------------------------------ toy setup
class ToyModel(nn.Module):
    """speech (B,T,D) -> masked mean -> dropout -> linear; the target is the first token."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(DIM, VOCAB)
        self.drop = nn.Dropout(0.2)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, speech, speech_lengths, text, text_lengths):
        mask = (torch.arange(speech.shape[1])[None, :] < speech_lengths[:, None])[..., None]
        pooled = (speech * mask).sum(1) / speech_lengths[:, None]
        logits = self.proj(self.drop(pooled))
        loss = F.cross_entropy(logits, text[:, 0])
        acc = (logits.argmax(-1) == text[:, 0]).float().mean()
        return loss, {"loss": loss.detach(), "acc": acc.detach()}


class ToyData(torch.utils.data.Dataset):
    """Utterance i: label i % VOCAB, features around the label; ``nan`` indices give NaN features;
    ``on_item`` is called with the index (used to send signals / slow down)."""

    def __init__(self, n=24, seed=0, nan=(), on_item=None):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            t = 3 + i % 4
            label = i % VOCAB
            x = torch.randn(t, DIM, generator=g) * 0.5
            x[:, label % DIM] += 1.0
            if i in nan:
                x[:] = float("nan")
            self.items.append((f"utt{i:03d}", x, torch.tensor([label, (label + 1) % VOCAB])))
        self.on_item = on_item

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if self.on_item is not None:
            self.on_item(i)
        return self.items[i]


def collate(items):
    t = max(x.shape[0] for _, x, _ in items)
    speech = torch.zeros(len(items), t, DIM)
    for b, (_, x, _) in enumerate(items):
        speech[b, :x.shape[0]] = x
    return {"keys": [k for k, _, _ in items], "speech": speech,
            "speech_lengths": torch.tensor([x.shape[0] for _, x, _ in items]),
            "text": torch.stack([y for _, _, y in items]), "text_lengths": torch.full((len(items),), 2)}


class ToyTokenizer:
    def decode(self, ids):
        words = [chr(ord("a") + int(i)) for i in ids]
        return "".join(words), words


def toy_decode(model, speech, lengths):
    mask = (torch.arange(speech.shape[1], device=speech.device)[None, :] < lengths[:, None])[..., None]
    pooled = (speech * mask).sum(1) / lengths[:, None]
    best = model.proj(pooled).argmax(-1)
    return [[int(b), (int(b) + 1) % VOCAB] for b in best]


def make_trainer(out, max_epoch=2, dist=None, train=None, accum_grad=1, decode=True, **opts):
    dist = dist or DistInfo()
    torch.manual_seed(0)
    model = ToyModel()
    optim = build_optimizer("adam", model.parameters(), {"lr": 0.05})
    sched = build_scheduler("warmuplr", optim, {"warmup_steps": 5})
    data = train if train is not None else ToyData()
    if dist.distributed:
        sampler = torch.utils.data.DistributedSampler(data, dist.world_size, dist.rank, shuffle=False)
        loader = torch.utils.data.DataLoader(data, batch_size=3, sampler=sampler, collate_fn=collate)
    else:
        loader = torch.utils.data.DataLoader(data, batch_size=3, shuffle=True, collate_fn=collate)
    dev = torch.utils.data.DataLoader(ToyData(n=10, seed=1), batch_size=4, collate_fn=collate)
    options = TrainerOptions(output_dir=str(out), max_epoch=max_epoch, accum_grad=accum_grad,
                             keep_nbest_models=opts.pop("keep_nbest_models", [1, 2]), log_interval=2,
                             progress_bar=False, **opts)
    os.makedirs(out, exist_ok=True)
    return Trainer(model, optim, sched, loader, dev, options, dist, decode_fn=toy_decode if decode else None,
                   tokenizer=ToyTokenizer() if decode else None)


def run(out, max_epoch=2, **kw):
    t = make_trainer(out, max_epoch, **kw)
    t.resume()
    return t, t.fit()


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ scheduler
def test_warmup_formula_and_resume():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2e-3)
    sched = WarmupLR(opt, warmup_steps=7)
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expect = [2e-3 * 7 ** 0.5 * min(s ** -0.5, s * 7 ** -1.5) for s in range(1, 31)]
    assert lrs == pytest.approx(expect, rel=1e-12)
    assert max(lrs) == pytest.approx(2e-3) and lrs.index(max(lrs)) == 6
    # resume: a fresh scheduler + load_state_dict continues the same sequence
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2e-3)
    s2 = WarmupLR(opt2, warmup_steps=7)
    s2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(warmup_lr_value(2e-3, 31, 7))
    assert s2.get_last_lr() == sched.get_last_lr()


def test_warmup_matches_funasr():
    pytest.importorskip("funasr")
    from funasr.schedulers.warmup_lr import WarmupLR as FunasrWarmupLR

    ours_opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=5e-4)
    theirs_opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=5e-4)
    ours, theirs = WarmupLR(ours_opt, 300), FunasrWarmupLR(theirs_opt, 300)
    for _ in range(1000):
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(theirs_opt.param_groups[0]["lr"], rel=1e-12)
        ours_opt.step(), theirs_opt.step()
        ours.step(), theirs.step()


def test_build_optimizer_and_scheduler_validate():
    params = [nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer("AdamW", params, {"lr": 1e-3, "betas": [0.9, 0.98]}), torch.optim.AdamW)
    assert build_optimizer("sgd", params, {"lr": 0.1}, lr=0.5).param_groups[0]["lr"] == 0.5
    with pytest.raises(ConfigError, match="unknown optimizer"):
        build_optimizer("lamb", params, {"lr": 1e-3})
    with pytest.raises(ConfigError, match="lr is not set"):
        build_optimizer("adam", params, {})
    with pytest.raises(ConfigError, match="optim_conf"):
        build_optimizer("adam", params, {"lr": 1e-3, "momentum": 0.9})
    opt = build_optimizer("adam", params, {"lr": 1e-3})
    none = build_scheduler("none", opt, {})
    for _ in range(3):
        opt.step(), none.step()
    assert opt.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="warmup_steps"):
        build_scheduler("warmuplr", opt, {"warmup_steps": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        build_scheduler("warmuplr", opt, {"warmup_step": 10})
    with pytest.raises(ConfigError, match="unknown scheduler"):
        build_scheduler("noam", opt, {})


# ------------------------------------------------------------------------------------ loop and outputs
def test_outputs_layout_and_sidecars(tmp_path):
    out = tmp_path / "exp"
    t, res = run(out, max_epoch=3)
    files = set(os.listdir(out))
    for e in (1, 2, 3):
        assert f"{e}epoch.yaml" in files
    for name in ("checkpoint.pb", "valid.acc.best.pb", "valid.acc.ave_1best.pb", "valid.acc.ave_2best.pb",
                 "valid.acc.ave.pb", "valid.cer.best.pb", "valid.cer.ave_2best.pb", "valid.cer.ave.pb",
                 "training_curves.png", "tensorboard"):
        assert name in files, name
    assert not any(os.path.islink(out / f) for f in files)
    assert not any(f.endswith(".tmp") for f in files)
    kept = ckpt.kept_epochs(res.records, ["acc", "cer"], 2)
    assert {f for f in files if f.endswith("epoch.pb")} == {f"{e}epoch.pb" for e in kept}
    side = yaml.safe_load(open(out / "3epoch.yaml"))
    for key in ("epoch", "step", "lr", "train_loss", "dev_loss", "dev_acc", "dev_cer", "epoch_time", "wall_time",
                "throughput"):
        assert side[key] is not None, key
    assert side["step"] == 3 * 8 and 0 <= side["dev_cer"] <= 100
    assert os.listdir(out / "tensorboard")
    assert res.step == 24 and sorted(res.best_epochs) == ["acc", "cer"]
    # the model learned something: the toy task is easy
    assert res.records[-1].dev_acc > 0.5 and res.records[-1].dev_cer < 60


def test_resume_after_epoch_is_exact(tmp_path):
    _, straight = run(tmp_path / "a", max_epoch=2)
    a = torch.load(tmp_path / "a" / "checkpoint.pb", weights_only=True)
    run(tmp_path / "b", max_epoch=1)
    t, resumed = run(tmp_path / "b", max_epoch=2)  # same command, more epochs: resumes from checkpoint.pb
    b = torch.load(tmp_path / "b" / "checkpoint.pb", weights_only=True)
    assert same_state(a["model"], b["model"])
    assert a["step"] == b["step"] == 16
    assert torch.equal(a["optimizer"]["state"][0]["exp_avg"], b["optimizer"]["state"][0]["exp_avg"])
    assert [r.dev_loss for r in straight.records] == [r.dev_loss for r in resumed.records]
    assert same_state(torch.load(tmp_path / "a" / "valid.acc.ave.pb", weights_only=True),
                      torch.load(tmp_path / "b" / "valid.acc.ave.pb", weights_only=True))
    # re-running a finished run only rewrites the averages
    t, again = run(tmp_path / "b", max_epoch=2)
    assert again.step == 16 and len(again.records) == 2


def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(tmp_path):
    _, straight = run(tmp_path / "a", max_epoch=2, accum_grad=2)
    calls = {"n": 0}

    def on_item(i):
        calls["n"] += 1
        if calls["n"] == 24 + 7:  # epoch 2, third batch being collated
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match="Re-run the same command"):
        run(tmp_path / "b", max_epoch=2, accum_grad=2, train=ToyData(on_item=on_item))
    state = ckpt.load_resume_state(str(tmp_path / "b"))
    assert state["epoch"] == 1 and state["batches_done"] == 4  # a whole update window of 2 batches
    _, resumed = run(tmp_path / "b", max_epoch=2, accum_grad=2)
    a = torch.load(tmp_path / "a" / "checkpoint.pb", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pb", weights_only=True)
    assert same_state(a["model"], b["model"]) and a["step"] == b["step"]
    assert resumed.records[-1].train_loss == pytest.approx(straight.records[-1].train_loss, rel=1e-9)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nan_loss_is_skipped_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        t, res = run(tmp_path, max_epoch=1, train=ToyData(nan={4}), decode=False)
    assert "non-finite loss, step skipped" in caplog.text
    assert res.records[0].skipped_steps == 1 and res.step == 7
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_repeated_nan_stops_with_a_clear_message(tmp_path):
    with pytest.raises(TrainingDiverged, match="3 consecutive steps had a NaN/Inf loss"):
        run(tmp_path, max_epoch=2, train=ToyData(nan=set(range(24))), max_nonfinite_steps=3, decode=False)


def test_disk_full_stops_cleanly_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    real = ckpt.atomic_torch_save

    def full(obj, path):
        if os.path.basename(path).startswith("2epoch"):
            raise OSError(28, "No space left on device", path)
        real(obj, path)

    monkeypatch.setattr(ckpt, "atomic_torch_save", full)
    with pytest.raises(DiskFullError, match="no space left.*checkpoint.pb \\(epoch 1\\)"):
        run(tmp_path, max_epoch=2)
    state = ckpt.load_resume_state(str(tmp_path))
    assert state["epoch"] == 1
    monkeypatch.setattr(ckpt, "atomic_torch_save", real)
    _, res = run(tmp_path, max_epoch=2)  # space freed: the same command finishes
    assert [r.epoch for r in res.records] == [1, 2]


def test_bad_resume_state_is_an_error_not_a_fresh_start(tmp_path):
    run(tmp_path, max_epoch=1)
    with open(tmp_path / "checkpoint.pb", "r+b") as f:
        f.truncate(100)
    with pytest.raises(ckpt.CheckpointError, match="checkpoint.pb"):
        run(tmp_path, max_epoch=2)


# ------------------------------------------------------------------------------ subprocess: kill, DDP
def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_kill9_mid_epoch_then_rerun_completes_identically(tmp_path):
    run(tmp_path / "ref", max_epoch=3)
    out = tmp_path / "killed"
    cmd = [sys.executable, os.path.abspath(__file__), "job", "--out", str(out), "--epochs", "3", "--slow", "0.02"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    progress = tmp_path / "killed.progress"
    while time.time() < deadline and proc.poll() is None:
        if progress.exists() and progress.read_text().strip() and int(progress.read_text()) >= 24 + 10:
            break  # the 11th item of epoch 2 is being loaded: mid-epoch
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert ckpt.load_resume_state(str(out))["epoch"] == 1
    done = subprocess.run(cmd[:-2], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RESUMING" in done.stderr
    a = torch.load(tmp_path / "ref" / "checkpoint.pb", weights_only=True)
    b = torch.load(out / "checkpoint.pb", weights_only=True)
    assert same_state(a["model"], b["model"])
    assert sorted(os.listdir(tmp_path / "ref")) == sorted(f for f in os.listdir(out) if not f.startswith("rank"))


def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.abspath(__file__), "job", "--out", str(out), "--epochs", "2", "--nan", "19", "--accum", "2"]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    assert same_state(r0, r1)  # replicas stayed in sync (NaN skip agreed on both ranks)
    assert same_state(r0, torch.load(out / "checkpoint.pb", weights_only=True)["model"])
    assert (out / "valid.acc.ave.pb").exists() and (out / "2epoch.yaml").exists()
    assert "non-finite loss" in done.stderr


def _job(argv):
    """One toy training run (single process or under torchrun); writes rank<r>.pt with the final weights."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--slow", type=float, default=0.0, help="seconds per item; also writes OUT.progress")
    ap.add_argument("--nan", type=int, nargs="*", default=[])
    ap.add_argument("--accum", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    torch.set_num_threads(1)
    dist = setup_distributed("cpu")
    seen = [0]

    def slow(i):
        time.sleep(args.slow)
        seen[0] += 1
        with open(args.out + ".progress", "w") as f:
            f.write(str(seen[0]))

    on_item = slow if args.slow else None
    try:
        t = make_trainer(args.out, args.epochs, dist=dist, accum_grad=args.accum,
                         train=ToyData(nan=set(args.nan), on_item=on_item))
        t.resume()
        t.fit()
        torch.save(t.model.state_dict(), os.path.join(args.out, f"rank{dist.rank}.pt"))
    finally:
        cleanup_distributed(dist)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "job":
        _job(sys.argv[2:])
    else:
        sys.exit(pytest.main([__file__, "-q"]))
