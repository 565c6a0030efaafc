"""The finetune output dir: one run at a time, nothing written by a start that cannot run, and a resume only with
the config the saved state was trained with (funasr_lite.train.rundir)."""

import os

import pytest
import torch
import yaml
from test_trainer import _ft_opts, ft_setup  # noqa: F401  (ft_setup is a fixture)

from funasr_lite.errors import ConfigError, DataDirError
from funasr_lite.train.distributed import DistInfo
from funasr_lite.train.rundir import RUNTIME_KEYS, check_resume_config, locked_output_dir
from funasr_lite.utils.lock import LOCK_NAME, DirLockedError, dir_lock


# ------------------------------------------------------------------------------------------ the lock
def test_locked_output_dir_refuses_a_second_holder_and_removes_a_dir_it_created_for_nothing(tmp_path):
    out = str(tmp_path / "out")
    with locked_output_dir(out, DistInfo()):
        with pytest.raises(DirLockedError, match=f"{out} is in use by pid {os.getpid()}.*another finetune"):
            with locked_output_dir(out, DistInfo()):
                pass
        assert os.path.isdir(out)  # the refused second holder did not remove the first one's dir
    assert os.listdir(out) == [LOCK_NAME]  # a successful run keeps its dir
    fresh = str(tmp_path / "fresh")
    with pytest.raises(RuntimeError):
        with locked_output_dir(fresh, DistInfo()):
            raise RuntimeError("a start that failed before writing")
    assert not os.path.exists(fresh)
    with pytest.raises(RuntimeError):  # a dir that existed before is left, whatever it holds
        with locked_output_dir(out, DistInfo()):
            raise RuntimeError("failed")
    assert os.path.isdir(out)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for where in (afile, afile / "sub"):
        with pytest.raises(ConfigError, match=f"--output_dir {where}: cannot create or lock it"):
            with locked_output_dir(str(where), DistInfo()):
                pass


def test_finetune_refuses_a_locked_output_dir_and_writes_nothing(ft_setup, tmp_path):  # noqa: F811
    from funasr_lite.train.finetune import finetune

    model, data = ft_setup
    out = tmp_path / "out"
    with dir_lock(str(out), "finetune"):
        with pytest.raises(DirLockedError, match="in use by pid .*another finetune is writing there"):
            finetune(*_ft_opts(model, data, out, device="cpu"))
        assert os.listdir(out) == [LOCK_NAME]


def test_failed_start_leaves_no_half_model_dir(ft_setup, tmp_path):  # noqa: F811
    from funasr_lite.train.finetune import finetune

    model, data = ft_setup
    new = tmp_path / "new"
    with pytest.raises(DataDirError, match="--data_path .* is not a directory"):
        finetune(*_ft_opts(model, str(tmp_path / "no_such_data"), new, device="cpu"))
    assert not new.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(DataDirError, match="missing train/ and dev/"):
        finetune(*_ft_opts(model, os.path.join(data, "train"), existing, device="cpu"))
    assert sorted(os.listdir(existing)) == [LOCK_NAME]  # no config.yaml, tokens.json ... without model.pt
    with pytest.raises(ConfigError, match="optim"):
        finetune(*_ft_opts(model, data, new, device="cpu", optim="adamw_bogus"))
    assert not new.exists()


# ------------------------------------------------------------------------------- resume and the config
def test_check_resume_config_names_every_refused_key_and_allows_runtime_keys(caplog):
    saved = {"optim_conf.lr": 0.0002, "scheduler": "warmuplr", "train_conf.max_epoch": 2, "train_conf.seed": 0}
    now = dict(saved, **{"optim_conf.lr": 0.001, "scheduler": None, "train_conf.max_epoch": 5})
    with pytest.raises(ConfigError) as e:
        check_resume_config(saved, now, "/x/run/checkpoint.pb")
    msg = str(e.value)
    assert "optim_conf.lr changed from 0.0002 to 0.001" in msg and "scheduler changed from 'warmuplr' to None" in msg
    assert "since the run in /x/run started" in msg and "start a new --output_dir" in msg
    assert "max_epoch" not in msg  # allowed: not named as a problem
    with pytest.raises(ConfigError, match=r"dataset_conf.batch_bins changed from \(not set\) to 300"):
        check_resume_config(saved, dict(saved, **{"dataset_conf.batch_bins": 300}), "/x/run/checkpoint.pb")
    with caplog.at_level("INFO", logger="funasr_lite"):
        runtime = dict(saved, **{k: "changed" for k in RUNTIME_KEYS})
        check_resume_config(saved, runtime, "/x/run/checkpoint.pb")  # every run-time key may change
    assert "train_conf.max_epoch changed from 2 to 'changed'" in caplog.text


