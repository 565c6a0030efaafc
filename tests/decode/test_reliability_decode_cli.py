"""The decode job's reliability classes through the real recipe scripts (subprocesses; see
``test_reliability_decode.py`` for the in-process cases): non-finite weights, devices and option values
that cannot run, file-name flags that reach outside their dir, a held output dir, stale outputs.

Each job that cannot run exits 1 with one ``error:`` line naming the file or flag, no traceback, and
leaves no output dir it created behind."""

import os
import shutil
import sys
from typing import Callable, Dict, List, Tuple

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_reliability_infer import (  # noqa: E402
    AFTER,
    INFER,
    assert_clean_failure,
    assert_no_traceback,
    assert_partition,
    infer_args,
    run_recipe,
    run_recipe_many,
)

from funasr_lite.utils.lock import dir_lock  # noqa: E402
from tiny_model import build_tiny_model_dir  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dir(synth_data_dir, tmp_path_factory):
    return build_tiny_model_dir(str(tmp_path_factory.mktemp("cli_model")), synth_data_dir)


def _poison(value: float, tensor: str) -> Callable[[str, str], Tuple[str, List[str]]]:
    def build(tmp: str, model: str) -> Tuple[str, List[str]]:
        d = os.path.join(tmp, "model")
        shutil.copytree(model, d)
        state = torch.load(os.path.join(d, "model.pt"), weights_only=True)
        state[tensor].view(-1)[-1] = value
        torch.save(state, os.path.join(d, "model.pt"))
        return d, []

    return build


# a value the flag parser itself refuses: argparse's usage error (exit 2, "infer.py: error: argument --x: ...")
USAGE = "usage"


def _flags(*extra: str) -> Callable[[str, str], Tuple[str, List[str]]]:
    return lambda tmp, model: (model, list(extra))


CASES: List[Tuple[str, Callable, Tuple[str, ...]]] = [
    ("nan_encoder", _poison(float("nan"), "encoder.encoders0.0.feed_forward.w_1.weight"), ("model.pt", "w_1", "NaN")),
    ("inf_decoder", _poison(float("inf"), "decoder.output_layer.weight"), ("model.pt", "output_layer", "not finite")),
    ("nan_predictor", _poison(float("nan"), "predictor.cif_output.bias"), ("model.pt", "cif_output.bias")),
    ("device_foo", _flags("--device", "foo"), ("--device 'foo'", "available: auto, cpu")),
    ("device_mps", _flags("--device", "mps"), ("--device 'mps'", "available")),
    ("device_cpu_index", _flags("--device", "cpu:2"), ("--device 'cpu:2'", "available")),
    ("max_duration_nan", _flags("--max_duration", "nan"), (USAGE, "--max_duration", "finite")),
    ("max_duration_inf", _flags("--max_duration", "inf"), (USAGE, "--max_duration", "finite")),
    ("max_duration_zero", _flags("--max_duration", "0"), ("--max_duration 0",)),
    ("max_duration_negative", _flags("--max_duration=-5"), ("--max_duration -5",)),
    ("ncpu_zero", _flags("--ncpu", "0"), ("--ncpu 0",)),
    ("ncpu_huge", _flags("--ncpu", "100000000"), ("--ncpu 100000000",)),
    ("beam_huge", _flags("--beam_size", "100000"), ("beam_size=100000", "[1, 1000]")),
    ("beam_over_vocab", _flags("--beam_size", "500"), ("beam_size=500", "vocabulary size (43)")),
    ("beam_zero", _flags("--beam_size", "0"), ("beam_size=0",)),
    ("batch_size_zero", _flags("--batch_size", "0"), ("batch_size=0",)),
    ("batch_seconds_nan", _flags("--batch_seconds", "nan"), (USAGE, "--batch_seconds", "finite")),
    ("batch_seconds_inf", _flags("--batch_seconds", "inf"), (USAGE, "--batch_seconds", "finite")),
    ("ctc_weight_nan", _flags("--ctc_weight", "nan"), (USAGE, "--ctc_weight", "finite")),
    ("ctc_weight_big", _flags("--ctc_weight", "7"), ("ctc_weight=7",)),
    ("checkpoint_parent", _flags("--checkpoint", "../model/model.pt"), ("--checkpoint", "plain file name")),
    ("checkpoint_absolute", _flags("--checkpoint", "/etc/passwd"), ("--checkpoint", "plain file name")),
    ("checkpoint_dotdot", _flags("--checkpoint", ".."), ("--checkpoint", "plain file name")),
]
if not torch.cuda.is_available():
    CASES += [
        ("device_cuda", _flags("--device", "cuda"), ("--device 'cuda'", "CUDA is not available", "--device cpu")),
        ("device_cuda7", _flags("--device", "cuda:7"), ("--device 'cuda:7'", "CUDA is not available")),
    ]


