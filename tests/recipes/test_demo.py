"""The bundled demo: the model decodes the bundled test set to the CER in its README,
and the reproduce script runs end to end in a shortened form."""

import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs the demo's infer.py and run.sh in subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)


def _readme_cer() -> float:
    with open(os.path.join(DEMO, "README.md"), encoding="utf-8") as f:
        return float(re.search(r"\*\*Test CER: ([0-9.]+)%\*\*", f.read()).group(1))


def test_bundled_model_decodes_to_the_recorded_cer(tmp_path):
    out = tmp_path / "decode"
    proc = subprocess.run(
        [sys.executable, os.path.join(DEMO, "infer.py"), "--output_dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = re.search(r"%WER ([0-9.]+) \[", proc.stdout)
    assert summary, proc.stdout
    assert abs(float(summary.group(1)) - _readme_cer()) <= 0.5
    rec = out / "1best_recog"
    with open(os.path.join(DEMO, "data", "test", "wav.scp"), encoding="utf-8") as f:
        keys = sorted(line.split()[0] for line in f if line.strip())
    assert [line.split()[0] for line in (rec / "text").read_text(encoding="utf-8").splitlines()] == keys
    assert (rec / "failed").read_text(encoding="utf-8") == ""
    assert (rec / "errs-test-greedy.txt").exists()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_reproduce_script_runs_end_to_end_shortened(tmp_path):
    work = tmp_path / "demo"
    proc = subprocess.run(
        [
            "bash",
            os.path.join(DEMO, "run.sh"),
            "--work",
            str(work),
            "--num_train",
            "16",
            "--num_dev",
            "4",
            "--num_test",
            "4",
            "--max_epoch",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    for stage in range(5):
        assert f"stage {stage}:" in proc.stdout
    assert sorted(os.listdir(work / "model")) == sorted(
        ["am.mvn", "config.yaml", "configuration.json", "model.pt", "tokens.json", "training_record.yaml"]
    )
    assert re.search(r"%WER [0-9.]+ \[", proc.stdout)
    assert (work / "exp" / "finetune" / "training_curves.png").exists()
