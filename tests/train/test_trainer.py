"""The training loop: scheduler formula, exact resume, Ctrl-C, kill -9, NaN skips, disk full, torchrun DDP.

Most tests use a toy model (mean-pooled features -> linear classifier, with dropout) so that the
loop itself is tested in seconds; end-to-end finetune runs of a tiny Paraformer on synthesized
speech (funasr_lite.train.finetune) are at the bottom of this file. This file is also a script: ``python tests/test_trainer.py
job --out DIR ...`` runs one toy training job (used under torchrun) and ``finetune-job ...`` one
tiny-Paraformer finetune (used under torchrun and for the kill -9 test).
"""

import argparse
import logging
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from funasr_lite.errors import ConfigError  # noqa: E402
from funasr_lite.train import checkpoint as ckpt  # noqa: E402
from funasr_lite.train.distributed import DistInfo, cleanup_distributed, setup_distributed  # noqa: E402
from funasr_lite.train.faults import DiskFullError, TrainingDiverged, TrainingInterrupted  # noqa: E402
from funasr_lite.train.options import TrainConf  # noqa: E402
from funasr_lite.train.scheduler import WarmupLR, build_optimizer, build_scheduler, warmup_lr_value  # noqa: E402
from funasr_lite.train.trainer import Trainer  # noqa: E402

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
        speech[b, : x.shape[0]] = x
    return {
        "keys": [k for k, _, _ in items],
        "speech": speech,
        "speech_lengths": torch.tensor([x.shape[0] for _, x, _ in items]),
        "text": torch.stack([y for _, _, y in items]),
        "text_lengths": torch.full((len(items),), 2),
    }


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
    conf = TrainConf(
        max_epoch=max_epoch,
        accum_grad=accum_grad,
        grad_clip=5.0,
        log_interval=opts.pop("log_interval", 2),
        seed=0,
        keep_nbest_models=opts.pop("keep_nbest_models", [1, 2]),
        max_nan_steps=opts.pop("max_nan_steps", 10),
    )
    os.makedirs(out, exist_ok=True)
    return Trainer(
        model,
        optim,
        sched,
        loader,
        dev,
        conf,
        dist,
        output_dir=str(out),
        best_model_criterion=["acc", "cer"],
        frame_seconds=0.06,
        decode_fn=toy_decode if decode else None,
        tokenizer=ToyTokenizer() if decode else None,
        progress_bar=opts.pop("progress_bar", False),
        tensorboard=True,
        plot=True,
        **opts,
    )


def run(out, max_epoch=2, **kw):
    t = make_trainer(out, max_epoch, **kw)
    t.resume()
    return t, t.fit()


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def max_diff(a, b):
    """Largest absolute difference between two state_dicts with the same keys (inf if keys differ)."""
    if a.keys() != b.keys():
        return float("inf")
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


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
    expect = [2e-3 * 7**0.5 * min(s**-0.5, s * 7**-1.5) for s in range(1, 31)]
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
    assert build_optimizer("sgd", params, {"lr": 0.5}).param_groups[0]["lr"] == 0.5
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
    for name in (
        "checkpoint.pb",
        "valid.acc.best.pb",
        "valid.acc.ave_1best.pb",
        "valid.acc.ave_2best.pb",
        "valid.acc.ave.pb",
        "valid.cer.best.pb",
        "valid.cer.ave_2best.pb",
        "valid.cer.ave.pb",
        "training_curves.png",
        "tensorboard",
    ):
        assert name in files, name
    assert not any(os.path.islink(out / f) for f in files)
    assert not any(f.endswith(".tmp") for f in files)
    kept = ckpt.kept_epochs(res.records, ["acc", "cer"], 2)
    assert {f for f in files if f.endswith("epoch.pb")} == {f"{e}epoch.pb" for e in kept}
    side = yaml.safe_load(open(out / "3epoch.yaml"))
    for key in (
        "epoch",
        "step",
        "lr",
        "train_loss",
        "dev_loss",
        "dev_acc",
        "dev_cer",
        "epoch_time",
        "wall_time",
        "throughput",
    ):
        assert side[key] is not None, key
    assert side["step"] == 3 * 8 and 0 <= side["dev_cer"] <= 100
    assert os.listdir(out / "tensorboard")
    assert res.step == 24 and sorted(res.best_epochs) == ["acc", "cer"]
    # the model learned something: the toy task is easy
    assert res.records[-1].dev_acc > 0.5 and res.records[-1].dev_cer < 60