@pytest.fixture(scope="module")
def runs(tiny_dir, synth_data_dir, tmp_path_factory):
    jobs: Dict[str, Tuple[List[str], str]] = {}
    outs = {}
    for case, build, _ in CASES:
        tmp = str(tmp_path_factory.mktemp(case))
        model, extra = build(tmp, tiny_dir)
        outs[case] = os.path.join(tmp, "out")
        args = infer_args(model, synth_data_dir, outs[case])
        # the last --device given wins: drop infer_args' own "--device cpu" when the case sets one
        if "--device" in extra:
            i = args.index("--device")
            del args[i : i + 2]
        jobs[case] = (args + extra, os.path.join(tmp, "run"))
    runs = run_recipe_many(INFER, jobs)
    return {case: (run, outs[case]) for case, run in runs.items()}


@pytest.mark.parametrize("case,needles", [(c, n) for c, _, n in CASES], ids=[c for c, _, _ in CASES])
def test_a_job_that_cannot_run_says_why_in_one_line(runs, case, needles):
    run, out = runs[case]
    if needles[0] == USAGE:
        assert_no_traceback(run)
        errors = [line for line in run.stderr.splitlines() if ": error: argument " in line]
        assert run.rc == 2 and len(errors) == 1 and all(n in errors[0] for n in needles[1:]), run.stderr[-2000:]
    else:
        assert_clean_failure(run, *needles)
    assert not os.path.exists(out), os.listdir(out)  # the output dir it would have created is not left behind


def test_a_held_output_dir_is_refused(tiny_dir, synth_data_dir, tmp_path):
    out = str(tmp_path / "out")
    with dir_lock(out, "test"):
        run = run_recipe(INFER, infer_args(tiny_dir, synth_data_dir, out), str(tmp_path / "run"))
    assert_clean_failure(run, out, "in use by pid")
    assert not os.path.exists(os.path.join(out, "1best_recog"))


def test_a_rerun_leaves_one_consistent_set(tiny_dir, synth_data_dir, tmp_path):
    out = tmp_path / "out"
    first = run_recipe(INFER, infer_args(tiny_dir, synth_data_dir, str(out), "--beam_size", "3"), str(tmp_path / "r1"))
    assert first.rc == 0, first.stderr[-2000:]
    rec = out / "1best_recog"
    set_name = os.path.basename(synth_data_dir)
    assert (rec / "text.cer").exists() and (rec / f"errs-{set_name}-beam3.txt").exists()
    (rec / "notes.txt").write_text("mine")
    no_text = tmp_path / "data"
    no_text.mkdir()
    shutil.copy(os.path.join(synth_data_dir, "wav.scp"), no_text / "wav.scp")
    second = run_recipe(INFER, infer_args(tiny_dir, str(no_text), str(out)), str(tmp_path / "r2"))
    assert second.rc == 0, second.stderr[-2000:]
    assert sorted(os.listdir(rec)) == ["failed", "notes.txt", "score", "text", "timestamp", "token"]
    assert_partition(str(no_text), str(rec))


def test_after_finetune_required_files_and_file_names(tiny_dir, synth_data_dir, tmp_path):
    ft = tmp_path / "ft"
    shutil.copytree(tiny_dir, ft)
    shutil.copy(ft / "model.pt", ft / "valid.acc.ave.pb")
    os.unlink(ft / "am.mvn")
    base = ["--output_dir", str(ft), "--data_dir", synth_data_dir, "--device", "cpu", "--ncpu", "1"]
    base += ["--modelscope_model_name", tiny_dir, "--decoding_model_name", "valid.acc.ave.pb"]
    run = run_recipe(AFTER, base + ["--required_files", "am.mvn", "config.yaml"], str(tmp_path / "r1"))
    assert run.rc == 0, run.stderr[-2000:]
    assert (ft / "am.mvn").exists()
    assert_partition(synth_data_dir, str(ft / "decode_results" / "1best_recog"))
    bad = {
        "req_parent": ["--required_files", "am.mvn", "../secret"],
        "req_abs": ["--required_files", "/etc/passwd"],
        "name_parent": ["--decoding_model_name", "../ft/model.pt"],
        "name_abs": ["--decoding_model_name", str(ft / "model.pt")],
    }
    with dir_lock(str(ft / "decode_results"), "test"):
        held = run_recipe(AFTER, base, str(tmp_path / "held"))
    assert_clean_failure(held, "decode_results", "in use")
    runs = run_recipe_many(AFTER, {k: (base + v, str(tmp_path / k)) for k, v in bad.items()})
    for name, run in runs.items():
        flag = "--required_files" if name.startswith("req") else "--decoding_model_name"
        assert_clean_failure(run, flag, "plain file name")
