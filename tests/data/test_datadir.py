"""Tests for funasr_lite.data.datadir and tools/validate_data_dir.py."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funasr_lite.data.datadir import (
    DataDir,
    Problem,
    load_data_dir,
    read_scp,
    resolve_audio_path,
)
from funasr_lite.errors import DataDirError

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "validate_data_dir.py"


# ---------------------------------------------------------------- helpers
def write_wav(path: Path, seconds: float = 0.1, sr: int = 16000) -> str:
    """Write a tiny sine wav and return its path as str."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    return str(path)


def make_dir(
    tmp_path: Path, wav_lines: List[str], text_lines=None, *, name="data", raw_wav: bytes = None, raw_text: bytes = None
) -> Path:
    """Create a data dir with the given wav.scp/text lines (joined with \\n)."""
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "wav.scp").write_bytes(raw_wav if raw_wav is not None else ("\n".join(wav_lines) + "\n").encode("utf-8"))
    if raw_text is not None:
        (d / "text").write_bytes(raw_text)
    elif text_lines is not None:
        (d / "text").write_bytes(("\n".join(text_lines) + "\n").encode("utf-8"))
    return d


@pytest.fixture
def wavs(tmp_path: Path) -> Dict[str, str]:
    """Three tiny wav files, one of them in a folder with a space in its name."""
    return {
        "utt1": write_wav(tmp_path / "audio" / "a.wav"),
        "utt2": write_wav(tmp_path / "audio" / "b.wav"),
        "utt3": write_wav(tmp_path / "my audio" / "c d.wav"),
    }


def messages(dd: DataDir, severity: str = None) -> List[str]:
    return [str(p) for p in dd.problems if severity is None or p.severity == severity]


# ---------------------------------------------------------------- clean inputs
def test_clean_dir_no_problems(tmp_path, wavs):
    d = make_dir(
        tmp_path, [f"{k} {v}" for k, v in wavs.items()], ["utt1 我 爱 北京", "utt2 go swim 去 游 泳", "utt3 你好"]
    )
    dd = load_data_dir(str(d), mode="train", strict=True)
    assert dd.problems == []
    assert list(dd.wavs) == ["utt1", "utt2", "utt3"]
    assert dd.wavs["utt3"] == wavs["utt3"]  # space in the path kept
    assert dd.texts == {"utt1": "我 爱 北京", "utt2": "go swim 去 游 泳", "utt3": "你好"}
    assert dd.good_keys() == ["utt1", "utt2", "utt3"]
    assert dd.wav_lines == {"utt1": 1, "utt2": 2, "utt3": 3}


def test_crlf_bom_tabs_blank_lines(tmp_path, wavs):
    wav = (
        "\ufeffutt1\t" + wavs["utt1"] + "\r\n\r\n   \r\n"
        "utt2 \t  " + wavs["utt2"] + "  \t\r\n"
        "\n  utt3\t\t" + wavs["utt3"] + "\r\n"
    )
    text = "\ufeffutt1\t我 爱\r\nutt2  go  swim\r\n\r\nutt3 你好 \r\n"
    d = make_dir(tmp_path, [], raw_wav=wav.encode("utf-8"), raw_text=text.encode("utf-8"))
    dd = load_data_dir(str(d), mode="train", strict=True)
    assert dd.problems == []
    assert dd.wavs == wavs
    assert dd.texts == {"utt1": "我 爱", "utt2": "go  swim", "utt3": "你好"}
    assert dd.wav_lines == {"utt1": 1, "utt2": 4, "utt3": 6}


def test_no_trailing_newline(tmp_path, wavs):
    d = make_dir(tmp_path, [], raw_wav=f"utt1 {wavs['utt1']}".encode())
    assert load_data_dir(str(d), strict=True).wavs == {"utt1": wavs["utt1"]}


def test_read_scp_rejects_bad_what(tmp_path):
    with pytest.raises(ValueError):
        read_scp(str(tmp_path / "x"), what="utt2spk")
    with pytest.raises(ValueError):
        load_data_dir(str(tmp_path), mode="test")


