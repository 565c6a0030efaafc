"""Every flag of the recipe scripts validates its value the same way, before any model or data is touched.

The cases are generated: every flag of ``infer.py``, ``finetune.py`` and ``infer_after_finetune.py`` (the
tiny demo's scripts, their parsers built as :mod:`funasr_lite.cli.recipes` builds them), and from each flag's
field type the bad values a user can type (wrong type, NaN/inf, negative, zero where >= 1 is needed, a huge
int, an empty string, a file name with ".."). Each runs in-process with the job itself replaced by a stub
that fails the test: a bad value must be refused in pre-flight, with exit status 1 or 2, one ``error:`` line
naming the flag, and no traceback.
"""

import argparse
import os
import runpy
from typing import Any, Dict, List, Tuple, Union, get_args, get_origin

import pytest

from funasr_lite.cli import recipes
from funasr_lite.cli.flags import option_flags
from funasr_lite.config.fields import Section
from funasr_lite.decode.options import AfterFinetuneOptions, InferOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo"
)


def _finetune_options():
    from funasr_lite.train.options import FinetuneOptions

    return FinetuneOptions


# script -> (cli, parser builder, runtime options types, module and name of the job the cli calls)
SCRIPTS = {
    "infer.py": (
        recipes.infer_cli,
        recipes.infer_parser,
        lambda: [InferOptions],
        "funasr_lite.decode.infer",
        "run_inference",
    ),
    "finetune.py": (
        recipes.finetune_cli,
        recipes.finetune_parser,
        lambda: [_finetune_options()],
        "funasr_lite.train.finetune",
        "finetune",
    ),
    "infer_after_finetune.py": (
        recipes.infer_after_finetune_cli,
        recipes.after_finetune_parser,
        lambda: [AfterFinetuneOptions, InferOptions],
        "funasr_lite.decode.infer",
        "run_after_finetune",
    ),
}

# the smallest valid value of the integer / number flags (every other one is >= 0, or > 0 where noted)
MIN_ONE = {"ncpu", "nj", "beam_size", "batch_size", "batch_bins", "max_epoch", "accum_grad", "keep_nbest_models"}
POSITIVE = {"lr", "max_duration"}  # 0 is not a usable value
AT_MOST_ONE = {"ctc_weight", "max_bad_ratio"}  # fractions / weights in [0, 1]
FILE_IN_DIR = {"checkpoint", "decoding_model_name", "final_checkpoint", "required_files"}  # names inside a dir
CONF_BAD = {  # --*_conf values: bad YAML, not a mapping, an unknown key, a bad value of a known key
    "scheduler_conf": ["{warmup_steps: ", "[1, 2]", "{warmup_stepz: 3}", "{warmup_steps: .nan}", "{warmup_steps: -5}"],
    "specaug_conf": ["{num_freq_mask: ", "7", "{num_freq_masks: 2}", "{num_freq_mask: -1}", "{lfr_rate: .inf}"],
}
# range checks of the run-time options owned by decode/options.py and train/finetune.py (the other changes)


def _defaults(script: str) -> Dict[str, Any]:
    return runpy.run_path(os.path.join(DEMO, script))["DEFAULTS"]


def _scalar(tp: Any) -> Tuple[Any, bool]:
    """(element type, is a list) of a flag's field type; Optional is dropped."""
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        lists = [a for a in args if get_origin(a) in (list, tuple)]
        return (get_args(lists[0])[0], True) if lists else (args[0], False)
    if get_origin(tp) in (list, tuple):
        return get_args(tp)[0], True
    return tp, False


def bad_values(name: str, tp: Any, choices) -> List[Tuple[str, str]]:
    """``(case id, text)`` of the bad values of flag ``name`` of field type ``tp``."""
    if isinstance(tp, type) and issubclass(tp, Section):
        return [("empty", "")] + [(f"conf{i}", v) for i, v in enumerate(CONF_BAD[name])]
    if choices:
        return [("bad-choice", "bogus"), ("empty", "")]
    elem, _ = _scalar(tp)
    out = [("empty", "")]
    if elem is int:
        out += [("text", "abc"), ("fraction", "1.5"), ("nan", "nan"), ("inf", "inf"), ("huge", "9" * 20)]
        out += [("negative", "-1")] + ([("zero", "0")] if name in MIN_ONE else [])
    elif elem is float:
        out += [("text", "abc"), ("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("overflow", "1e999")]
        out += [("negative", "-1")] + ([("zero", "0")] if name in POSITIVE else [])
        out += [("above-one", "1.5")] if name in AT_MOST_ONE else []
    elif elem is str:
        out += [("blank", "   ")]
        out += [("dotdot", "../../escape.pb")] if name in FILE_IN_DIR else []
    return out


def _cases():
    for script, (_, build, runtime, _, _) in SCRIPTS.items():
        defaults = _defaults(script)
        flags = option_flags(runtime())
        parser = build(defaults)
        for action in parser._actions:
            name = action.dest
            if not action.option_strings or name not in flags:
                continue
            field, tp = flags[name]
            for case, text in bad_values(name, tp, field.metadata.get("choices")):
                yield pytest.param(script, name, text, id=f"{script}--{name}-{case}")


def _run(monkeypatch, capsys, script: str, argv: List[str]) -> Tuple[int, str, str]:
    cli, _, _, module, job = SCRIPTS[script]

    def reached(*a, **k):
        raise AssertionError(f"{script} {argv}: the job started; the bad value passed pre-flight")

    monkeypatch.setattr(f"{module}.{job}", reached)
    try:
        status = cli(_defaults(script), argv)
    except SystemExit as e:  # argparse usage errors
        status = e.code
    cap = capsys.readouterr()
    return status, cap.out, cap.err


@pytest.mark.parametrize("script,name,text", list(_cases()))
def test_bad_flag_value_is_one_error_line_naming_the_flag(monkeypatch, capsys, script, name, text):
    status, out, err = _run(monkeypatch, capsys, script, [f"--{name}", text])
    assert "Traceback" not in err + out, err
    assert status in (1, 2), (status, err)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert f"--{name}" in errors[0], errors[0]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_the_recipe_defaults_pass_preflight_and_reach_the_job(monkeypatch, capsys, script):
    """The control: with no bad value, the stubbed job is what stops the run."""
    with pytest.raises(AssertionError, match="the job started"):
        _run(monkeypatch, capsys, script, [])


def test_every_flag_of_every_script_is_covered():
    for script, (_, build, runtime, _, _) in SCRIPTS.items():
        flags = option_flags(runtime())
        dests = {a.dest for a in build(_defaults(script))._actions if a.option_strings}
        assert dests - set(flags) - {"help", "debug", "no_progress_bar", "verbose", "overrides"} == set(), script
        assert isinstance(build(_defaults(script)), argparse.ArgumentParser)


def test_bad_recipe_default_names_the_flag(monkeypatch, capsys):
    defaults = dict(_defaults("infer.py"), ncpu="two", batch_size=0)
    monkeypatch.setattr("funasr_lite.decode.infer.run_inference", lambda *a, **k: pytest.fail("job started"))
    assert recipes.infer_cli(defaults, []) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: recipe default ncpu (--ncpu): expected an integer"), err