def test_progress_lines_per_epoch_and_per_update_scalars(tmp_path, caplog, monkeypatch):
    """log_interval above the updates of an epoch (8 here): still a progress line per epoch, with or without the
    bar, and TensorBoard gets update/loss and update/lr at every global step; the plot has integer epoch ticks."""
    from matplotlib.figure import Figure
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    figs = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (figs.append(self), save(self, *a, **k))[1])
    caplog.set_level(logging.INFO, logger="funasr_lite")
    for bar in (False, True):
        caplog.clear()
        out = tmp_path / f"bar{bar}"
        t = make_trainer(out, max_epoch=3, log_interval=100, progress_bar=bar)
        t.resume()
        t.fit()
        lines = [r.getMessage() for r in caplog.records if " batch " in r.getMessage()]
        assert [ln.split(":")[0] for ln in lines] == [f"epoch {e}/3 batch 8/8 update {8 * e}" for e in (1, 2, 3)]
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("update/loss")] == list(range(1, 25))
    assert [e.step for e in acc.Scalars("update/lr")] == list(range(1, 25))
    assert [e.step for e in acc.Scalars("train/loss")] == [8, 16, 24]
    ticks = [x for ax in figs[-1].axes for x in ax.get_xticks() if 1 <= x <= 3]
    assert ticks and all(float(x).is_integer() for x in ticks)


def test_per_update_loss_is_the_mean_of_its_micro_batches(tmp_path):
    from funasr_lite.train.outputs import RunOutputs
    from funasr_lite.train.stats import LogWindow

    outputs = RunOutputs(str(tmp_path), ["acc"], [1], is_main=True, tensorboard=True, plot=False)
    seen = []
    outputs.open(0)
    outputs.scalar = lambda tag, v, step: seen.append((tag, v, step))
    w = LogWindow()
    w.add(1.0, None, 1.0)
    w.add(3.0, None, 1.0)
    outputs.log_update(1, w, 0.1)
    w.add(5.0, None, 1.0)
    outputs.log_update(2, w, 0.2)
    w2 = LogWindow()  # a new log window starts from zero
    w2.add(7.0, None, 1.0)
    outputs.log_update(3, w2, 0.3)
    outputs.close()
    assert [s for s in seen if s[0] == "update/loss"] == [
        ("update/loss", 2.0, 1),
        ("update/loss", 5.0, 2),
        ("update/loss", 7.0, 3),
    ]
    assert [s for s in seen if s[0] == "update/lr"] == [
        ("update/lr", 0.1, 1),
        ("update/lr", 0.2, 2),
        ("update/lr", 0.3, 3),
    ]


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
    assert same_state(
        torch.load(tmp_path / "a" / "valid.acc.ave.pb", weights_only=True),
        torch.load(tmp_path / "b" / "valid.acc.ave.pb", weights_only=True),
    )
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
        run(tmp_path, max_epoch=2, train=ToyData(nan=set(range(24))), max_nan_steps=3, decode=False)


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


@pytest.mark.slow  # torchrun
def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        os.path.abspath(__file__),
        "job",
        "--out",
        str(out),
        "--epochs",
        "2",
        "--nan",
        "19",
        "--accum",
        "2",
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    assert same_state(r0, r1)  # replicas stayed in sync (NaN skip agreed on both ranks)
    assert same_state(r0, torch.load(out / "checkpoint.pb", weights_only=True)["model"])
    assert (out / "valid.acc.ave.pb").exists() and (out / "2epoch.yaml").exists()
    assert "non-finite loss" in done.stderr


# ------------------------------------------------------------------ finetune: tiny Paraformer, real data
FT_FLAGS = dict(
    optim="adam",
    lr=2e-3,
    scheduler="warmuplr",
    scheduler_conf='{"warmup_steps": 10}',
    batch_bins=300,
    keep_nbest_models=[1, 2],
    num_workers=0,
)


