"""Hotword input: FunASR's string / .txt-file forms, its hotword tokenisation (checked against funasr's own
generate_hotwords_list), <unk> hotwords dropped and named, bad input named by file and line."""

import logging
import types

import pytest

from funasr_lite.data.tokenizer import Tokenizer
from funasr_lite.decode.hotwords import load_utterance_hotwords, parse_hotword, read_hotword_value
from funasr_lite.errors import ConfigError, DataDirError

TOKENS = ["<blank>", "<s>", "</s>", *"电话号码下午开会九十", "hello", "<unk>"]
SEG_DICT = {**{c: [c] for c in "电话号码下午开会九十"}, "hello": ["hello"]}


def _tok(seg_dict=SEG_DICT):
    return Tokenizer(TOKENS, seg_dict)


def test_string_and_file_forms(tmp_path):
    tok = _tok()
    hw = parse_hotword("电话  号码\t下午", tok)
    assert hw.words == ("电话", "号码", "下午") and hw.id_lists() == [[3, 4], [5, 6], [7, 8]]
    path = tmp_path / "hw.txt"
    path.write_text("电话\n\n  号码 下午  \nHELLO\n", encoding="utf-8")
    assert parse_hotword(path, tok) == parse_hotword(str(path), tok)  # a Path names the file too
    hw = parse_hotword(str(path), tok)
    # one hotword per line; a line of several words is one hotword of all their tokens; words lower-cased
    assert hw.words == ("电话", "号码 下午", "HELLO") and hw.id_lists() == [[3, 4], [5, 6, 7, 8], [13]]
    assert parse_hotword(None, tok) is None and parse_hotword("", tok).ids == ()


def test_unknown_hotwords_are_dropped_and_named(caplog):
    caplog.set_level(logging.WARNING, logger="funasr_lite")
    hw = parse_hotword("电话 电脑 world 九十", _tok())
    assert hw.words == ("电话", "九十") and hw.dropped == ("电脑", "world")
    assert "dropped 2 hotword(s)" in caplog.text and "电脑 world" in caplog.text
    caplog.clear()
    hw = parse_hotword("电话 九 hello", _tok(None))  # no seg_dict: a hotword must be one token
    assert hw.words == ("九", "hello") and "no seg_dict" in caplog.text and "电话" in caplog.text


@pytest.mark.parametrize("seg", [True, False])
def test_token_ids_match_funasr(tmp_path, seg):
    pytest.importorskip("funasr")
    from funasr.models.contextual_paraformer.model import ContextualParaformer
    from funasr.tokenizer.char_tokenizer import CharTokenizer

    if seg:
        (tmp_path / "seg_dict").write_text("".join(f"{k} {' '.join(v)}\n" for k, v in SEG_DICT.items()), "utf-8")
    frontend = types.SimpleNamespace(cmvn_file=str(tmp_path / "am.mvn"))
    theirs_tok = CharTokenizer(token_list=TOKENS)
    file = tmp_path / "hw.txt"
    file.write_text("电话\n号码 下午\nhello\n九十\n", encoding="utf-8")
    for value in ("电话 号码 下午 hello 九十", "九 hello", str(file)):
        theirs = ContextualParaformer.generate_hotwords_list(
            types.SimpleNamespace(sos=1), value, tokenizer=theirs_tok, frontend=frontend
        )
        ours = parse_hotword(value, _tok(SEG_DICT if seg else None))
        assert theirs[-1] == [1]  # FunASR's "no bias" entry, which the model appends on our side
        kept = [ids for ids in theirs[:-1] if TOKENS.index("<unk>") not in ids]
        assert ours.id_lists() == kept, value
        assert len(ours.dropped) == len(theirs) - 1 - len(kept)


def test_bad_values_are_named(tmp_path):
    with pytest.raises(ConfigError, match="URLs are not supported"):
        read_hotword_value("https://example.com/hotwords.txt")
    with pytest.raises(ConfigError, match="missing.txt: no such hotword file"):
        read_hotword_value(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes("电话\n号\x00码\n".encode())
    with pytest.raises(ConfigError, match=r"bad.txt:2: control character"):
        read_hotword_value(str(bad))
    bad.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2: invalid UTF-8"):
        read_hotword_value(str(bad))
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(ConfigError, match="dir.txt: is a directory"):
        read_hotword_value(str(tmp_path / "dir.txt"))
    with pytest.raises(ConfigError, match="must be a string"):
        read_hotword_value(["电话"])


def test_utterance_hotword_file(tmp_path):
    assert load_utterance_hotwords(str(tmp_path), ["a"]) is None
    (tmp_path / "hotword").write_text("a 电话 号码\n\nb\n", encoding="utf-8")
    assert load_utterance_hotwords(str(tmp_path), ["a", "b", "c"]) == {"a": ["电话", "号码"], "b": []}
    (tmp_path / "hotword").write_text("a 电话\na 号码\n", encoding="utf-8")
    with pytest.raises(DataDirError, match=r"hotword:2: key 'a' appears twice"):
        load_utterance_hotwords(str(tmp_path), ["a"])
    (tmp_path / "hotword").write_text("a 电话\nz 号码\n", encoding="utf-8")
    with pytest.raises(DataDirError, match=r"hotword:2: key 'z' is not in wav.scp"):
        load_utterance_hotwords(str(tmp_path), ["a"])


def test_a_value_without_usable_hotwords_is_a_warning(tmp_path, caplog):
    """An empty file, one of blank lines or one of unknown words gave only an INFO line "0 hotword(s)"."""
    caplog.set_level(logging.INFO, logger="funasr_lite")
    for name, content in (("empty.txt", ""), ("blank.txt", "\n  \n\t\n"), ("unknown.txt", "abc\nxyz\n")):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        caplog.clear()
        assert parse_hotword(str(path), _tok()).ids == ()
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert f"hotword file {path} holds no usable hotwords" in warned[-1]
    caplog.clear()
    parse_hotword("电话", _tok())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
