"""Reliability of finetuning (kills, Ctrl-C, full disk, bad data), through the real recipe script ``finetune.py``.

A tiny Paraformer is finetuned for 2 epochs on 6 synthesized utterances. Runs are killed with
SIGKILL at named moments (mid-batch, mid-validation, mid-checkpoint-write, mid-averaging) and at
random moments, interrupted with Ctrl-C (SIGINT to the process group), and starved of disk space;
after each fault, every checkpoint file in the output dir must load, and re-running the same
command must resume and end with the same files and (up to float rounding) the same weights as
an uninterrupted run. Bad training data must be reported before the first epoch, and
``--max_bad_ratio`` decides between skipping and stopping.

Named moments use hooks installed by this file's ``hooked`` mode, which then executes the
unmodified recipe with ``runpy``: ``RELIABILITY_HOOK=getitem:N`` pauses in the N-th utterance
load, ``save:N`` writes half of the N-th checkpoint file (into its temp file) and pauses,
``average:N`` pauses after computing the N-th n-best average. The hook announces itself by
creating ``RELIABILITY_HOOK_FILE``; the test then sends the signal.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
import torch
import yaml

pytestmark = pytest.mark.slow  # finetune.py subprocesses killed and rerun

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FINETUNE = os.path.join(
    ROOT,
    "egs_modelscope",
    "asr",
    "paraformer",
    "speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "finetune.py",
)
FLAGS = [
    "--max_epoch",
    "2",
    "--batch_bins",
    "150",
    "--num_workers",
    "0",
    "--keep_nbest_models",
    "1",
    "2",
    "--optim",
    "adam",
    "--lr",
    "0.002",
    "--scheduler",
    "warmuplr",
    "--scheduler_conf",
    "{warmup_steps: 10}",
    "--device",
    "cpu",
    "--seed",
    "0",
    "--no_progress_bar",
]
TRAINING_STARTS = ("training starts from the init model", "RESUMING from")


# ------------------------------------------------------------------------------------------ running
def _env(hook: Optional[str] = None, hook_file: Optional[str] = None, pause: float = 120.0) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    if hook:
        env.update(RELIABILITY_HOOK=hook, RELIABILITY_HOOK_FILE=hook_file, RELIABILITY_HOOK_PAUSE=str(pause))
    return env


class Job:
    """One finetune.py process in its own session (so signals reach it and any workers, like a terminal's)."""

    def __init__(
        self, model: str, data: str, out: str, logs: str, *extra: str, hook: Optional[str] = None, pause: float = 120.0
    ) -> None:
        os.makedirs(logs, exist_ok=True)
        n = len([f for f in os.listdir(logs) if f.endswith(".err")])
        self.err_path = os.path.join(logs, f"run{n}.err")
        self.hook_file = os.path.join(logs, f"run{n}.hook")
        args = ["--model", model, "--data_path", data, "--output_dir", out, *FLAGS, *extra]
        cmd = (
            [sys.executable, os.path.abspath(__file__), "hooked", *args] if hook else [sys.executable, FINETUNE, *args]
        )
        self.started = time.time()
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdout=err, stderr=subprocess.STDOUT, start_new_session=True, env=_env(hook, self.hook_file, pause)
            )

    @property
    def log(self) -> str:
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for(self, predicate, timeout: float = 240.0) -> bool:
        """Poll until ``predicate()`` holds (True) or the process ends first (False)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                return predicate()
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting; log:\n{self.log[-3000:]}")

    def hooked(self) -> bool:
        return self.wait_for(lambda: os.path.exists(self.hook_file))

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 300.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def kill_at_hook(model: str, data: str, out: str, logs: str, hook: str) -> Job:
    job = Job(model, data, out, logs, hook=hook)
    reached = job.hooked()
    job.signal(signal.SIGKILL)
    rc = job.wait()
    assert reached and rc == -signal.SIGKILL, f"hook {hook} was not reached (rc {rc}):\n{job.log[-3000:]}"
    return job


def run_to_end(model: str, data: str, out: str, logs: str, *extra: str) -> Job:
    job = Job(model, data, out, logs, *extra)
    rc = job.wait()
    assert rc == 0, job.log[-4000:]
    assert "Traceback" not in job.log
    return job


# -------------------------------------------------------------------------------- output invariants
def checkpoint_files(out: str) -> List[str]:
    return sorted(f for f in os.listdir(out) if f.endswith((".pb", ".pt")) and not f.startswith("."))


def temp_files(out: str) -> List[str]:
    return sorted(f for f in os.listdir(out) if f.startswith(".") and f.endswith(".tmp"))


def assert_all_checkpoints_load(out: str) -> Dict[str, Dict]:
    """Every visible .pb/.pt file is complete: it loads with weights_only=True (no half-written file)."""
    loaded = {}
    for name in checkpoint_files(out):
        try:
            loaded[name] = torch.load(os.path.join(out, name), map_location="cpu", weights_only=True)
        except Exception as e:  # report which file is broken, whatever torch raised
            raise AssertionError(f"{name} in {out} does not load: {type(e).__name__}: {e}") from e
    return loaded


def resume_epoch(out: str) -> Optional[Tuple[int, int]]:
    """(epochs done, batches of the next epoch done) from checkpoint.pb, or None without one."""
    path = os.path.join(out, "checkpoint.pb")
    if not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["epoch"]), int(state["batches_done"])


def output_names(out: str) -> List[str]:
    return sorted(f for f in os.listdir(out) if f != "tensorboard")


def max_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


def assert_averages_use_existing_epochs(out: str) -> None:
    """Each valid.*.ave_Nbest.pb is the mean of the epoch files its sidecar names, and they all exist."""
    for name in os.listdir(out):
        if not (name.startswith("valid.") and "ave_" in name and name.endswith(".pb")):
            continue
        side = yaml.safe_load(open(os.path.join(out, name[:-3] + ".yaml"), encoding="utf-8"))
        files = [os.path.join(out, f"{e}epoch.pb") for e in side["epochs"]]
        assert files and all(os.path.isfile(f) for f in files), (name, side["epochs"], os.listdir(out))
        states = [torch.load(f, weights_only=True) for f in files]
        avg = torch.load(os.path.join(out, name), weights_only=True)
        for k, v in avg.items():
            if v.is_floating_point():
                expect = sum(s[k].double() for s in states) / len(states)
                assert torch.allclose(v.double(), expect, atol=1e-6), (name, k)
            else:
                assert torch.equal(v, states[0][k]), (name, k)


def assert_same_as_reference(out: str, ref: str) -> None:
    assert output_names(out) == output_names(ref)
    assert not temp_files(out), temp_files(out)
    mine, theirs = assert_all_checkpoints_load(out), assert_all_checkpoints_load(ref)
    for name, state in mine.items():
        if name == "checkpoint.pb":
            assert state["epoch"] == theirs[name]["epoch"] and state["step"] == theirs[name]["step"]
            state, other = state["model"], theirs[name]["model"]
        else:
            other = theirs[name]
        # separate processes agree up to CPU math-library rounding; a wrong resume (lost or repeated
        # updates, another data order or dropout mask) differs by orders of magnitude more
        assert max_diff(state, other) < 1e-5, (name, max_diff(state, other))
    assert_averages_use_existing_epochs(out)


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def setup(synth_data_dir, tmp_path_factory):
    """(init model dir, data_path with train/ and dev/, reference output dir, its training seconds)."""
    tiny = pytest.importorskip("tiny_model")
    root = str(tmp_path_factory.mktemp("rel_train"))
    data = os.path.join(root, "data")
    for sub in ("train", "dev"):
        os.makedirs(os.path.join(data, sub))
        for name in ("wav.scp", "text"):
            shutil.copy(os.path.join(synth_data_dir, name), os.path.join(data, sub, name))
    model = tiny.build_tiny_model_dir(os.path.join(root, "init"), synth_data_dir)
    ref = os.path.join(root, "reference")
    job = Job(model, data, ref, os.path.join(root, "ref_logs"))
    job.wait_for(lambda: any(s in job.log for s in TRAINING_STARTS))
    t0 = time.time()
    assert job.wait() == 0, job.log[-4000:]
    return model, data, ref, time.time() - t0


# ---------------------------------------------------------------------------------- kill -9, named
def test_kill9_at_named_moments_then_rerun_completes_identically(setup, tmp_path):
    model, data, ref, _ = setup
    out, logs = str(tmp_path / "out"), str(tmp_path / "logs")
    # epoch 1 loads 6 train utterances in 3 batches (3+2+1), then 6 dev utterances
    kill_at_hook(model, data, out, logs, "getitem:5")  # mid-epoch: batch 2 of epoch 1, after one update
    assert resume_epoch(out) is None and not checkpoint_files(out)
    kill_at_hook(model, data, out, logs, "getitem:9")  # mid-validation of epoch 1
    assert resume_epoch(out) is None and not checkpoint_files(out)
    kill_at_hook(model, data, out, logs, "save:2")  # 1epoch.pb written; checkpoint.pb half written
    assert_all_checkpoints_load(out)
    assert checkpoint_files(out) == ["1epoch.pb"] and resume_epoch(out) is None
    assert [f for f in temp_files(out) if f.startswith(".checkpoint.pb.")], os.listdir(out)
    kill_at_hook(model, data, out, logs, "save:3")  # epoch 1 redone; 2epoch.pb half written
    assert_all_checkpoints_load(out)
    assert resume_epoch(out) == (1, 0) and "2epoch.pb" not in checkpoint_files(out)
    assert [f for f in temp_files(out) if f.startswith(".2epoch.pb.")], os.listdir(out)
    job = kill_at_hook(model, data, out, logs, "average:1")  # epoch 2 done; killed while averaging
    assert "RESUMING" in job.log and "removed" in job.log  # the stale temp files were cleaned up
    assert_all_checkpoints_load(out)
    assert resume_epoch(out) == (2, 0) and "valid.acc.ave_2best.pb" not in checkpoint_files(out)
    done = run_to_end(model, data, out, logs)
    assert "RESUMING" in done.log and "all 2 epochs are done" in done.log
    assert_same_as_reference(out, ref)


# ---------------------------------------------------------------- Ctrl-C, then kill -9 at random
def test_ctrl_c_then_random_kills_then_rerun_completes_identically(setup, tmp_path):
    model, data, ref, train_seconds = setup
    out, logs = str(tmp_path / "out"), str(tmp_path / "logs")
    # Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while batch 2 of epoch 1 loads
    job = Job(model, data, out, logs, hook="getitem:5", pause=1.0)
    assert job.hooked(), job.log[-3000:]
    job.signal(signal.SIGINT)
    assert job.wait() == 130, job.log[-3000:]
    assert "Traceback" not in job.log and "interrupted: interrupted in epoch 1 after" in job.log
    assert "Re-run the same command to resume" in job.log
    epochs, batches = resume_epoch(out)
    assert epochs == 0 and batches >= 1  # a resumable mid-epoch state
    assert_all_checkpoints_load(out)
    # kill -9 at random moments of the training that follows
    seed = int(os.environ.get("RELIABILITY_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    moments = []
    for _ in range(3):
        job = Job(model, data, out, logs)
        job.wait_for(lambda: any(s in job.log for s in TRAINING_STARTS))
        t0, delay = time.time(), rng.uniform(0.0, train_seconds)
        job.wait_for(lambda: time.time() - t0 >= delay)
        state_before = resume_epoch(out)
        job.signal(signal.SIGKILL)
        rc = job.wait()
        moments.append((round(delay, 2), rc, state_before, resume_epoch(out)))
        assert rc in (-signal.SIGKILL, 0), (seed, moments, job.log[-3000:])
        assert "Traceback" not in job.log
        assert_all_checkpoints_load(out)
    done = run_to_end(model, data, out, logs)
    assert "RESUMING" in done.log, (seed, moments)
    assert_same_as_reference(out, ref)


# ------------------------------------------------------------------------------ two runs, one dir
def test_a_second_run_into_a_busy_output_dir_is_refused_and_the_first_finishes_unharmed(setup, tmp_path):
    model, data, ref, _ = setup
    out, logs = str(tmp_path / "out"), str(tmp_path / "logs")
    first = Job(model, data, out, logs, hook="getitem:5", pause=30.0)  # paused in epoch 1, holding the dir
    assert first.hooked(), first.log[-3000:]
    before = sorted(os.listdir(out))
    second = Job(model, data, out, logs, "--lr", "0.001")
    assert second.wait() == 1, second.log[-3000:]
    assert first.proc.poll() is None, "the first run ended before the second was refused: test inconclusive"
    errors = [line for line in second.log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{out} is in use by pid {first.proc.pid}" in errors[0], second.log[-3000:]
    assert "Traceback" not in second.log and sorted(os.listdir(out)) == before  # it wrote nothing
    assert first.wait() == 0, first.log[-3000:]
    assert_same_as_reference(out, ref)


# ----------------------------------------------------------------------------------- disk full
@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mount we can fill; skipped where mounting is not allowed (non-root, some containers)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs: {e}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _fill(directory: str, leave_bytes: int) -> str:
    """Write a filler file so that about ``leave_bytes`` stay free on ``directory``'s file system."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    filler = os.path.join(directory, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler


