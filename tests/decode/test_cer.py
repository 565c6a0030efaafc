"""CER scoring: units, alignment vs editdistance and FunASR's compute_wer, text.cer format, tool."""

import os
import subprocess
import sys

import editdistance
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funasr_lite.decode.cer import (
    align,
    cer_units,
    format_error_report,
    format_text_cer,
    score_corpus,
    score_utterance,
    write_error_report,
    write_text_cer,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "compute_cer.py")
EXAMPLE = os.path.join(ROOT, "egs_modelscope", "asr", "paraformer", "example")


# ---------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,units",
    [
        ("我 爱 北京", ["我", "爱", "北", "京"]),
        ("我爱北京", ["我", "爱", "北", "京"]),
        ("我爱Beijing天安门", ["我", "爱", "beijing", "天", "安", "门"]),
        ("Hello  WORLD", ["hello", "world"]),
        ("2024年", ["2", "0", "2", "4", "年"]),
        ("2 0 2 4 年", ["2", "0", "2", "4", "年"]),
        ("don't stop", ["don't", "stop"]),
        ("你好，world!", ["你", "好", "，", "world", "!"]),
        ("IBM公司", ["ibm", "公", "司"]),
        ("\ufeff  \t\r\n\u200b", []),
        ("", []),
        ("カタカナ 한국", ["カ", "タ", "カ", "ナ", "한", "국"]),
        ("Straße", ["strasse"]),
    ],
)
def test_cer_units(text, units):
    assert cer_units(text) == units


def test_whitespace_does_not_matter():
    a = score_utterance("u", "我 爱 北京 hello", "我爱北 京hello")
    assert a.wrong == 0 and a.cor == 5


# ---------------------------------------------------------------------------
# alignment
# ---------------------------------------------------------------------------


def _ref_distance(a, b):
    """Independent edit distance: recursive definition with memoization."""
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def d(i, j):
        if i == 0:
            return j
        if j == 0:
            return i
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def _counts(ali):
    c = {"C": 0, "S": 0, "I": 0, "D": 0}
    for p in ali:
        c[p.op] += 1
    return c


def test_align_simple_cases():
    ali = align(list("abcd"), list("abd"))
    assert [(p.op, p.ref, p.hyp) for p in ali] == [("C", "a", "a"), ("C", "b", "b"), ("D", "c", ""), ("C", "d", "d")]
    assert [p.op for p in align([], ["x", "y"])] == ["I", "I"]
    assert [p.op for p in align(["x", "y"], [])] == ["D", "D"]
    assert align([], []) == []


UNIT = st.sampled_from(list("abcde") + ["我", "爱", "hello"])


@settings(max_examples=400, deadline=None)
@given(st.lists(UNIT, max_size=12), st.lists(UNIT, max_size=12))
def test_alignment_is_a_minimum_edit_path(ref, hyp):
    ali = align(ref, hyp)
    c = _counts(ali)
    wrong = c["S"] + c["I"] + c["D"]
    assert wrong == editdistance.eval(ref, hyp) == _ref_distance(tuple(ref), tuple(hyp))
    # the alignment reproduces both sequences
    assert [p.ref for p in ali if p.op != "I"] == ref
    assert [p.hyp for p in ali if p.op != "D"] == hyp
    assert all((p.ref == p.hyp) == (p.op == "C") for p in ali)
    assert c["C"] + c["S"] + c["D"] == len(ref)