# ---------------------------------------------------------------- per-line errors
def test_duplicate_keys(tmp_path, wavs):
    d = make_dir(
        tmp_path,
        [f"utt1 {wavs['utt1']}", f"utt2 {wavs['utt2']}", f"utt1 {wavs['utt3']}"],
        ["utt1 a", "utt2 b", "utt2 c"],
    )
    dd = load_data_dir(str(d))
    errs = messages(dd, "error")
    assert f"{d}/wav.scp:3: error: duplicate key 'utt1' (first seen at line 1)" in errs
    assert f"{d}/text:3: error: duplicate key 'utt2' (first seen at line 2)" in errs
    assert dd.wavs["utt1"] == wavs["utt1"]  # first kept
    assert dd.texts["utt2"] == "b"
    assert list(dd.failed_keys()) == ["utt1", "utt2"]
    assert list(dd.failed_keys(include_text=False)) == ["utt1"]
    with pytest.raises(DataDirError) as ei:
        load_data_dir(str(d), strict=True)
    assert "2 error(s)" in str(ei.value) and "wav.scp:3" in str(ei.value) and "text:3" in str(ei.value)


def test_line_with_no_value(tmp_path, wavs):
    d = make_dir(tmp_path, [f"utt1 {wavs['utt1']}", "utt2", f"utt3 {wavs['utt3']}"], ["utt1 a", "utt2 ", "utt3 c"])
    dd = load_data_dir(str(d), mode="infer")
    assert [str(p) for p in dd.errors] == [f"{d}/wav.scp:2: error: key 'utt2' has no value (expected 'key value')"]
    assert f"{d}/text:2: warning: key 'utt2' has an empty value" in messages(dd, "warning")
    assert dd.texts["utt2"] == ""
    assert list(dd.wavs) == ["utt1", "utt2", "utt3"]  # the key is kept, as a failed utterance
    assert list(dd.failed_keys()) == ["utt2"] and dd.good_keys() == ["utt1", "utt3"]
    # an empty transcription is an error for training
    dd = load_data_dir(str(d), mode="train")
    assert f"{d}/text:2: error: key 'utt2' has no value (expected 'key value')" in messages(dd, "error")


def test_non_utf8_text_line(tmp_path, wavs):
    raw = "utt1 我 爱\n".encode() + "utt2 北京\n".encode("gbk") + "utt3 你好\n".encode()
    d = make_dir(tmp_path, [f"{k} {v}" for k, v in wavs.items()], raw_text=raw)
    dd = load_data_dir(str(d))
    assert len(dd.errors) == 1
    p = dd.errors[0]
    assert (p.file, p.line, p.key) == (f"{d}/text", 2, "utt2")
    assert "invalid UTF-8 byte 0xb1" in p.message
    assert str(p).startswith(f"{d}/text:2: error: invalid UTF-8")
    assert dd.texts == {"utt1": "我 爱", "utt3": "你好"}
    assert list(dd.failed_keys()) == ["utt2"]
    assert dd.good_keys(include_text=False) == ["utt1", "utt2", "utt3"]
    # no spurious "no line in text" warning for utt2: its line exists, it is just bad
    assert not any("no line in text" in m for m in messages(dd))


def test_non_utf8_key_in_wav_scp(tmp_path, wavs):
    raw = f"utt1 {wavs['utt1']}\n".encode() + b"\xff\xfeutt2 /x.wav\n"
    d = make_dir(tmp_path, [], raw_wav=raw)
    dd = load_data_dir(str(d))
    # the undecodable key is still a key of wav.scp (escaped), so it is a failed utterance
    # naming wav.scp:2, not a line that silently vanishes from the job
    assert [(p.line, p.key) for p in dd.errors] == [(2, "\\xff\\xfeutt2")]
    assert dd.file_errors() == []
    assert list(dd.wavs) == ["utt1", "\\xff\\xfeutt2"]
    assert list(dd.failed_keys()) == ["\\xff\\xfeutt2"]