@pytest.fixture(scope="module")
def ft_setup(synth_data_dir, tmp_path_factory):
    """(init model dir, data_path with train/ and dev/) built from the session's synthesized data."""
    tiny = pytest.importorskip("tiny_model")
    root = tmp_path_factory.mktemp("ft")
    data = root / "data"
    for sub in ("train", "dev"):
        os.makedirs(data / sub)
        for name in ("wav.scp", "text"):
            with open(os.path.join(synth_data_dir, name), encoding="utf-8") as f:
                (data / sub / name).write_text(f.read(), encoding="utf-8")
    model = tiny.build_tiny_model_dir(str(root / "init"), synth_data_dir)
    return str(model), str(data)


def _ft_opts(model, data, out, device="auto", **kw):
    """(FinetuneOptions, config layers) for finetune(); ``kw`` are config flags."""
    from funasr_lite.config.merge import flags_layer
    from funasr_lite.train.options import FinetuneOptions

    flags = dict(FT_FLAGS, max_epoch=2)
    flags.update(kw)
    opts = FinetuneOptions(model=model, data_path=data, output_dir=str(out), progress_bar=False, device=device)
    return opts, [("command line", flags_layer(flags))]


def test_finetune_output_is_a_model_dir_funasr_loads(ft_setup, tmp_path, caplog):
    from funasr_lite.decode.transcribe import load_model
    from funasr_lite.train.finetune import finetune, select_checkpoint

    model, data = ft_setup
    out = tmp_path / "out"
    caplog.set_level(logging.INFO, logger="funasr_lite")
    with pytest.raises(Exception, match="missing train/"):  # a failed start: no train.log, no dir
        finetune(*_ft_opts(model, str(tmp_path), out))
    assert not out.exists()
    res = finetune(*_ft_opts(model, data, out))
    assert res["epochs"] == 2 and not res["resumed"] and res["step"] > 0
    files = set(os.listdir(out))
    for name in (
        "config.yaml",
        "tokens.json",
        "am.mvn",
        "configuration.json",
        "model.pt",
        "checkpoint.pb",
        "valid.acc.best.pb",
        "valid.acc.ave_2best.pb",
        "valid.acc.ave.pb",
        "1epoch.yaml",
        "2epoch.yaml",
        "training_curves.png",
        "tensorboard",
        "train.log",
        "config.provenance.txt",
    ):
        assert name in files, name
    # the console gets the changed keys only; the whole config (with sources) is saved, and the log is a file
    assert "merged config (value" not in caplog.text and "optim: adam  # command line" in caplog.text
    assert "lr: 0.002  # command line" in open(out / "config.provenance.txt").read()
    train_log = open(out / "train.log", encoding="utf-8").read()
    assert "with these changes" in train_log and "epoch 2/2 done" in train_log and "model.pt = " in train_log
    assert train_log.count("epoch 1/2 batch") >= 1  # a progress line per epoch even when log_interval > updates
    conf = yaml.safe_load(open(out / "config.yaml"))
    assert conf["optim"] == "adam" and conf["optim_conf"]["lr"] == 2e-3  # the merged config is what was saved
    assert conf["scheduler_conf"]["warmup_steps"] == 10 and conf["train_conf"]["max_epoch"] == 2
    side = yaml.safe_load(open(out / "2epoch.yaml"))
    assert side["dev_cer"] is not None and side["dev_acc"] is not None
    assert same_state(
        torch.load(out / "model.pt", weights_only=True), torch.load(out / "valid.acc.ave.pb", weights_only=True)
    )
    wav = open(os.path.join(data, "dev", "wav.scp")).readline().split()[1]
    ours = load_model(str(out), device="cpu").transcribe([wav])[0]["text"]
    select_checkpoint(str(out), "valid.acc.best.pb")
    assert json_load(out / "configuration.json")["funasr_lite"]["model.pt"] == "valid.acc.best.pb"
    with pytest.raises(ckpt.CheckpointError, match="available checkpoints: .*valid.acc.ave.pb"):
        select_checkpoint(str(out), "valid.acc.ave_10best.pb")
    select_checkpoint(str(out), "valid.acc.ave.pb")
    funasr = pytest.importorskip("funasr")
    am = funasr.AutoModel(model=str(out), disable_update=True, device="cpu", disable_pbar=True, disable_log=True)
    assert am.generate(input=wav)[0]["text"].replace(" ", "") == ours.replace(" ", "")