@settings(max_examples=200, deadline=None)
@given(st.lists(UNIT, min_size=1, max_size=12), st.lists(UNIT, max_size=12))
def test_breakdown_matches_funasr_compute_wer_by_line(ref, hyp):
    """Same tie order as FunASR (sub, then ins, then del): identical ins/del/sub counts."""
    pytest.importorskip("funasr")
    from funasr.metrics.wer import compute_wer_by_line

    fa = compute_wer_by_line(list(hyp), list(ref))
    c = _counts(align(ref, hyp))
    assert (c["C"], c["I"], c["D"], c["S"]) == (fa["cor"], fa["ins"], fa["del"], fa["sub"])
    assert int(fa["wrong"]) == c["S"] + c["I"] + c["D"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="我爱北京ab cD1，", max_size=15), min_size=1, max_size=5),
    st.lists(st.text(alphabet="我爱北京ab cD1，", max_size=15), min_size=1, max_size=5),
)
def test_corpus_totals_equal_editdistance_on_units(ref_texts, hyp_texts):
    refs = {f"u{i}": t for i, t in enumerate(ref_texts)}
    hyps = {f"u{i}": t for i, t in enumerate(hyp_texts)}
    rep = score_corpus(refs, hyps)
    expect = sum(editdistance.eval(cer_units(r), cer_units(hyps.get(k, ""))) for k, r in refs.items())
    assert rep.wrong == expect == rep.ins + rep.dels + rep.sub
    assert rep.nwords == sum(len(cer_units(r)) for r in refs.values())
    assert rep.cor + rep.sub + rep.dels == rep.nwords


# ---------------------------------------------------------------------------
# corpus scoring
# ---------------------------------------------------------------------------


def test_missing_hyp_counts_as_deletions_and_is_listed():
    refs = {"u1": "我爱北京", "u2": "你好 world", "u3": "天安门"}
    hyps = {"u1": "我爱北京", "u3": "天门", "x9": "多余"}
    rep = score_corpus(refs, hyps)
    assert [u.key for u in rep.utts] == ["u1", "u2", "u3"]
    assert rep.missing_hyp == ["u2"]
    assert rep.extra_hyp == ["x9"]
    u2 = rep.utts[1]
    assert u2.missing_hyp and (u2.dels, u2.ins, u2.sub, u2.cor) == (3, 0, 0, 0)
    assert (rep.wrong, rep.nwords, rep.dels) == (4, 10, 4)
    assert rep.summary_line() == "%WER 40.0 [ 4 / 10, 0 ins, 4 del, 0 sub ]"
    assert rep.ser_line() == "%SER 66.67 [ 2 / 3 ]"
    assert rep.scored_line() == "Scored 3 sentences, 1 not present in hyp."


def test_empty_reference_never_divides_by_zero():
    rep = score_corpus({"e1": "", "e2": "  "}, {"e1": "", "e2": "多 余"})
    e1, e2 = rep.utts
    assert e1.detail_line() == "e1(nwords=0,cor=0,ins=0,del=0,sub=0) corr:100.00%,cer:0.00%"
    assert e2.detail_line() == "e2(nwords=0,cor=0,ins=2,del=0,sub=0) corr:0.00%,cer:200.00%"
    assert rep.summary_line() == "%WER 200.0 [ 2 / 0, 2 ins, 0 del, 0 sub ]"
    assert score_corpus({}, {}).summary_line() == "%WER 0.0 [ 0 / 0, 0 ins, 0 del, 0 sub ]"
    assert score_corpus({}, {}).ser_line() == "%SER 0.0 [ 0 / 0 ]"
    assert score_corpus({"a": ""}, {"a": ""}).summary_line() == "%WER 0.0 [ 0 / 0, 0 ins, 0 del, 0 sub ]"


def test_text_cer_toy_example():
    """FunASR's text.cer block for one missing char: utt1(nwords=4,cor=3,ins=0,del=1,sub=0) corr:75.00%,cer:25.00%."""
    rep = score_corpus({"utt1": "我爱北京"}, {"utt1": "我爱北"})
    assert format_text_cer(rep) == (
        "utt1(nwords=4,cor=3,ins=0,del=1,sub=0) corr:75.00%,cer:25.00%\n"
        "ref:\t我 爱 北 京\n"
        "hyp:\t我 爱 北\n"
        "\n"
        "%WER 25.0 [ 1 / 4, 0 ins, 1 del, 0 sub ]\n"
        "%SER 100.0 [ 1 / 1 ]\n"
        "Scored 1 sentences, 0 not present in hyp.\n"
    )


