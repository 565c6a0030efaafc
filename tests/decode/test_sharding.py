"""Sharded decoding (torchrun, --nj): duration balancing, byte-identical merges, missing and stale parts.

The in-process cases run each rank's part of the job one after the other (:func:`decode_shard` per rank, then
:func:`merge_shards` as rank 0 does); the slow ones run the recipe script under torchrun (gloo on the CPU) and
with ``--nj``, and compare every file of ``1best_recog/`` with a single-process run's.
"""

import os
import re
import shutil
import subprocess
import sys
from typing import Dict

import pytest
import torch

from funasr_lite.decode.infer import prepare_job, run_inference
from funasr_lite.decode.options import InferOptions
from funasr_lite.decode.sharding import (
    SHARDS_DIR,
    ShardsMissingError,
    assign_shards,
    decode_shard,
    job_batches,
    merge_shards,
    part_dir,
)
from funasr_lite.decode.transcribe import make_batches
from tiny_model import build_tiny_model_dir

# two utterances per batch: the 6 decodable ones make 3 batches to spread over the ranks
BATCH2 = [("test", {"decoding": {"batch_size": 2}})]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFER = os.path.join(
    ROOT,
    "egs_modelscope",
    "asr",
    "paraformer",
    "speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "infer.py",
)


# ------------------------------------------------------------------------------------------ balancing
def _flat(shard):
    return [k for batch in shard for k in batch]


def test_assign_shards_balances_audio_duration_not_lines():
    durations = {"a": 10.0, "b": 9.0, "c": 5.0, "d": 4.0, "e": 3.0, "f": 1.0, "g": 1.0, "h": 1.0}
    singles = make_batches(durations, 1, None)  # one utterance per batch
    shards = [_flat(s) for s in assign_shards(singles, durations, 2)]
    # longest first onto the least-loaded shard, ties to the lower rank
    assert shards == [["a", "d", "e"], ["b", "c", "f", "g", "h"]]
    loads = [sum(durations[k] for k in s) for s in shards]
    assert loads == [17.0, 17.0]  # two halves of the lines would hold 28 s and 6 s
    # three shards: each key once, loads within one (longest) utterance of each other
    three = [_flat(s) for s in assign_shards(singles, durations, 3)]
    assert sorted(k for s in three for k in s) == sorted(durations)
    loads = [sum(durations[k] for k in s) for s in three]
    assert max(loads) - min(loads) <= max(durations.values())
    # whole batches move, in their original order: [a b] 19 s, [c d] 9 s, [e f] 4 s, [g h] 2 s
    pairs = make_batches(durations, 2, None)
    assert assign_shards(pairs, durations, 2) == [[["a", "b"]], [["c", "d"], ["e", "f"], ["g", "h"]]]
    # ties between equal loads go to the earlier batch; more shards than batches leaves shards empty
    assert assign_shards([["x"], ["y"]], {"y": 2.0, "x": 2.0}, 3) == [[["x"]], [["y"]], []]


