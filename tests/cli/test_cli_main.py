"""The ``funasr-lite`` console command (funasr_lite.cli.main): dispatch, help, and no torch where none is needed."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from funasr_lite.cli import data_tools, model_tools
from funasr_lite.cli.main import COMMANDS, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "egs_modelscope", "asr", "paraformer", "example")
TOOLS = [
    "compute-cer",
    "validate-data-dir",
    "make-shards",
    "compute-cmvn",
    "average-checkpoints",
    "make-model-dir",
    "quantize",
]


def _python(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run this checkout's Python code in a fresh interpreter (so sys.modules starts empty)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, **kw)


def _main(capsys, *argv):
    try:
        status = main(list(argv))
    except SystemExit as e:  # argparse: --help, usage errors
        status = e.code
    cap = capsys.readouterr()
    return status, cap.out, cap.err


def test_compute_cer_module_on_shipped_example(tmp_path):
    out, errs = tmp_path / "new" / "text.cer", tmp_path / "new" / "errs.txt"
    r = _python(
        "-m",
        "funasr_lite.cli.main",
        "compute-cer",
        os.path.join(EXAMPLE, "ref.txt"),
        os.path.join(EXAMPLE, "hyp.txt"),
        str(out),
        "--error-report",
        str(errs),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "%WER 7.55 [ 4 / 53, 1 ins, 1 del, 2 sub ]\n"
    assert out.read_text(encoding="utf-8").splitlines()[-1] == "Scored 5 sentences, 0 not present in hyp."
    assert errs.stat().st_size > 0


def test_torch_free_commands_and_help_do_not_import_torch(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("a /no/such/a.wav\n", encoding="utf-8")
    (data / "text").write_text("a 你 好\n", encoding="utf-8")
    snippet = textwrap.dedent(f"""
        import sys
        from funasr_lite.cli.main import main

        def run(*argv):
            try:
                return main(list(argv))
            except SystemExit as e:
                return e.code

        codes = [run(), run("--help")] + [run(name, "--help") for name in {TOOLS!r}]
        codes.append(run("compute-cer", {os.path.join(EXAMPLE, "ref.txt")!r}, {os.path.join(EXAMPLE, "hyp.txt")!r},
                         {str(tmp_path / "text.cer")!r}))
        codes.append(run("validate-data-dir", {str(data)!r}))
        print("CODES", codes)
        print("TORCH", "torch" in sys.modules)
    """)
    r = _python("-c", snippet)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"CODES {[2, 0] + [0] * len(TOOLS) + [0, 1]}" in lines  # validate-data-dir: the audio is missing
    assert "TORCH False" in lines
    assert "funasr-lite compute-cer" in r.stdout and "funasr-lite validate-data-dir" in r.stdout


def test_top_level_help_lists_every_command(capsys):
    status, out, _ = _main(capsys, "--help")
    assert status == 0
    for name in COMMANDS:
        assert name in out
    assert set(TOOLS) | {"infer", "finetune"} == set(COMMANDS)
    status, _, err = _main(capsys, "no-such-command")
    assert status == 2 and "invalid choice" in err
    status, _, err = _main(capsys)
    assert status == 2 and "COMMAND" in err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_subcommand_help(capsys, name):
    status, out, _ = _main(capsys, name, "--help")
    assert status == 0
    assert out.startswith(f"usage: funasr-lite {name} ")
    if name in TOOLS:  # the tool's Usage block, verbatim, and the defaults of its flags
        assert "Usage:\n    funasr-lite " + name in out
        assert "python tools/" + name.replace("-", "_") + ".py" in out


def test_help_shows_defaults(capsys):
    _, out, _ = _main(capsys, "compute-cmvn", "--help")
    assert "(default: 16000)" in out and "(default: hamming)" in out
    _, out, _ = _main(capsys, "average-checkpoints", "--help")
    assert "(default: acc)" in out and "(default: None)" not in out


def test_infer_requires_model_data_and_output_dir(capsys):
    status, _, err = _main(capsys, "infer", "--model", "m")
    assert status == 1 and err.strip() == "error: --data_dir, --output_dir are required (no recipe default)"


def test_finetune_without_model_is_one_error_line(capsys):
    status, _, err = _main(capsys, "finetune")
    assert status == 1 and err.strip() == "error: --model, --data_path are required (no recipe default)"


def test_choices_spelled_out_for_torch_free_help_match_the_library():
    from funasr_lite.data.frontend import WINDOW_TYPES
    from funasr_lite.train.checkpoint import CRITERIA

    assert tuple(data_tools.WINDOW_TYPES) == tuple(WINDOW_TYPES)
    assert tuple(model_tools.METRICS) == tuple(sorted(CRITERIA))


def test_make_shards_reuse(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "wav").mkdir(parents=True)
    scp, text = [], []
    for i in range(5):
        path = data / "wav" / f"u{i}.wav"
        sf.write(str(path), np.zeros(1600 * (i + 1), dtype=np.float32), 16000)
        scp.append(f"u{i} {path}\n")
        text.append(f"u{i} 一 二\n")
    (data / "wav.scp").write_text("".join(scp), encoding="utf-8")
    (data / "text").write_text("".join(text), encoding="utf-8")
    out = tmp_path / "shards"
    status, stdout, _ = _main(capsys, "make-shards", str(data), str(out), "--utts_per_shard", "2")
    assert status == 0 and "3 shard(s), 5 utterance(s)" in stdout
    mtime = os.stat(out / "data.list").st_mtime_ns
    status, stdout, _ = _main(capsys, "make-shards", str(data), str(out), "--utts_per_shard", "2", "--reuse")
    assert status == 0 and stdout == f"shards: {out / 'data.list'}\n"
    assert os.stat(out / "data.list").st_mtime_ns == mtime  # unchanged source: reused
    status, _, _ = _main(capsys, "make-shards", str(data), str(out), "--utts_per_shard", "5", "--reuse")
    assert status == 0 and (out / "data.list").read_text().count("\n") == 1  # other shard size: rebuilt
    status, _, err = _main(capsys, "make-shards", str(data), str(out), "--reuse", "--overwrite")
    assert status == 2 and "not allowed with" in err


def _data_path(root, splits=("train", "dev")):
    """A finetune --data_path: one tiny data dir per split, 1 s of noise per utterance, text in the demo's vocab."""
    rng = np.random.default_rng(0)
    for split in splits:
        d = root / split
        (d / "wav").mkdir(parents=True)
        scp, text = [], []
        for i in range(3):
            path = d / "wav" / f"{split}{i}.wav"
            sf.write(str(path), (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
            scp.append(f"{split}{i} {path}\n")
            text.append(f"{split}{i} 一 二 三\n")
        (d / "wav.scp").write_text("".join(scp), encoding="utf-8")
        (d / "text").write_text("".join(text), encoding="utf-8")
    return root


def test_make_shards_data_path_writes_the_large_layout(tmp_path, capsys):
    from funasr_lite.data.shards import read_data_list
    from funasr_lite.train.finetune import find_data_dirs

    data = _data_path(tmp_path / "data", splits=("train", "validation"))
    out = tmp_path / "data_large"
    status, stdout, err = _main(capsys, "make-shards", "--data_path", str(data), str(out), "--utts_per_shard", "2")
    assert status == 0, err
    assert f"2 shard(s), 3 utterance(s): {out / 'train' / 'data.list'}" in stdout
    assert f"2 shard(s), 3 utterance(s): {out / 'validation' / 'data.list'}" in stdout
    assert f"python finetune.py --data_path {out} --dataset_type large\n" in stdout
    # what finetuning finds under --data_path, and reads in large mode
    train, dev = find_data_dirs(str(out))
    assert len(read_data_list(train)) == 2 and len(read_data_list(dev)) == 2
    status, stdout, _ = _main(capsys, "make-shards", "--data_path", str(data), str(out), "--reuse")
    assert status == 0 and stdout.startswith(f"shards: {out / 'train' / 'data.list'}\n")
    status, _, err = _main(capsys, "make-shards", "--data_path", str(data / "train"), str(tmp_path / "x"))
    assert status == 2 and "missing train/ and dev/ (or validation/)" in err


@pytest.mark.slow
def test_make_shards_data_path_next_step_finetunes(tmp_path, capsys):
    """The printed funasr-lite command, with a model and an output dir filled in, finetunes on the shards."""
    demo = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "egs_modelscope/asr/paraformer/speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo/model",
    )
    data, out = _data_path(tmp_path / "data"), tmp_path / "data_large"
    status, stdout, _ = _main(capsys, "make-shards", "--data_path", str(data), str(out))
    assert status == 0
    command = next(line for line in stdout.splitlines() if line.startswith("or: funasr-lite finetune"))
    argv = command.split()[2:]
    argv[argv.index("MODEL")] = demo
    argv[argv.index("OUTPUT_DIR")] = str(tmp_path / "exp")
    status, _, err = _main(capsys, *argv, "--max_epoch", "1", "--device", "cpu")
    assert status == 0, err
    assert (tmp_path / "exp" / "model.pt").is_file()


def test_bench_common_says_it_is_a_helper_module():
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools")
    proc = subprocess.run(
        [sys.executable, os.path.join(tool, "bench_common.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.startswith("usage: bench_common.py")
    assert "A helper module, not a command" in proc.stdout and "tools/bench_infer.py" in proc.stdout
    proc = subprocess.run([sys.executable, os.path.join(tool, "bench_common.py")], capture_output=True, text=True)
    assert proc.returncode == 2 and "use python tools/bench_infer.py or python tools/bench_train.py" in proc.stdout


def test_an_output_path_that_is_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    """compute-cer REF HYP REF (or compute-cmvn DATA DATA/wav.scp) used to replace the input with the output."""
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    ref.write_text("a 我 们\n", encoding="utf-8")
    hyp.write_text("a 我\n", encoding="utf-8")
    os.symlink(str(ref), str(tmp_path / "ref_link"))
    for out, extra in (
        (ref, []),
        (tmp_path / "ref_link", []),
        (hyp, []),
        (tmp_path / "o.cer", ["--error-report", str(ref)]),
    ):
        status, _, err = _main(capsys, "compute-cer", str(ref), str(hyp), str(out), *extra)
        assert status == 1 and err.count("error:") == 1 and "is the same file as the input" in err, err
    assert ref.read_text(encoding="utf-8") == "a 我 们\n" and hyp.read_text(encoding="utf-8") == "a 我\n"
    data = tmp_path / "data"
    data.mkdir()
    sf.write(str(data / "x.wav"), np.zeros(1600, dtype=np.float32), 16000)
    (data / "wav.scp").write_text(f"x {data / 'x.wav'}\n", encoding="utf-8")
    status, _, err = _main(capsys, "compute-cmvn", str(data), str(data / "wav.scp"))
    assert status == 1 and "is the input" in err and (data / "wav.scp").read_text().startswith("x ")


def test_an_output_path_that_is_a_directory_is_named_not_a_temporary_file(tmp_path, capsys):
    ref = tmp_path / "ref"
    ref.write_text("a 我\n", encoding="utf-8")
    status, _, err = _main(capsys, "compute-cer", str(ref), str(ref), str(tmp_path))
    assert status == 1 and err == f"error: cannot write {tmp_path}: is a directory, expected a file path\n", err
    assert [p.name for p in tmp_path.iterdir()] == ["ref"]  # no temporary file left behind