def test_text_cer_is_byte_identical_to_funasr_compute_wer(tmp_path):
    """On inputs where both agree (space-separated units, same keys, non-empty refs)."""
    pytest.importorskip("funasr")
    from funasr.metrics.wer import compute_wer

    refs = {
        "a1": "我 爱 北 京 天 安 门",
        "a2": "今 天 hello world 好",
        "a3": "一 二 三 四 五 六 七 八 九",
        "a4": "ok",
        "a5": "你 好 你 好",
    }
    hyps = {
        "a1": "我 爱 北 京 天 安 门",
        "a2": "今 天 hello word 很 好",
        "a3": "一 三 三 四 六 七 八 九 十",
        "a4": "ok ok ok",
        "a5": "好",
    }
    rp, hp, out = tmp_path / "ref", tmp_path / "hyp", tmp_path / "fa.cer"
    rp.write_text("".join(f"{k} {v}\n" for k, v in refs.items()), encoding="utf-8")
    hp.write_text("".join(f"{k} {v}\n" for k, v in hyps.items()), encoding="utf-8")
    compute_wer(str(rp), str(hp), str(out))
    ours = tmp_path / "ours.cer"
    write_text_cer(str(ours), score_corpus(refs, hyps))
    assert ours.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(UNIT, min_size=1, max_size=8), st.lists(UNIT, max_size=8)), min_size=1, max_size=4))
def test_text_cer_matches_funasr_on_random_corpora(tmp_path_factory, pairs):
    pytest.importorskip("funasr")
    from funasr.metrics.wer import compute_wer

    d = tmp_path_factory.mktemp("wer")
    refs = {f"k{i}": " ".join(r) for i, (r, _) in enumerate(pairs)}
    hyps = {f"k{i}": " ".join(h) for i, (_, h) in enumerate(pairs)}
    (d / "ref").write_text("".join(f"{k} {v}\n" for k, v in refs.items()), encoding="utf-8")
    # FunASR's reader drops a key-only hypothesis line's text correctly but crashes on
    # a blank line, so an empty hypothesis is written as "key" alone.
    (d / "hyp").write_text("".join(f"{k} {v}".rstrip() + "\n" for k, v in hyps.items()), encoding="utf-8")
    compute_wer(str(d / "ref"), str(d / "hyp"), str(d / "fa.cer"))
    assert format_text_cer(score_corpus(refs, hyps)) == (d / "fa.cer").read_text(encoding="utf-8")


def test_write_text_cer_atomic_replaces_file(tmp_path):
    p = tmp_path / "text.cer"
    p.write_text("old\n")
    write_text_cer(str(p), score_corpus({"u": "好"}, {"u": "好"}))
    assert p.read_text(encoding="utf-8").splitlines()[-3:] == [
        "%WER 0.0 [ 0 / 1, 0 ins, 0 del, 0 sub ]",
        "%SER 0.0 [ 0 / 1 ]",
        "Scored 1 sentences, 0 not present in hyp.",
    ]
    assert sorted(os.listdir(tmp_path)) == ["text.cer"]  # no temporary left behind


# ---------------------------------------------------------------------------
# error report
# ---------------------------------------------------------------------------


def test_error_report_worst_first_aligned_with_confusions(tmp_path):
    refs = {"good": "我爱北京", "one": "今天 hello 好", "bad": "一二三四五", "gone": "天安门"}
    hyps = {"good": "我爱北京", "one": "今天 hallo 好", "bad": "一二二四五六", "extra": "x"}
    rep = score_corpus(refs, hyps)
    text = format_error_report(rep)
    lines = text.splitlines()
    # worst first: gone (3 del), bad (1 sub + 1 ins = 2), one (1 sub); good is not listed
    heads = [ln.split(":")[0] for ln in lines if ln.split(":")[0] in refs and " errors / " in ln]
    assert heads == ["gone", "bad", "one"]
    assert "No hypothesis (counted as deletions), 1: gone" in text
    assert "Hypothesis without reference (not scored), 1: extra" in text
    i = lines.index(next(ln for ln in lines if ln.startswith("bad:")))
    assert lines[i + 1] == "  REF: 一 二 三 四 五 *"
    assert lines[i + 2] == "  HYP: 一 二 二 四 五 六"
    assert lines[i + 3] == "  OPS:       S        I"
    j = lines.index(next(ln for ln in lines if ln.startswith("one:")))
    assert lines[j + 1 : j + 4] == ["  REF: 今 天 hello 好", "  HYP: 今 天 hallo 好", "  OPS:       S"]
    assert "     1  hello -> hallo" in lines and "     1  三 -> 二" in lines
    dels = lines.index(next(ln for ln in lines if ln.startswith("DELETIONS")))
    assert lines[dels].startswith("DELETIONS (ref), most frequent first: 3 in total, 3 distinct")
    ins = lines.index(next(ln for ln in lines if ln.startswith("INSERTIONS")))
    assert lines[ins + 1] == "     1  六"
    p = tmp_path / "errs.txt"
    write_error_report(str(p), rep)
    assert p.read_text(encoding="utf-8") == text