def test_dangling_text_symlink_is_an_error_not_an_absent_text(tmp_path, wavs):
    d = make_dir(tmp_path, [f"{k} {v}" for k, v in wavs.items()])
    os.symlink(str(tmp_path / "nowhere"), str(d / "text"))
    with pytest.raises(DataDirError, match=r"/text: no such file"):
        load_data_dir(str(d))


def test_whole_file_not_utf8(tmp_path):
    d = make_dir(tmp_path, [], raw_wav="utt1 /a/北京.wav\nutt2 /b/上海.wav\n".encode("gbk"))
    with pytest.raises(DataDirError, match="no line is valid UTF-8"):
        load_data_dir(str(d))


def test_utf16_and_binary_refused(tmp_path, wavs):
    d = make_dir(tmp_path, [], raw_wav=f"utt1 {wavs['utt1']}\n".encode("utf-16"))
    with pytest.raises(DataDirError, match="UTF-16"):
        load_data_dir(str(d))
    d = make_dir(tmp_path, [], raw_wav=Path(wavs["utt1"]).read_bytes(), name="bin")
    with pytest.raises(DataDirError, match="NUL bytes"):
        load_data_dir(str(d))


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ("sox {marker} -t wav - |", "pipe command"),
        ("sox {marker} -t wav -|", "pipe command"),
        ("| tee {marker}", "pipe command"),
        ("-", "stdin"),
        ("ark:{marker}.ark", "ark:/scp:"),
        ("ark,s,cs:{marker}.ark", "ark:/scp:"),
        ("scp:{marker}.scp", "ark:/scp:"),
        ("{marker}.ark:1234", "offset"),
        ("{marker}.ark:1234[0:1600]", "offset"),
    ],
)
def test_kaldi_pipes_and_arks_refused_never_run(tmp_path, wavs, entry, fragment):
    marker = tmp_path / "pwned"
    d = make_dir(tmp_path, [f"utt1 {wavs['utt1']}", "utt2 " + entry.format(marker=marker)])
    dd = load_data_dir(str(d))
    assert len(dd.errors) == 1
    p = dd.errors[0]
    assert (p.line, p.key) == (2, "utt2") and fragment in p.message
    assert list(dd.failed_keys()) == ["utt2"] and dd.good_keys() == ["utt1"]
    assert not marker.exists() and not Path(str(marker) + ".ark").exists()


def test_pipe_like_text_is_fine(tmp_path, wavs):
    d = make_dir(tmp_path, [f"utt1 {wavs['utt1']}"], ["utt1 a | b |"])
    dd = load_data_dir(str(d), strict=True)
    assert dd.texts == {"utt1": "a | b |"}


# ---------------------------------------------------------------- audio files
def test_missing_and_empty_audio_reported_per_key(tmp_path, wavs):
    empty = tmp_path / "audio" / "empty.wav"
    empty.write_bytes(b"")
    (tmp_path / "adir.wav").mkdir()
    d = make_dir(
        tmp_path, [f"utt1 {wavs['utt1']}", f"utt2 {tmp_path}/nope.wav", f"utt3 {empty}", f"utt4 {tmp_path}/adir.wav"]
    )
    dd = load_data_dir(str(d))
    assert [(p.line, p.key) for p in dd.errors] == [(2, "utt2"), (3, "utt3"), (4, "utt4")]
    assert f"{d}/wav.scp:2: error: audio file of 'utt2' not found: {tmp_path}/nope.wav" in messages(dd)
    assert "empty (0 bytes)" in dd.errors[1].message and "not a file" in dd.errors[2].message
    assert dd.good_keys() == ["utt1"]
    assert load_data_dir(str(d), check_audio=False).problems == []


