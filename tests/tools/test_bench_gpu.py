"""tools/bench_gpu.py: its CPU smoke run end to end on a tiny model (both sides, the text comparison), and its
refusals of a device it cannot use."""

import json
import os
import subprocess
import sys

import pytest
import torch

import bench_common  # tools/ is on sys.path (tests/conftest.py)
import bench_gpu
from tiny_model import TINY_CONFIG, build_tiny_model_dir, funasr_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_UTTS = 4


@pytest.fixture(scope="module")
def bench_dirs(synth_data_dir, tmp_path_factory):
    """(model dir with weights from FunASR's own Paraformer class, data dir of the first N_UTTS utterances)."""
    fp = pytest.importorskip("funasr.models.paraformer.model")
    root = tmp_path_factory.mktemp("bench_gpu")
    data = root / "data"
    data.mkdir()
    with open(os.path.join(synth_data_dir, "wav.scp"), encoding="utf-8") as f:
        lines = [line for line in f if line.strip()][:N_UTTS]
    (data / "wav.scp").write_text("".join(lines), encoding="utf-8")
    model = build_tiny_model_dir(
        str(root / "model"), synth_data_dir, state_dict=funasr_state_dict(fp.Paraformer, TINY_CONFIG)
    )
    return model, str(data)


@pytest.mark.slow
def test_cpu_smoke_run_decodes_both_sides_and_compares_texts(bench_dirs, tmp_path):
    model, data = bench_dirs
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "bench_gpu.py"), "--device", "cpu", "--model_dir", model]
    cmd += ["--data_dir", data, "--dtypes", "bf16,fp16,fp32", "--funasr_batch_sizes", "1,2", "--warmup", "1"]
    cmd += ["--threads", "1", "--work_dir", str(tmp_path / "work"), "--json", str(out)]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CPU SMOKE RUN: these are CPU figures, not GPU figures" in proc.stdout
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["smoke"] and res["device"] == "cpu" and not res["failed"]
    assert set(res["results"]) == {"lite-bf16", "lite-fp32", "funasr-b1", "funasr-b2"}
    assert "fp16 needs a GPU" in res["skipped"]["lite-fp16"] and "skipped lite-fp16" in proc.stdout
    for name, r in res["results"].items():
        assert r["throughput"] > 0 and r["decode_s"] > 0 and r["gpu_peak_mb"] is None, name
    lite = res["texts"]["lite-fp32"]
    # the random weights must give varied, non-empty texts, or the comparison proves nothing
    assert len(lite) == N_UTTS and len(set(lite.values())) >= 3 and all(len(t) >= 2 for t in lite.values())
    for name in ("funasr-b1", "funasr-b2"):
        assert res["texts"][name] == lite, name
        assert res["results"][name]["same_as_lite_fp32"] == [N_UTTS, N_UTTS], name
    table = proc.stdout[proc.stdout.index("\nrun ") :]
    assert f"{N_UTTS}/{N_UTTS}" in table.split("funasr-b1", 1)[1].splitlines()[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_with_a_clear_message(capsys, tmp_path):
    assert bench_gpu.main(["--device", "cuda", "--work_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu runs this tool as a CPU smoke test" in err
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:1"])
def test_a_bad_device_string_is_refused(device, capsys, tmp_path):
    assert bench_gpu.main(["--device", device, "--work_dir", str(tmp_path)]) == 1
    assert f"--device {device!r}" in capsys.readouterr().err


def test_an_unknown_dtype_is_refused_before_anything_runs(capsys, tmp_path):
    assert bench_gpu.main(["--device", "cpu", "--dtypes", "fp32,int4", "--work_dir", str(tmp_path)]) == 1
    assert "--dtypes: unknown int4" in capsys.readouterr().err and not os.listdir(tmp_path)


def test_a_failed_child_is_reported_and_the_others_still_run(monkeypatch, capsys, tmp_path):
    texts = {"u1": "今天", "u2": "明天"}

    def fake_run_child(script, name, spec, env):
        if name == "funasr-b1":
            raise RuntimeError(f"{name} child failed (exit 1); log {spec['work_dir']}/logs/{name}.log:\nTraceback ...")
        return {"decode_s": 2.0, "gpu_peak_mb": None, "failed": 0, "texts": dict(texts)}

    monkeypatch.setattr(bench_gpu.bc, "run_child", fake_run_child)
    monkeypatch.setattr(bench_gpu, "prepare", lambda args, work: ("M", "D", {"u1": 3.0, "u2": 5.0}, None))
    out = tmp_path / "r.json"
    argv = ["--device", "cpu", "--funasr_batch_sizes", "1,2", "--work_dir", str(tmp_path), "--json", str(out)]
    assert bench_gpu.main(argv) == 1
    captured = capsys.readouterr()
    assert f"funasr-b1 child failed (exit 1); log {tmp_path}/logs/funasr-b1.log" in captured.err
    assert "FAILED funasr-b1" in captured.out
    res = json.loads(out.read_text(encoding="utf-8"))
    assert set(res["results"]) == {"lite-bf16", "lite-fp32", "funasr-b2"} and list(res["failed"]) == ["funasr-b1"]
    assert res["results"]["funasr-b2"]["throughput"] == 4.0 and res["results"]["lite-bf16"]["same_as_lite_fp32"] == [
        2,
        2,
    ]


def test_cuda_calls_are_made_on_the_benchmarked_gpu_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append(("sync", d)))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d=None: calls.append(("reset", d)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: calls.append(("peak", d)) or 3 * 2**20)
    bench_common.sync("cpu")
    bench_common.reset_gpu_peak("cpu")
    assert bench_common.gpu_peak_mb("cpu") is None and calls == []
    bench_common.sync("cuda:1")
    bench_common.reset_gpu_peak("cuda:1")
    assert bench_common.gpu_peak_mb("cuda:1") == 3.0
    assert calls == [("sync", "cuda:1"), ("reset", "cuda:1"), ("peak", "cuda:1")]