def test_error_report_counts_most_frequent_first_and_truncates():
    refs = {f"u{i}": "甲乙" for i in range(5)}
    hyps = {f"u{i}": ("丙乙" if i < 3 else "丁乙") for i in range(5)}
    hyps["u4"] = "甲"
    text = format_error_report(score_corpus(refs, hyps), max_confusions=1)
    assert "     3  甲 -> 丙\n   ... 1 more\n" in text


# ---------------------------------------------------------------------------
# tool
# ---------------------------------------------------------------------------


def _run(*args):
    """Run the tool as a separate process (end to end, as a user would)."""
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=120)


def _main(capsys, *args):
    """Run the tool's main() in this process (fast); returns (status, stdout, stderr)."""
    import compute_cer  # tools/ is on sys.path (tests/conftest.py)

    try:
        status = compute_cer.main(list(args))
    except SystemExit as e:  # argparse usage errors
        status = e.code
    cap = capsys.readouterr()
    return status, cap.out, cap.err


def test_tool_on_shipped_example(tmp_path):
    out = tmp_path / "new_dir" / "text.cer"  # output dirs are created
    errs = tmp_path / "new_dir" / "errs.txt"
    r = _run(os.path.join(EXAMPLE, "ref.txt"), os.path.join(EXAMPLE, "hyp.txt"), str(out), "--error-report", str(errs))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "%WER 7.55 [ 4 / 53, 1 ins, 1 del, 2 sub ]\n"
    assert out.read_text(encoding="utf-8").splitlines()[-1] == "Scored 5 sentences, 0 not present in hyp."
    assert "UTTERANCES WITH ERRORS, worst first: 4 of 5" in errs.read_text(encoding="utf-8")


def test_tool_bom_crlf_missing_and_extra_keys(tmp_path, capsys):
    ref = tmp_path / "ref"
    hyp = tmp_path / "hyp"
    ref.write_bytes("\ufeffu1 我爱北京\r\nu2 你好\r\n\r\nu3 天安门\r\n".encode("utf-8"))
    hyp.write_bytes("u1\t我 爱 北 京\r\nu3\r\nzz 多\r\n".encode("utf-8"))
    out = tmp_path / "text.cer"
    status, stdout, stderr = _main(capsys, str(ref), str(hyp), str(out))
    assert status == 0, stderr
    assert stdout == "%WER 55.56 [ 5 / 9, 0 ins, 5 del, 0 sub ]\n"
    assert "1 reference(s) have no hypothesis, counted as deletions: u2" in stderr
    assert "1 hypothesis key(s) have no reference, not scored: zz" in stderr
    text = out.read_text(encoding="utf-8")
    assert text.startswith("u1(nwords=4,cor=4,ins=0,del=0,sub=0) corr:100.00%,cer:0.00%\n")
    assert "u2(nwords=2,cor=0,ins=0,del=2,sub=0) corr:0.00%,cer:100.00%\nref:\t你 好\nhyp:\t\n" in text