def test_relative_paths_cwd_first_then_data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    write_wav(d / "in_dir.wav")
    write_wav(tmp_path / "work" / "in_cwd.wav")
    write_wav(tmp_path / "work" / "both.wav")
    write_wav(d / "both.wav")
    make_dir(tmp_path, ["a in_dir.wav", "b in_cwd.wav", "c both.wav", "d neither.wav"])
    monkeypatch.chdir(tmp_path / "work")
    dd = load_data_dir(str(d))
    assert dd.wavs["a"] == os.path.join(str(d), "in_dir.wav")
    assert dd.wavs["b"] == "in_cwd.wav"
    assert dd.wavs["c"] == "both.wav"  # the cwd wins, as in Kaldi
    assert dd.wavs["d"] == "neither.wav"
    assert [p.key for p in dd.errors] == ["d"]
    assert resolve_audio_path("/abs/x.wav", str(d)) == "/abs/x.wav"


# ---------------------------------------------------------------- key mismatches
def test_key_mismatch_infer_vs_train(tmp_path, wavs):
    d = make_dir(tmp_path, [f"utt1 {wavs['utt1']}", f"utt2 {wavs['utt2']}"], ["utt1 a", "utt9 z"])
    dd = load_data_dir(str(d), mode="infer")
    assert dd.errors == []
    assert messages(dd, "warning") == [
        f"{d}/text:2: warning: key 'utt9' is not in wav.scp",
        f"{d}/wav.scp:2: warning: key 'utt2' has no line in text; it will have no reference (not scored)",
    ]
    assert dd.good_keys() == ["utt1", "utt2"]
    dd = load_data_dir(str(d), mode="train")
    assert [(os.path.basename(p.file), p.line, p.key) for p in dd.errors] == [("text", 2, None), ("wav.scp", 2, "utt2")]
    assert dd.good_keys() == ["utt1"]
    with pytest.raises(DataDirError, match="utt9"):
        load_data_dir(str(d), mode="train", strict=True)


def test_text_missing_or_empty(tmp_path, wavs):
    d = make_dir(tmp_path, [f"utt1 {wavs['utt1']}"])
    dd = load_data_dir(str(d))
    assert dd.texts is None and dd.problems == []
    with pytest.raises(DataDirError, match="no 'text' file"):
        load_data_dir(str(d), mode="train")
    (d / "text").write_bytes(b"\r\n\n")
    dd = load_data_dir(str(d))
    assert dd.texts is None and messages(dd) == [f"{d}/text: warning: is empty; no reference transcriptions"]
    with pytest.raises(DataDirError, match="is empty"):
        load_data_dir(str(d), mode="train")


# ---------------------------------------------------------------- whole-dir errors
def test_empty_wav_scp(tmp_path):
    d = make_dir(tmp_path, [], raw_wav=b"\xef\xbb\xbf\r\n  \n")
    with pytest.raises(DataDirError, match="wav.scp: is empty"):
        load_data_dir(str(d))


def test_nonexistent_dir_and_no_wav_scp(tmp_path):
    with pytest.raises(DataDirError, match="data dir does not exist"):
        load_data_dir(str(tmp_path / "nope"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataDirError, match="is not a directory"):
        load_data_dir(str(tmp_path / "f"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataDirError, match="has no wav.scp"):
        load_data_dir(str(tmp_path / "empty"))
    with pytest.raises(DataDirError, match="no such file"):
        read_scp(str(tmp_path / "empty" / "wav.scp"))


def test_segments_refused(tmp_path, wavs):
    d = make_dir(tmp_path, [f"rec1 {wavs['utt1']}"])
    (d / "segments").write_text("utt1 rec1 0.0 0.05\n")
    with pytest.raises(DataDirError, match="segments"):
        load_data_dir(str(d))


def test_all_problems_collected(tmp_path, wavs):
    raw = (
        f"utt1 {wavs['utt1']}\nutt1 {wavs['utt2']}\nutt2\nutt3 cat x.wav |\nutt4 {tmp_path}/missing.wav\n"
    ).encode() + "utt5 /a/北.wav\n".encode("gbk")
    d = make_dir(tmp_path, [], raw_wav=raw)
    dd = load_data_dir(str(d))
    assert [p.line for p in dd.errors] == [2, 3, 4, 6, 5]
    assert list(dd.failed_keys()) == ["utt1", "utt2", "utt3", "utt4", "utt5"]


def test_problem_str_without_line():
    assert str(Problem("d/text", None, "is empty", "warning")) == "d/text: warning: is empty"


# ---------------------------------------------------------------- property-based parser test
_KEY_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="\ufeff")
_WORD = st.text(_KEY_CHARS, min_size=1, max_size=6)
_SEP = st.sampled_from([" ", "\t", "  ", " \t "])


@st.composite
def _entries(draw):
    keys = draw(st.lists(_WORD, min_size=1, max_size=8, unique=True))
    out = []
    for k in keys:
        words = draw(st.lists(_WORD, min_size=1, max_size=4))
        seps = [draw(_SEP) for _ in words[1:]]
        value = words[0] + "".join(s + w for s, w in zip(seps, words[1:]))
        out.append((k, draw(_SEP), value))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=_entries(), crlf=st.booleans(), bom=st.booleans(), blank=st.booleans(), trailing=st.booleans())