# --------------------------------------------------------------------------------------------- setup
@pytest.fixture(scope="module")
def setup(synth_data_dir, tmp_path_factory):
    """A tiny model dir, a data dir (the synthesized utterances plus one missing file), and the reference: a
    single-process run's ``1best_recog`` files (name -> bytes)."""
    root = tmp_path_factory.mktemp("sharding")
    model = build_tiny_model_dir(str(root / "model"), synth_data_dir)
    data = root / "data"
    data.mkdir()
    with open(os.path.join(synth_data_dir, "wav.scp"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines.append(f"utt99 {root / 'nowhere.wav'}")
    (data / "wav.scp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(os.path.join(synth_data_dir, "text"), data / "text")
    ref_dir = str(root / "single")
    run_inference(InferOptions(model=model, data_dir=str(data), output_dir=ref_dir, device="cpu", ncpu=1), BATCH2)
    ref = _files(os.path.join(ref_dir, "1best_recog"))
    texts = [line.split(" ", 1)[1] for line in ref["text"].decode().splitlines() if " " in line]
    assert len(set(texts)) >= 4, texts  # the random model says different things: the comparisons mean something
    assert ref["failed"].decode().startswith("utt99 ")
    return model, str(data), ref


def _files(result_dir: str) -> Dict[str, bytes]:
    """Every entry of a result dir (a leftover subdir such as .shards shows up as a non-bytes value)."""
    out = {}
    for name in sorted(os.listdir(result_dir)):
        path = os.path.join(result_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[name] = f.read()
        else:
            out[name] = "<dir>"
    return out


def _partition(data_dir: str, result_dir: str):
    """Every wav.scp key is in exactly one of text or failed; returns (text keys, failed lines by key)."""
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        keys = {line.split()[0] for line in f if line.strip()}
    with open(os.path.join(result_dir, "text"), encoding="utf-8") as f:
        text = {line.split(" ", 1)[0] for line in f}
    with open(os.path.join(result_dir, "failed"), encoding="utf-8") as f:
        failed = {line.split(" ", 1)[0]: line for line in f}
    assert not text & set(failed) and text | set(failed) == keys
    return text, failed


def _job(model: str, data: str, out: str):
    opts = InferOptions(model=model, data_dir=data, output_dir=out, device="cpu", ncpu=1)
    os.makedirs(out, exist_ok=True)
    return opts, prepare_job(opts, BATCH2, None, torch.device("cpu"))


def _decode_ranks(opts, job, world, ranks):
    data, _, durations, asr = job
    shards = assign_shards(job_batches(asr, durations), durations, world)
    return {r: decode_shard(opts, data, asr, durations, shards[r], world, r) for r in ranks}


def _merge(opts, job, world, reasons=None):
    data, failed, durations, asr = job
    return merge_shards(opts, data, asr, dict(failed), durations, world, reasons or {}, 1.0)


# ----------------------------------------------------------------------------------- in-process ranks
@pytest.mark.parametrize("world", [2, 3])
def test_merged_shards_are_byte_identical_to_one_process(setup, tmp_path, world):
    model, data, ref = setup
    opts, job = _job(model, data, str(tmp_path / "out"))
    decoded = _decode_ranks(opts, job, world, reversed(range(world)))  # rank 0 last, as it merges
    assert all(seconds > 0 for seconds in decoded.values())  # every shard had audio to decode
    result = _merge(opts, job, world)
    assert _files(result.result_dir) == ref  # every file, and no .shards left behind
    assert sorted(result.failed) == ["utt99"]


def test_missing_part_is_named_and_a_rerun_decodes_only_it(setup, tmp_path):
    model, data, ref = setup
    opts, job = _job(model, data, str(tmp_path / "out"))
    full = _decode_ranks(opts, job, 2, [0, 1])
    # rank 1 dies while writing its second batch: no manifest, and a line cut short in its log
    part1 = part_dir(opts.output_dir, 2, 1)
    os.unlink(os.path.join(part1, "manifest.json"))
    with open(os.path.join(part1, "batches.jsonl"), encoding="utf-8") as f:
        header, first, second = f.readlines()
    with open(os.path.join(part1, "batches.jsonl"), "w", encoding="utf-8") as f:
        f.write(header + first + second[: len(second) // 2])
    with pytest.raises(ShardsMissingError, match=r"1 of 2 shards did not finish: shard 2-1 \(rank 1 of 2"):
        _merge(opts, job, 2)
    result_dir = os.path.join(opts.output_dir, "1best_recog")
    text, failed = _partition(data, result_dir)  # every key still ends in exactly one of text or failed
    rank1 = _flat(assign_shards(job_batches(job[3], job[2]), job[2], 2)[1])
    assert all("shard 2-1 (rank 1) did not finish" in failed[k] for k in rank1)
    assert set(text) == set(job[2]) - set(rank1)
    # the rerun reuses shard 0 (no audio decoded) and decodes shard 1's second batch only
    decoded = _decode_ranks(opts, job, 2, [1, 0])
    assert decoded[0] == 0.0 and 0 < decoded[1] < full[1]
    _merge(opts, job, 2)
    assert _files(result_dir) == ref


def test_parts_of_another_world_size_or_changed_audio_are_not_reused(setup, tmp_path):
    model, data, ref = setup
    opts, job = _job(model, data, str(tmp_path / "out"))
    _decode_ranks(opts, job, 2, [0, 1])
    # a rewritten audio file (new mtime) invalidates the part that holds it, and only that one
    data_dir, _, durations, asr = job
    path = data_dir.wavs[assign_shards(job_batches(asr, durations), durations, 2)[1][0][0]]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        decoded = _decode_ranks(opts, job, 2, [0, 1])
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert decoded[0] == 0.0 and decoded[1] > 0
    # a part made for another world size is stale, even under the right name
    os.rename(part_dir(opts.output_dir, 2, 0), part_dir(opts.output_dir, 3, 0))
    with pytest.raises(ShardsMissingError, match=r"shard 3-0 \(rank 0 of 3, \d+ utterances\): its part is stale"):
        _merge(opts, job, 3)
    decoded = _decode_ranks(opts, job, 3, [0, 1, 2])
    assert all(seconds > 0 for seconds in decoded.values())
    result = _merge(opts, job, 3)
    assert _files(result.result_dir) == ref  # the world-2 parts are gone too


# --------------------------------------------------------------------------------- torchrun, --nj
def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        env.pop(name, None)
    return env


def _recipe(prefix, model, data, out, *extra):
    cmd = [*prefix, INFER, "--model", model, "--data_dir", data, "--output_dir", out, "--device", "cpu"]
    return subprocess.run(
        [*cmd, "--ncpu", "1", "--batch_size", "2", *extra], env=_env(), capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # torchrun: 3 processes
def test_torchrun_three_ranks_byte_identical(setup, tmp_path):
    model, data, ref = setup
    out = str(tmp_path / "tr3")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "3"]
    done = _recipe(torchrun, model, data, out)
    assert done.returncode != 0  # utt99 failed: rank 0 exits 2, which torchrun reports as a failure
    assert re.search(r"exitcode\s*:\s*2\b", done.stderr) and "error: " not in done.stderr, done.stderr[-3000:]
    assert all(f"shard 3-{r}: decoding" in done.stderr for r in range(3)), done.stderr[-3000:]
    assert "decoded 6/7 utterances (1 failed)" in done.stdout
    assert _files(os.path.join(out, "1best_recog")) == ref


@pytest.mark.slow  # torchrun via --nj: 2 processes, three runs
def test_nj_two_failed_rank_then_rerun(setup, tmp_path):
    model, data, ref = setup
    out = str(tmp_path / "nj2")
    # rank 1 cannot create its part dir: it reports the failure, rank 0 merges and names the shard
    os.makedirs(os.path.join(out, "1best_recog", SHARDS_DIR))
    blocker = part_dir(out, 2, 1)
    open(blocker, "w").close()
    done = _recipe([sys.executable], model, data, out, "--nj", "2")
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "shard 2-1 (rank 1 of 2" in errors[0] and "cannot write" in errors[0], errors
    text, failed = _partition(data, os.path.join(out, "1best_recog"))
    assert text and sum("shard 2-1" in line for line in failed.values()) == len(failed) - 1
    # the rerun decodes shard 1 only and writes what one process writes
    os.unlink(blocker)
    done = _recipe([sys.executable], model, data, out, "--nj", "2")
    assert done.returncode == 2, done.stderr[-3000:]  # utt99 failed, as in one process
    assert "shard 2-0: reusing" in done.stderr and "shard 2-1: decoding" in done.stderr, done.stderr[-3000:]
    assert "decoded 6/7 utterances (1 failed)" in done.stdout
    assert _files(os.path.join(out, "1best_recog")) == ref


def test_a_vad_or_punctuation_job_refuses_ranks(tmp_path, monkeypatch):
    """The long-audio job runs in one process: ``--nj 2`` is refused before any rank starts, and under torchrun
    infer_after_finetune refused nothing and decoded the shards without the VAD and punctuation (silently)."""
    from funasr_lite.decode.infer import run_after_finetune
    from funasr_lite.decode.options import AfterFinetuneOptions
    from funasr_lite.errors import ConfigError

    base = dict(model=str(tmp_path), data_dir=str(tmp_path), output_dir=str(tmp_path / "out"))
    for extra in ({"vad_model": "fsmn-vad"}, {"punc_model": "ct-punc"}):
        with pytest.raises(ConfigError, match="runs in one process"):
            InferOptions(**base, **extra, nj=2)
    InferOptions(**base, vad_model="none", punc_model="none", nj=2)  # "none" switches them off
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    after = AfterFinetuneOptions(output_dir=str(tmp_path))
    for run in (lambda o: run_inference(o), lambda o: run_after_finetune(o, after)):
        with pytest.raises(ConfigError, match="runs in one process"):
            run(InferOptions(**base, vad_model=str(tmp_path)))
    assert not (tmp_path / "out").exists() and not (tmp_path / "decode_results").exists()