@pytest.mark.parametrize(
    "ref_bytes,match",
    [
        (None, "no such file"),
        (b"u0 ok\nu1 \xff\xfe\n", "ref:2: error: invalid UTF-8"),
        (b"u1 \xff\xfe\n", "not a UTF-8"),
        (b"u1 a\nu1 b\n", "duplicate key"),
    ],
)
def test_tool_unreadable_input_exits_nonzero(tmp_path, capsys, ref_bytes, match):
    ref = tmp_path / "ref"
    if ref_bytes is not None:
        ref.write_bytes(ref_bytes)
    hyp = tmp_path / "hyp"
    hyp.write_text("u1 a\n", encoding="utf-8")
    out = tmp_path / "text.cer"
    status, stdout, stderr = _main(capsys, str(ref), str(hyp), str(out))
    assert status == 1 and stdout == ""
    assert match in stderr and str(ref) in stderr
    assert not out.exists()


def test_tool_unreadable_input_as_a_process_has_no_traceback(tmp_path):
    hyp = tmp_path / "hyp"
    hyp.write_text("u1 a\n", encoding="utf-8")
    r = _run(str(tmp_path / "missing_ref"), str(hyp), str(tmp_path / "text.cer"))
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "missing_ref: no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_tool_unwritable_output(tmp_path, capsys):
    ref = tmp_path / "ref"
    ref.write_text("u1 a\n", encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, stderr = _main(capsys, str(ref), str(ref), str(blocker / "text.cer"))
    assert status == 1 and stderr.startswith("error: cannot write")


def test_tool_usage_error(capsys):
    status, _, stderr = _main(capsys, "only-one-arg")
    assert status == 2 and "usage" in stderr.lower()


def _quadratic_align(ref, hyp):
    """The textbook O(n*m) Python alignment with the module's tie rules, as the oracle of the numpy one."""
    from funasr_lite.decode.cer import COR, DEL, INS, SUB, AlignedPair

    n, m = len(hyp), len(ref)
    cost = [[j if i == 0 else (i if j == 0 else 0) for j in range(m + 1)] for i in range(n + 1)]
    step = [[DEL if i == 0 and j else (INS if j == 0 and i else COR) for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if hyp[i - 1] == ref[j - 1]:
                cost[i][j] = cost[i - 1][j - 1]
                continue
            best, op = cost[i - 1][j - 1], SUB
            if cost[i - 1][j] < best:
                best, op = cost[i - 1][j], INS
            if cost[i][j - 1] < best:
                best, op = cost[i][j - 1], DEL
            cost[i][j], step[i][j] = best + 1, op
    out, i, j = [], n, m
    while i > 0 or j > 0:
        op = step[i][j]
        if op in (COR, SUB):
            out.append(AlignedPair(op, ref[j - 1], hyp[i - 1]))
            i, j = i - 1, j - 1
        elif op == INS:
            out.append(AlignedPair(INS, "", hyp[i - 1]))
            i -= 1
        else:
            out.append(AlignedPair(DEL, ref[j - 1], ""))
            j -= 1
    return out[::-1]


def test_align_equals_the_quadratic_oracle_on_random_pairs():
    import random

    from funasr_lite.decode.cer import align

    rng = random.Random(7)
    for _ in range(800):
        ref = [rng.choice("abcd") for _ in range(rng.randint(0, 10))]
        hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 10))]
        assert align(ref, hyp) == _quadratic_align(ref, hyp), (ref, hyp)


def test_align_of_an_hour_long_utterance_is_fast_and_small():
    """An hour of speech is ~16 k characters: the traceback takes one byte per cell (was Python lists of
    n x m objects: about 10 GB peak RSS in the long-audio job's CER)."""
    import random
    import time

    from funasr_lite.decode.cer import align

    rng = random.Random(3)
    ref = [rng.choice("一二三四五六七八九十") for _ in range(4000)]
    hyp = [rng.choice("一二三四五六七八九十") for _ in range(4000)]
    start = time.perf_counter()
    ali = align(ref, hyp)
    assert time.perf_counter() - start < 20
    assert [p.ref for p in ali if p.ref] == ref and [p.hyp for p in ali if p.hyp] == hyp