def test_parser_roundtrip_property(tmp_path, entries, crlf, bom, blank, trailing):
    nl = "\r\n" if crlf else "\n"
    lines = []
    for key, sep, value in entries:
        lines.append(key + sep + value + (" \t" if trailing else ""))
        if blank:
            lines.append(" ")
    data = ("\ufeff" if bom else "") + nl.join(lines) + nl
    path = tmp_path / "text"
    path.write_bytes(data.encode("utf-8"))
    table = read_scp(str(path), what="text")
    assert table.problems == []
    assert list(table.entries.items()) == [(k, v) for k, _, v in entries]
    step = 2 if blank else 1
    assert list(table.lines.values()) == [1 + step * i for i in range(len(entries))]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=_entries())
def test_wav_scp_paths_roundtrip_property(tmp_path, entries):
    lines = [f"{k}{sep}/data/{v}.wav" for k, sep, v in entries]
    path = tmp_path / "wav.scp"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    table = read_scp(str(path), what="wav.scp")
    assert table.problems == []
    assert table.entries == {k: f"/data/{v}.wav" for k, _, v in entries}


def test_matches_funasr_reader_on_plain_scp(tmp_path, wavs):
    """Oracle: funasr's own scp reader gives the same key/path pairs on ordinary input."""
    funasr = pytest.importorskip("funasr")  # noqa: F841
    from funasr.auto.auto_model import prepare_data_iterator

    d = make_dir(tmp_path, ["utt1\t" + wavs["utt1"], "utt2   " + wavs["utt2"], "utt3 " + wavs["utt3"]])
    keys, data = prepare_data_iterator(str(d / "wav.scp"))
    assert dict(zip(keys, data)) == dict(load_data_dir(str(d), strict=True).wavs)


# ---------------------------------------------------------------- CLI
def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120)


def test_tool_reports_every_problem(tmp_path, wavs):
    d = make_dir(
        tmp_path,
        [f"utt1 {wavs['utt1']}", f"utt1 {wavs['utt2']}", "utt2 cat a.wav |", f"utt3 {tmp_path}/missing.wav"],
        ["utt1 a", "utt9 b"],
    )
    r = run_tool(str(d))
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[0] == f"{d}/wav.scp:2: error: duplicate key 'utt1' (first seen at line 1)"
    assert out[1].startswith(f"{d}/wav.scp:3: error: Kaldi pipe command")
    assert out[2] == f"{d}/wav.scp:4: error: audio file of 'utt3' not found: {tmp_path}/missing.wav"
    assert f"{d}/text:2: warning: key 'utt9' is not in wav.scp" in out
    assert len(out) == 6  # 3 errors + utt9 + utt2/utt3 without text
    r = run_tool(str(d), "--mode", "train")
    assert r.returncode == 1 and f"{d}/text:2: error: key 'utt9' is not in wav.scp" in r.stdout


def test_tool_ok_and_whole_dir_errors(tmp_path, wavs):
    d = make_dir(tmp_path, [f"{k} {v}" for k, v in wavs.items()], ["utt1 a", "utt2 b", "utt3 c"])
    r = run_tool(str(d), "--mode", "train")
    assert r.returncode == 0 and r.stdout == "" and "3 utterances" in r.stderr
    r = run_tool(str(tmp_path / "missing"))
    assert r.returncode == 2 and "data dir does not exist" in r.stderr and "Traceback" not in r.stderr


