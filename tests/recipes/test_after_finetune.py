"""infer_after_finetune.py: decodes with a named checkpoint of a finetune dir, logs its sha256,
copies missing files from the init model, and lists the checkpoints when the name is wrong."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs infer_after_finetune.py in subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(
    ROOT,
    "egs_modelscope",
    "asr",
    "paraformer",
    "speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "infer_after_finetune.py",
)
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)


def _finetune_dir(tmp_path):
    """A finetune-style output dir: the demo model with its weights saved under checkpoint names."""
    out = tmp_path / "checkpoint"
    shutil.copytree(os.path.join(DEMO, "model"), out)
    shutil.copy(out / "model.pt", out / "valid.acc.ave_10best.pb")
    shutil.copy(out / "model.pt", out / "3epoch.pb")
    os.unlink(out / "am.mvn")  # must come back from the init model
    data = tmp_path / "data"
    data.mkdir()
    with open(os.path.join(DEMO, "data", "test", "wav.scp"), encoding="utf-8") as f:
        lines = f.read().splitlines()[:5]
    (data / "wav.scp").write_text(
        "".join(f"{k} {os.path.join(DEMO, 'data', 'test', p)}\n" for k, p in (ln.split(maxsplit=1) for ln in lines)),
        encoding="utf-8",
    )
    with open(os.path.join(DEMO, "data", "test", "text"), encoding="utf-8") as f:
        (data / "text").write_text("\n".join(f.read().splitlines()[:5]) + "\n", encoding="utf-8")
    return out, data


def _run(*args):
    return subprocess.run([sys.executable, RECIPE, *args], capture_output=True, text=True, timeout=300)


def test_decodes_into_decode_results_with_sha256(tmp_path):
    out, data = _finetune_dir(tmp_path)
    proc = _run(
        "--output_dir",
        str(out),
        "--data_dir",
        str(data),
        "--device",
        "cpu",
        "--modelscope_model_name",
        os.path.join(DEMO, "model"),
        "--decoding_model_name",  # the default is model.pt (test_default_decodes_model_pt)
        "valid.acc.ave_10best.pb",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = out / "decode_results" / "1best_recog"
    assert len((rec / "text").read_text(encoding="utf-8").splitlines()) == 5
    assert (rec / "text.cer").exists() and "%WER" in proc.stdout
    digest = hashlib.sha256((out / "valid.acc.ave_10best.pb").read_bytes()).hexdigest()
    assert digest in proc.stderr and "valid.acc.ave_10best.pb" in proc.stderr
    assert (out / "am.mvn").exists()


def test_missing_checkpoint_lists_the_available_ones(tmp_path):
    out, data = _finetune_dir(tmp_path)
    proc = _run("--output_dir", str(out), "--data_dir", str(data), "--decoding_model_name", "valid.acc.ave_5best.pb")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert (
        "valid.acc.ave_5best.pb" in proc.stderr
        and "3epoch.pb" in proc.stderr
        and "valid.acc.ave_10best.pb" in proc.stderr
    )