def test_disk_full_stops_with_a_clear_message_and_keeps_the_last_checkpoint(setup, small_disk, tmp_path):
    model, data, ref, _ = setup
    out, logs = os.path.join(small_disk, "out"), str(tmp_path / "logs")
    # epoch 1 stops (paused) when its validation starts; then the disk fills up
    job = Job(model, data, out, logs, hook="getitem:8", pause=3.0)
    assert job.hooked(), job.log[-3000:]
    filler = _fill(small_disk, 64 * 1024)
    rc = job.wait()
    assert rc == 1, job.log[-3000:]
    errors = [line for line in job.log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on device" in errors[0], job.log[-3000:]
    assert "re-run the same command" in errors[0].lower()
    assert "Traceback" not in job.log
    assert not temp_files(out), os.listdir(out)  # no half-written file is left behind
    assert_all_checkpoints_load(out)
    assert resume_epoch(out) is None  # nothing good was saved yet: the message says the init model
    assert "the init model" in errors[0]
    # space comes back in epoch 2's turn: train on, fill the disk again at epoch 2's validation
    os.unlink(filler)
    job = Job(model, data, out, logs, hook="getitem:14", pause=3.0)
    assert job.hooked(), job.log[-3000:]
    filler = _fill(small_disk, 64 * 1024)
    assert job.wait() == 1, job.log[-3000:]
    errors = [line for line in job.log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on device" in errors[0] and "(epoch 1)" in errors[0], job.log[-3000:]
    assert resume_epoch(out) == (1, 0) and not temp_files(out)  # the last good checkpoint is kept
    assert_all_checkpoints_load(out)
    os.unlink(filler)
    run_to_end(model, data, out, logs)
    assert_same_as_reference(out, ref)


# -------------------------------------------------------------------------------- bad training data
@pytest.fixture(scope="module")
def bad_data(setup, tmp_path_factory):
    """train/ = the 6 good utterances + 4 bad ones (missing file, empty text, 10 ms, NaN samples)."""
    import numpy as np
    import soundfile as sf

    _, data, _, _ = setup
    root = str(tmp_path_factory.mktemp("bad_train"))
    shutil.copytree(os.path.join(data, "dev"), os.path.join(root, "dev"))
    train = os.path.join(root, "train")
    os.makedirs(train)
    wavs = open(os.path.join(data, "train", "wav.scp"), encoding="utf-8").read()
    texts = open(os.path.join(data, "train", "text"), encoding="utf-8").read()
    first = wavs.splitlines()[0].split(" ", 1)[1]
    audio, sr = sf.read(first, dtype="float32")
    sf.write(os.path.join(root, "short.wav"), audio[:160], sr)
    nan = audio.copy()
    nan[1000] = np.nan
    sf.write(os.path.join(root, "nan.wav"), nan, sr, subtype="FLOAT")
    with open(os.path.join(train, "wav.scp"), "w", encoding="utf-8") as f:
        f.write(wavs + f"gone {root}/gone.wav\nsilent_text {first}\nshort {root}/short.wav\nnan {root}/nan.wav\n")
    with open(os.path.join(train, "text"), "w", encoding="utf-8") as f:
        f.write(texts + "gone 一 二\nsilent_text\nshort 三\nnan 四 五\n")
    return root


def test_bad_training_data_stops_before_the_first_epoch_above_max_bad_ratio(setup, bad_data, tmp_path):
    model, _, _, _ = setup
    out = str(tmp_path / "out")
    job = Job(model, bad_data, out, str(tmp_path / "logs"), "--max_bad_ratio", "0.2")
    assert job.wait() == 1, job.log[-3000:]
    assert "Traceback" not in job.log
    errors = [line for line in job.log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "3 of 10 utterances (30.0%) are unusable" in errors[0], job.log[-3000:]
    assert "max_bad_ratio=0.2" in errors[0]
    report = job.log[job.log.index(errors[0]) :]
    for key, why in (("gone", "not found"), ("silent_text", "empty"), ("short", "too_short")):
        assert any(line.strip().startswith(f"{key}:") and why in line for line in report.splitlines()), (key, report)
    assert not os.path.exists(out) and "epoch 1" not in job.log  # a start that cannot run leaves no half model dir


def test_bad_training_data_is_skipped_below_max_bad_ratio(setup, bad_data, tmp_path):
    model, _, _, _ = setup
    out = str(tmp_path / "out")
    job = run_to_end(model, bad_data, out, str(tmp_path / "logs"), "--max_bad_ratio", "0.5", "--max_epoch", "1")
    log = job.log
    summary = log.index("train: kept 7 of 10 utterances")
    assert "dropped 3 (30.0%" in log[summary : summary + 300]
    for key in ("gone", "silent_text", "short"):
        assert f"dropped {key}: " in log
    assert summary < log.index("epoch 1/1 done")  # validated before the first epoch
    # NaN samples pass the header scan; the loader skips that utterance with a warning, training goes on
    assert "skipping utterance nan" in log and "NaN/Inf" in log
    assert resume_epoch(out) == (1, 0) and "model.pt" in checkpoint_files(out)


class _Payload:
    """Unpickling this creates ``self.path``: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_unreadable_resume_state_is_a_clear_error_never_a_fresh_start(setup, tmp_path):
    model, data, _, _ = setup
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "PWNED"
    cases = [(b"hello world" * 100, "truncated or corrupt"), (None, "unpickling it would call")]
    for content, why in cases:
        path = out / "checkpoint.pb"
        if content is None:  # a resume state with code in it
            torch.save({"format": "funasr_lite.resume/1", "model": _Payload(str(marker))}, path)
        else:
            path.write_bytes(content)
        before = path.read_bytes()
        job = Job(model, data, str(out), str(tmp_path / "logs"))
        assert job.wait() == 1, job.log[-3000:]
        errors = [line for line in job.log.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "checkpoint.pb: cannot read the resume state" in errors[0], job.log[-3000:]
        assert why in errors[0] and "Move it away" in errors[0] and "Traceback" not in job.log
        assert path.read_bytes() == before and not (out / "1epoch.pb").exists()  # nothing was overwritten
    assert not marker.exists()


# ------------------------------------------------------------------------------------ hooked mode
def _pause(hook: str) -> None:
    with open(os.environ["RELIABILITY_HOOK_FILE"], "w", encoding="utf-8") as f:
        f.write(hook)
    time.sleep(float(os.environ.get("RELIABILITY_HOOK_PAUSE", "120")))


def _install_hook(spec: str) -> None:
    """Install the hook ``spec`` (see the module docstring) into funasr_lite."""
    import io

    from funasr_lite.data import dataset
    from funasr_lite.train import checkpoint
    from funasr_lite.utils import fileio

    kind, n = spec.split(":")
    target, count = int(n), [0]

    def hit() -> bool:
        count[0] += 1
        return count[0] == target

    if kind == "getitem":
        real_getitem = dataset.UtteranceDataset.__getitem__

        def getitem(self, index):
            if hit():
                _pause(spec)
            return real_getitem(self, index)

        dataset.UtteranceDataset.__getitem__ = getitem
    elif kind == "save":
        real_save = checkpoint.atomic_torch_save

        def save(obj, path):
            if not hit():
                return real_save(obj, path)
            buf = io.BytesIO()
            torch.save(obj, buf)
            data = buf.getvalue()
            with fileio.atomic_open(path, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                _pause(spec)
                f.write(data[len(data) // 2 :])

        checkpoint.atomic_torch_save = save
    elif kind == "average":
        real_average = checkpoint.average_checkpoint_files

        def average(paths):
            result = real_average(paths)
            if hit():
                _pause(spec)
            return result

        checkpoint.average_checkpoint_files = average
    else:
        raise SystemExit(f"unknown hook {spec!r}")


def _hooked_main(argv: Sequence[str]) -> None:
    """Install ``$RELIABILITY_HOOK``, then run the unmodified recipe as ``__main__`` with ``argv``."""
    import runpy

    sys.path.insert(0, ROOT)
    _install_hook(os.environ["RELIABILITY_HOOK"])
    sys.argv = [FINETUNE, *argv]
    runpy.run_path(FINETUNE, run_name="__main__")


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "hooked":
    _hooked_main(sys.argv[2:])