def test_tool_help_has_usage():
    r = run_tool("--help")  # the Usage block lives in funasr_lite.cli.data_tools; the tool is a shim
    assert r.returncode == 0
    assert "Usage:" in r.stdout and "python tools/validate_data_dir.py" in r.stdout


# ---------------------------------------------------------------- line terminators and key characters
# every character str.splitlines() breaks at, except "\n", and a few other controls/spaces refused in keys
LINE_BREAKS = {
    "\r": "U+000D CARRIAGE RETURN",
    "\v": "U+000B LINE TABULATION",
    "\f": "U+000C FORM FEED",
    "\x1c": "U+001C FILE SEPARATOR",
    "\x1d": "U+001D GROUP SEPARATOR",
    "\x1e": "U+001E RECORD SEPARATOR",
    "\x85": "U+0085 NEXT LINE",
    "\u2028": "U+2028 LINE SEPARATOR",
    "\u2029": "U+2029 PARAGRAPH SEPARATOR",
}
KEY_ONLY = {
    "\x1b": "U+001B ESCAPE",
    "\x7f": "U+007F DELETE",
    "\x01": "U+0001 control character",
    "\u3000": "U+3000 IDEOGRAPHIC SPACE",
    "\u00a0": "U+00A0 NO-BREAK SPACE",
}


def _independent_keys(data: bytes) -> List[str]:
    """Keys as Kaldi (and ``wc -l``) see them: lines split at b"\\n", first field up to a space or tab."""
    keys = []
    for raw in data.removeprefix(b"\xef\xbb\xbf").split(b"\n"):
        first = raw.removesuffix(b"\r").replace(b"\t", b" ").strip(b" ").split(b" ", 1)[0]
        if first:
            keys.append(first.decode("utf-8"))
    return keys


def _assert_every_key_accounted(table, data: bytes) -> None:
    """Each line's key is in the table (escaped if it holds a refused character), safe to write back."""
    keys = list(table.lines)  # first occurrence of each key; later ones are duplicate-key problems
    assert len(keys) == len(set(_independent_keys(data)))
    for key in keys:
        assert len(f"{key} reason\n".splitlines()) == 1, repr(key)


@pytest.mark.parametrize("what", ["wav.scp", "text"])
@pytest.mark.parametrize("char,name", list(LINE_BREAKS.items()), ids=[n.split()[0] for n in LINE_BREAKS.values()])
@pytest.mark.parametrize("where", ["key", "value", "end"])
def test_stray_line_breaks_are_per_line_errors_naming_the_character(tmp_path, what, char, name, where):
    bad = {"key": f"k{char}x a.wav", "value": f"k a{char}k2 b.wav", "end": f"k a.wav{char}"}[where]
    data = f"first one.wav\n{bad}\nlast two.wav\n".encode("utf-8")
    path = tmp_path / what
    path.write_bytes(data)
    table = read_scp(str(path), what=what)
    if where == "end" and char == "\r":  # a CRLF line ending
        assert table.problems == [] and list(table.entries) == ["first", "k", "last"]
        return
    assert [str(p) for p in table.problems] == [
        f"{path}:2: error: line contains {name} at column {bad.index(char) + 1}, a line break other than '\\n', "
        "so it may hold several entries; Kaldi files end lines with '\\n' (LF) only"
    ]
    assert list(table.entries) == ["first", "last"]
    _assert_every_key_accounted(table, data)


@pytest.mark.parametrize("char,name", list(KEY_ONLY.items()), ids=[n.split()[0] for n in KEY_ONLY.values()])
def test_control_and_space_characters_in_keys_are_refused_and_escaped(tmp_path, char, name):
    data = f"ok a.wav\nk{char}y b.wav\n".encode("utf-8")
    (tmp_path / "wav.scp").write_bytes(data)
    table = read_scp(str(tmp_path / "wav.scp"))
    escaped = f"k\\u{ord(char):04x}y"
    assert [(p.line, p.key) for p in table.problems] == [(2, escaped)]
    assert f"key contains {name}" in table.problems[0].message
    _assert_every_key_accounted(table, data)