def test_resume_with_changed_lr_or_scheduler_is_refused_and_max_epoch_may_grow(ft_setup, tmp_path):  # noqa: F811
    from funasr_lite.train.finetune import finetune

    model, data = ft_setup
    out = tmp_path / "out"
    finetune(*_ft_opts(model, data, out, device="cpu", max_epoch=1))
    conf_before = (out / "config.yaml").read_bytes()
    state_before = (out / "checkpoint.pb").read_bytes()
    for change, key in ((dict(lr=1e-3), "optim_conf.lr"), (dict(scheduler="none"), "scheduler")):
        with pytest.raises(ConfigError, match=f"{key} changed from .* since the run in {out} started"):
            finetune(*_ft_opts(model, data, out, device="cpu", max_epoch=2, **change))
        # config.yaml still says what trained; nothing else moved
        assert (out / "config.yaml").read_bytes() == conf_before
        assert (out / "checkpoint.pb").read_bytes() == state_before and not (out / "2epoch.pb").exists()
    with pytest.raises(ConfigError) as e:  # every differing key is named at once
        finetune(*_ft_opts(model, data, out, device="cpu", lr=1e-3, batch_bins=200, seed=3))
    for key in ("optim_conf.lr", "dataset_conf.batch_bins", "train_conf.seed"):
        assert key in str(e.value)
    res = finetune(*_ft_opts(model, data, out, device="cpu", max_epoch=2, keep_nbest_models=[1]))
    assert res["resumed"] and res["epochs"] == 2
    conf = yaml.safe_load(open(out / "config.yaml"))
    assert conf["train_conf"]["max_epoch"] == 2 and conf["optim_conf"]["lr"] == 2e-3
    state = torch.load(out / "checkpoint.pb", weights_only=True)
    assert state["config"]["train_conf.max_epoch"] == 2 and state["config"]["optim_conf.lr"] == 2e-3


# ------------------------------------------------------------------------------------------ the options
@pytest.mark.parametrize(
    "kw, why",
    [
        (dict(final_checkpoint="../../data/train/text"), "--final_checkpoint .*valid.acc.ave.pb, valid.acc.best.pb"),
        (dict(final_checkpoint="/etc/passwd.pb"), "--final_checkpoint.*plain file name"),
        (dict(final_checkpoint="sub/1epoch.pb"), "--final_checkpoint"),
        (dict(final_checkpoint=".."), "--final_checkpoint"),
        (dict(final_checkpoint="text"), "--final_checkpoint"),
        (dict(final_checkpoint="checkpoint.pb"), "--final_checkpoint"),  # the resume state, not weights
        (dict(final_checkpoint="model.pt"), "--final_checkpoint"),
        (dict(max_bad_ratio=float("nan")), "--max_bad_ratio nan: must be a number from 0 to 1"),
        (dict(max_bad_ratio=-0.5), "--max_bad_ratio"),
        (dict(max_bad_ratio=2), "--max_bad_ratio"),
        (dict(max_bad_ratio=float("inf")), "--max_bad_ratio"),
        (dict(amp="fp8"), "--amp 'fp8': use none, bf16 or fp16"),
    ],
)
def test_finetune_options_refuse_bad_values_before_anything_runs(kw, why):
    from funasr_lite.train.options import FinetuneOptions

    with pytest.raises(ConfigError, match=why):
        FinetuneOptions(model="m", data_path="d", **kw)


def test_finetune_options_accept_every_checkpoint_name_and_devices_are_checked():
    from funasr_lite.train.distributed import resolve_device
    from funasr_lite.train.options import FinetuneOptions

    for name in ("valid.acc.ave.pb", "valid.cer.best.pb", "valid.acc.ave_5best.pb", "3epoch.pb", "mine.pth"):
        assert FinetuneOptions(model="m", data_path="d", final_checkpoint=name).final_checkpoint == name
    for device in ("meta", "tpu", "cuda:x", "cpu,cuda"):
        with pytest.raises(ConfigError, match=f"--device '{device}'"):
            resolve_device(device)