def json_load(path):
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_finetune_config_precedence_and_errors(ft_setup, tmp_path):
    from funasr_lite.config.merge import flags_layer, parse_overrides
    from funasr_lite.hub.model_dir import detect_model_dir
    from funasr_lite.train.finetune import find_data_dirs, finetune, merge_finetune_config
    from funasr_lite.train.options import FinetuneOptions

    model, data = ft_setup
    init = tmp_path / "init"
    os.makedirs(init)
    for f in os.listdir(model):
        (init / f).write_bytes(open(os.path.join(model, f), "rb").read())
    (init / "finetune.yaml").write_text("optim: adam\noptim_conf:\n  lr: 0.0005\nmax_epoch: 7\naccum_grad: 3\n")
    md = detect_model_dir(str(init))
    layers = [
        ("recipe defaults", flags_layer({"max_epoch": 4, "lr": 1e-4})),
        ("command line", flags_layer({"accum_grad": 2})),
    ]
    cfg = merge_finetune_config(md, layers)
    # finetune.yaml (0.x top-level keys) < recipe defaults < flags
    assert cfg.train_conf.max_epoch == 4 and cfg.optim_conf.lr == 1e-4 and cfg.train_conf.accum_grad == 2
    (init / "finetune.yaml").write_text("optim: adam\ntrain_conf:\n  max_epok: 3\n")
    with pytest.raises(ConfigError, match="finetune.yaml.*max_epok.*max_epoch"):
        merge_finetune_config(detect_model_dir(str(init)), layers)
    with pytest.raises(ConfigError, match="init model dir"):
        finetune(*_ft_opts(model, data, model))
    # the recipe CLI: flags default to None, recipe defaults form their own layer
    from funasr_lite.cli.flags import add_option_flags, split_args

    defaults = {"model": str(init), "data_path": data, "max_epoch": 5, "lr": 2e-4, "keep_nbest_models": 10}
    parser = argparse.ArgumentParser()
    add_option_flags(parser, [FinetuneOptions], defaults)
    args = parser.parse_args(["--scheduler", "none", "--keep_nbest_models", "3", "5", "--max_bad_ratio", "0.2"])
    assert args.max_epoch is None and args.keep_nbest_models == [3, 5]
    o, layers = split_args(args, FinetuneOptions, defaults)
    assert o.model == str(init) and o.max_bad_ratio == 0.2 and o.output_dir == "./checkpoint"
    assert [source for source, _ in layers] == ["recipe defaults", "command line"]
    assert layers[0][1]["train_conf"]["max_epoch"] == 5 and "max_epoch" not in layers[1][1].get("train_conf", {})
    layers.append(("command line overrides", parse_overrides(["++train_conf.grad_clip=1.0"])))
    (init / "finetune.yaml").write_text("optim: adam\nscheduler: warmuplr\nscheduler_conf:\n  warmup_steps: 30000\n")
    cfg = merge_finetune_config(detect_model_dir(str(init)), layers)
    assert cfg.scheduler is None and cfg.scheduler_conf.kwargs() == {}  # --scheduler none wins over finetune.yaml
    assert cfg.train_conf.max_epoch == 5 and cfg.train_conf.nbest_list() == [3, 5] and cfg.train_conf.grad_clip == 1.0
    with pytest.raises(ConfigError, match="recipe defaults: unknown flag.*max_epochs"):
        add_option_flags(argparse.ArgumentParser(), [FinetuneOptions], {"max_epochs": 3})
    with pytest.raises(Exception, match="dev/ \\(or validation/\\)"):
        find_data_dirs(os.path.join(data, "train"))