def test_values_may_hold_other_controls_and_keys_format_characters(tmp_path):
    data = "k\u00ady a\x1bb.wav\nk2 \u3000c.wav\n".encode("utf-8")  # soft hyphen in a key; ESC, U+3000 in paths
    (tmp_path / "wav.scp").write_bytes(data)
    table = read_scp(str(tmp_path / "wav.scp"))
    assert table.problems == [] and table.entries == {"k\u00ady": "a\x1bb.wav", "k2": "\u3000c.wav"}


def test_crlf_is_accepted_but_only_one_cr(tmp_path):
    (tmp_path / "a").write_bytes(b"k1 a.wav\r\nk2 b.wav\r\n")
    assert read_scp(str(tmp_path / "a")).entries == {"k1": "a.wav", "k2": "b.wav"}
    (tmp_path / "b").write_bytes(b"k1 a.wav\r\r\nk2 b.wav\r\n")
    table = read_scp(str(tmp_path / "b"))
    assert table.entries == {"k2": "b.wav"} and [(p.line, p.key) for p in table.problems] == [(1, "k1")]


@pytest.mark.parametrize(
    "content", [b"k1 a.wav\rk2 b.wav\rk3 c.wav", b"k1 a.wav\rk2 b.wav\r", b"\xef\xbb\xbfk1 a\r\rk2 b"]
)
def test_cr_only_file_is_one_clear_error(tmp_path, content):
    (tmp_path / "wav.scp").write_bytes(content)
    with pytest.raises(DataDirError, match=r"wav.scp: lines end with CR \(\\r\) only, no LF"):
        read_scp(str(tmp_path / "wav.scp"))
    (tmp_path / "one").write_bytes(b"k1 a.wav\r")  # a single CRLF-style line without its LF is fine
    assert read_scp(str(tmp_path / "one")).entries == {"k1": "a.wav"}


def test_cr_only_data_dir_fails_as_a_whole(tmp_path, wavs):
    d = make_dir(tmp_path, [], raw_wav="\r".join(f"{k} {v}" for k, v in wavs.items()).encode())
    with pytest.raises(DataDirError, match="wav.scp: lines end with CR"):
        load_data_dir(str(d))


@pytest.mark.parametrize("name", ["wav.scp", "text"])
def test_fifo_is_refused_without_opening(tmp_path, wavs, name):
    d = make_dir(tmp_path, [f"{k} {v}" for k, v in wavs.items()])
    if name == "wav.scp":
        (d / "wav.scp").unlink()
    os.mkfifo(d / name)
    with pytest.raises(DataDirError, match=f"{name}: is a named pipe \\(FIFO\\), not a regular file"):
        load_data_dir(str(d))


_ANY_BREAK = st.sampled_from(sorted(LINE_BREAKS) + sorted(KEY_ONLY) + ["\r\n", "\t", " "])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pieces=st.lists(st.tuples(st.text(_KEY_CHARS, min_size=1, max_size=4), _ANY_BREAK), min_size=1, max_size=12),
    last_nl=st.booleans(),
)
def test_every_entry_is_accounted_for_property(tmp_path, pieces, last_nl):
    """Random words joined by random separators and line breaks: every b"\\n" line with a key is one
    table key (maybe escaped, maybe failed), every table key is one line when written back."""
    text = "".join(w + sep for w, sep in pieces)
    text = text.replace("\r\n", "\n") + ("\n" if last_nl else "")
    data = text.encode("utf-8")
    path = tmp_path / "wav.scp"
    path.write_bytes(data)
    try:
        table = read_scp(str(path))
    except DataDirError as e:
        assert b"\n" not in data and "lines end with CR" in str(e)
        return
    _assert_every_key_accounted(table, data)
    problem_lines = {p.line for p in table.problems}
    for key, line in table.lines.items():
        assert (key in table.entries) != (line in problem_lines) or key in table.entries