def _run_job(args, timeout=300):
    cmd = [sys.executable, os.path.abspath(__file__)] + args
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # finetune subprocesses, killed and rerun
def test_finetune_kill9_mid_validation_and_mid_epoch_then_rerun_matches(ft_setup, tmp_path):
    model, data = ft_setup
    base = ["finetune-job", "--model", model, "--data", data, "--epochs", "2"]
    ref = _run_job(base + ["--out", str(tmp_path / "ref")])
    assert ref.returncode == 0, ref.stderr[-3000:]
    out = tmp_path / "killed"
    progress = tmp_path / "killed.progress"
    # each run counts utterance loads from its start (6 train + 6 dev per epoch): kill -9 in epoch 1's
    # validation, then (a run that starts from scratch again) in epoch 2's training
    for kill_at in (6 + 4, 12 + 3):
        cmd = (
            [sys.executable, os.path.abspath(__file__)]
            + base
            + ["--out", str(out), "--slow", "0.05", "--kill_at", str(kill_at)]
        )
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if progress.exists() and progress.read_text().strip() == "kill":
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"the job ended before kill point {kill_at}"
        progress.unlink()
    done = _run_job(base + ["--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RESUMING" in done.stderr
    names = sorted(f for f in os.listdir(tmp_path / "ref") if f != "tensorboard")
    assert names == sorted(f for f in os.listdir(out) if f != "tensorboard")
    for name in names:
        if name.endswith(".pb") and name != "checkpoint.pb" or name == "model.pt":
            a = torch.load(tmp_path / "ref" / name, weights_only=True)
            b = torch.load(out / name, weights_only=True)
            # separate processes: identical up to CPU math-library rounding; a wrong resume (other data
            # order, other dropout masks, lost updates) differs by orders of magnitude more
            assert max_diff(a, b) < 1e-5, (name, max_diff(a, b))


@pytest.mark.slow  # torchrun
def test_finetune_torchrun_two_processes_gloo(ft_setup, tmp_path):
    model, data = ft_setup
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        os.path.abspath(__file__),
        "finetune-job",
        "--model",
        model,
        "--data",
        data,
        "--out",
        str(out),
        "--epochs",
        "2",
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "DDP: rank 1/2" in done.stderr
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    assert same_state(r0, r1)
    assert (out / "model.pt").exists() and yaml.safe_load(open(out / "2epoch.yaml"))["dev_cer"] is not None


def _finetune_job(argv):
    """One finetune run of the tiny model (single process or under torchrun)."""
    ap = argparse.ArgumentParser()
    for name in ("--model", "--data", "--out"):
        ap.add_argument(name, required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--slow", type=float, default=0.0, help="seconds per utterance load; writes OUT.progress")
    ap.add_argument("--kill_at", type=int, default=0, help="write 'kill' to OUT.progress at this utterance load")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    torch.set_num_threads(1)
    from funasr_lite.data import dataset
    from funasr_lite.train.finetune import finetune

    if args.slow:
        real, seen = dataset.UtteranceDataset.__getitem__, [0]

        def slow(self, index):
            seen[0] += 1
            if seen[0] == args.kill_at:
                with open(args.out + ".progress", "w") as f:
                    f.write("kill")
                time.sleep(60)
            time.sleep(args.slow)
            return real(self, index)

        dataset.UtteranceDataset.__getitem__ = slow
    real_fit = Trainer.fit

    def fit_and_save(self):  # every rank saves the weights it ends with
        result = real_fit(self)
        torch.save(self.model.state_dict(), os.path.join(args.out, f"rank{self.dist.rank}.pt"))
        return result

    Trainer.fit = fit_and_save
    finetune(*_ft_opts(args.model, args.data, args.out, max_epoch=args.epochs, device="cpu"))


def _job(argv):
    """One toy training run (single process or under torchrun); writes rank<r>.pt with the final weights."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--nan", type=int, nargs="*", default=[])
    ap.add_argument("--accum", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    torch.set_num_threads(1)
    dist = setup_distributed("cpu")
    try:
        t = make_trainer(args.out, args.epochs, dist=dist, accum_grad=args.accum, train=ToyData(nan=set(args.nan)))
        t.resume()
        t.fit()
        torch.save(t.model.state_dict(), os.path.join(args.out, f"rank{dist.rank}.pt"))
    finally:
        cleanup_distributed(dist)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "job":
        _job(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "finetune-job":
        _finetune_job(sys.argv[2:])
    else:
        sys.exit(pytest.main([__file__, "-q"]))
