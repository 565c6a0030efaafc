"""Tokenizer: token list / seg_dict loading, encode (training targets), decode (post-processing).

FunASR 1.4.16 is the oracle: ``CharTokenizer`` for encode, ``sentence_postprocess``
and Paraformer's id filtering for decode.
"""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funasr_lite.data.tokenizer import Tokenizer, load_seg_dict, load_token_list, postprocess_tokens
from funasr_lite.errors import ModelDirError

# A small vocabulary in the layout of FunASR's Paraformer token lists.
TOKENS = (
    ["<blank>", "<s>", "</s>"]
    + list("我爱北京天安门你好中国公司今年月日零一二三四五六七八九十")
    + list("0123456789")
    + list("abcdefghijklmnopqrstuvwxyz")
    + ["hel@@", "lo", "world", "read@@", "ing", "spe@@", "ech", "ok", "ibm", "don't", "，", "。"]
    + ["<unk>"]
)

# seg_dict: CJK chars and digits map to themselves, letters to themselves,
# words to @@ pieces; "北京" is a multi-char entry (used by forward max matching).
SEG_DICT = {c: [c] for c in "我爱北京天安门你好中国公司今年月日零一二三四五六七八九十0123456789"}
SEG_DICT.update({c: [c] for c in "abcdefghijklmnopqrstuvwxyz"})
SEG_DICT.update(
    {
        "hello": ["hel@@", "lo"],
        "world": ["world"],
        "reading": ["read@@", "ing"],
        "speech": ["spe@@", "ech"],
        "ok": ["ok"],
        "ibm": ["ibm"],
        "don't": ["don't"],
        "北京": ["北", "京"],
        "helloworld": ["hel@@", "lo", "world"],
        "，": ["，"],
    }
)


def _tok(**kw):
    return Tokenizer(TOKENS, SEG_DICT, **kw)


def _write_seg_dict(path, seg):
    with open(path, "w", encoding="utf-8") as f:
        for k, v in seg.items():
            f.write(" ".join([k] + v) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def funasr_char_tokenizer(tmp_path_factory):
    pytest.importorskip("funasr")
    from funasr.tokenizer.char_tokenizer import CharTokenizer

    d = tmp_path_factory.mktemp("tok")
    seg = _write_seg_dict(d / "seg_dict", SEG_DICT)
    return CharTokenizer(token_list=list(TOKENS), seg_dict=seg, split_with_space=True, unk_symbol="<unk>")


def _ids(tokens):
    return [TOKENS.index(t) for t in tokens]


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def test_load_token_list_json_and_txt_agree_with_funasr(tmp_path):
    jpath = tmp_path / "tokens.json"
    jpath.write_text(json.dumps(TOKENS, ensure_ascii=False), encoding="utf-8")
    tpath = tmp_path / "tokens.txt"
    tpath.write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    assert load_token_list(str(jpath)) == TOKENS
    assert load_token_list(str(tpath)) == TOKENS
    pytest.importorskip("funasr")
    from funasr.tokenizer.char_tokenizer import CharTokenizer

    for p in (jpath, tpath):
        assert CharTokenizer(token_list=str(p)).token_list == load_token_list(str(p))


def test_load_token_list_txt_bom_crlf(tmp_path):
    p = tmp_path / "tokens.txt"
    p.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(["<blank>", "<s>", "</s>", "我", "<unk>"]).encode() + b"\r\n")
    assert load_token_list(str(p)) == ["<blank>", "<s>", "</s>", "我", "<unk>"]


def test_load_token_list_sniffs_json_without_extension(tmp_path):
    p = tmp_path / "vocab"
    p.write_text('["<blank>", "<s>", "</s>", "<unk>"]', encoding="utf-8")
    assert load_token_list(str(p)) == ["<blank>", "<s>", "</s>", "<unk>"]


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("tokens.json", b'["a", "b"', "invalid JSON"),
        ("tokens.json", b'{"a": 1}', "JSON list"),
        ("tokens.json", b'["a", 3]', "entry 1"),
        ("tokens.json", b"[]", "empty"),
        ("tokens.json", b'["a", "b", "a"]', "duplicated"),
        ("tokens.txt", b"a\n\nb\n", ":2: empty line"),
        ("tokens.txt", b"a\nb\na\n", "duplicated"),
        ("tokens.txt", b"a\n\xff\xfe\n", ":2: invalid UTF-8"),
    ],
)
def test_load_token_list_errors_name_the_file(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ModelDirError, match=match) as ei:
        load_token_list(str(p))
    assert str(p) in str(ei.value)


def test_load_token_list_missing_file(tmp_path):
    with pytest.raises(ModelDirError, match="no such file: the token list file was not found"):
        load_token_list(str(tmp_path / "nope.json"))


def test_load_seg_dict_matches_funasr(tmp_path):
    path = _write_seg_dict(tmp_path / "seg_dict", SEG_DICT)
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n  spaced\tspa@@  ced \n")  # blank line, tabs and extra spaces
    seg = load_seg_dict(path)
    assert seg["hello"] == ["hel@@", "lo"]
    assert seg["spaced"] == ["spa@@", "ced"]
    pytest.importorskip("funasr")
    from funasr.tokenizer.char_tokenizer import load_seg_dict as fa_load

    lines = open(path, encoding="utf-8").read().split("\n")
    clean = tmp_path / "seg_dict_noblank"  # FunASR crashes on blank lines; compare without them
    clean.write_text("\n".join(x for x in lines if x.strip()) + "\n", encoding="utf-8")
    assert {k: " ".join(v) for k, v in load_seg_dict(str(clean)).items()} == fa_load(str(clean))


def test_load_seg_dict_errors(tmp_path):
    with pytest.raises(ModelDirError, match="seg_dict"):
        load_seg_dict(str(tmp_path / "missing"))
    p = tmp_path / "seg"
    p.write_bytes(b"ok ok\nbad \xc3\x28\n")
    with pytest.raises(ModelDirError, match=r"seg:2: invalid UTF-8"):
        load_seg_dict(str(p))


# ---------------------------------------------------------------------------
# constructor
# ---------------------------------------------------------------------------


def test_special_ids_and_vocab_size():
    tok = _tok()
    assert tok.vocab_size == len(TOKENS)
    assert (tok.blank_id, tok.sos_id, tok.eos_id) == (0, 1, 2)
    assert tok.unk_id == len(TOKENS) - 1


def test_sos_eos_can_share_a_symbol():
    tok = Tokenizer(["<blank>", "<unk>", "我", "<sos/eos>"], sos="<sos/eos>", eos="<sos/eos>")
    assert tok.sos_id == tok.eos_id == 3
    assert tok.decode([3, 2, 0, 3]) == ("我", ["我"])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(token_list=[]), "empty"),
        (dict(token_list=["<blank>", "<s>", "</s>", "a", "a", "<unk>"]), "duplicated"),
        (dict(token_list=["<blank>", "<s>", "</s>", "a"]), "unk symbol '<unk>'"),
        (dict(token_list=["<s>", "</s>", "<unk>"]), "blank symbol"),
        (dict(token_list=TOKENS, seg_mode="bpe"), "seg_mode"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Tokenizer(**kwargs)


# ---------------------------------------------------------------------------
# encode: exact tokens
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("我 爱 北 京", ["我", "爱", "北", "京"]),
        ("我爱北京天安门", list("我爱北京天安门")),
        ("我 爱 hello world", ["我", "爱", "hel@@", "lo", "world"]),
        ("今年 Reading SPEECH 好", ["今", "年", "read@@", "ing", "spe@@", "ech", "好"]),
        ("IBM 公司", ["ibm", "公", "司"]),
        ("I B M 公司", ["i", "b", "m", "公", "司"]),
        ("don't 好", ["don't", "好"]),
        ("xyz 好", ["x", "y", "z", "好"]),  # unknown word: letter by letter
        ("hello2024", ["h", "e", "l", "l", "o", "2", "0", "2", "4"]),
        ("你好 ， 中国 。", ["你", "好", "，", "中", "国", "<unk>"]),  # "，" in seg_dict, "。" not
        ("你好，中国", ["你", "好", "，", "中", "国"]),
        ("你好! 中国", ["你", "好", "<unk>", "中", "国"]),  # "!" is not in seg_dict
        ("!!! 中国", ["<unk>", "中", "国"]),  # non-word start: one <unk>
        ("龍 中国", ["<unk>", "中", "国"]),  # CJK char missing from seg_dict
        ("  我\t爱  北京 \n", ["我", "爱", "北", "京"]),  # any whitespace separates words
        ("", []),
    ],
)
def test_encode_word_mode_exact_tokens(text, tokens):
    tok = _tok()
    assert tok.tokenize(text) == tokens
    assert tok.encode(text) == [tok.token2id.get(t, tok.unk_id) for t in tokens]


def test_encode_unknown_piece_maps_to_unk():
    tok = Tokenizer(TOKENS, {"foo": ["fo@@", "o"], "好": ["好"]})
    assert tok.tokenize("foo 好") == ["fo@@", "o", "好"]
    assert tok.encode("foo 好") == [tok.unk_id, TOKENS.index("o"), TOKENS.index("好")]


def test_encode_without_seg_dict_is_char_level():
    tok = Tokenizer(TOKENS)
    assert tok.tokenize("我 爱 ok 龍") == ["我", "爱", "o", "k", "龍"]
    assert tok.encode("我 爱 ok 龍") == _ids(["我", "爱", "o", "k"]) + [tok.unk_id]


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("我爱北京", ["我", "爱", "北", "京"]),  # "北京" matched as one entry, then its pieces
        ("hello world", ["hel@@", "lo", "world"]),  # spaces removed: "helloworld" is the longest entry
        ("Hello 好", ["hel@@", "lo", "好"]),
        ("你好，中国。", ["你", "好", "中", "国"]),  # punctuation is dropped, even with a seg_dict entry
        ("你好! 龍", ["你", "好", "<unk>"]),  # "!" dropped, CJK char without entry -> <unk>
        ("xyz", ["x", "y", "z"]),
    ],
)
def test_encode_fmm_mode_exact_tokens(text, tokens):
    assert _tok(seg_mode="fmm").tokenize(text) == tokens


def _single_spaced(words):
    return " ".join(words)


WORDS = st.sampled_from(
    [
        "我",
        "爱",
        "北京",
        "天安门",
        "你好",
        "中国",
        "公司",
        "今年",
        "龍",
        "我爱北京",
        "二零二四年",
        "hello",
        "Hello",
        "HELLO",
        "world",
        "reading",
        "speech",
        "ok",
        "ibm",
        "IBM",
        "xyz",
        "a",
        "I",
        "don't",
        "hello2024",
        "2024",
        "3",
        "，",
        "。",
        "!",
        "你好，中国",
        "ok!",
        "-",
        "a-b",
        "Ωmega",
        "é",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=12))
def test_encode_matches_funasr_char_tokenizer(funasr_char_tokenizer, words):
    text = _single_spaced(words)
    assert _tok().encode(text) == funasr_char_tokenizer.encode(text)


def test_encode_deviation_empty_words(funasr_char_tokenizer):
    """FunASR splits at single spaces, so an empty text or a double space gives a
    spurious <unk> target; ours treats any whitespace run as one separator."""
    unk = TOKENS.index("<unk>")
    assert funasr_char_tokenizer.encode("") == [unk]
    assert funasr_char_tokenizer.encode("我  爱") == _ids(["我"]) + [unk] + _ids(["爱"])
    assert _tok().encode("") == []
    assert _tok().encode("我  爱") == _ids(["我", "爱"]) == funasr_char_tokenizer.encode("我 爱")


def test_encode_matches_funasr_on_mixed_lines(funasr_char_tokenizer):
    lines = [
        "我 爱 hello world",
        "今年 Reading SPEECH 好 。",
        "I B M 公司 don't 你好，中国",
        "二零二四年 三月 ok hello2024",
    ]
    tok = _tok()
    for line in lines:
        assert tok.encode(line) == funasr_char_tokenizer.encode(line), line


# ---------------------------------------------------------------------------
# ids -> tokens -> text
# ---------------------------------------------------------------------------


def test_ids_to_tokens_drops_blank_sos_eos():
    tok = _tok()
    ids = [1, 0] + _ids(["我", "hel@@"]) + [0, 0] + _ids(["lo"]) + [2]
    assert tok.ids_to_tokens(ids) == ["我", "hel@@", "lo"]
    assert tok.decode(ids) == ("我hello", ["我", "hello"])


def test_ids_to_tokens_accepts_tensors_and_rejects_bad_ids():
    torch = pytest.importorskip("torch")
    tok = _tok()
    assert tok.ids_to_tokens(torch.tensor(_ids(["我", "爱"]))) == ["我", "爱"]
    with pytest.raises(ValueError, match="out of range"):
        tok.ids_to_tokens([len(TOKENS)])
    with pytest.raises(ValueError, match="out of range"):
        tok.ids_to_tokens([-1])


@pytest.mark.parametrize(
    "tokens,sentence,words",
    [
        (["我", "爱", "北", "京"], "我爱北京", ["我", "爱", "北", "京"]),
        (["我", "爱", "read@@", "ing", "你", "好"], "我爱reading你好", ["我", "爱", "reading", "你", "好"]),
        (["hel@@", "lo", "world"], "hello world", ["hello", "world"]),
        (["i", "b", "m", "公", "司"], "IBM公司", ["IBM", "公", "司"]),
        (["a", "b"], "AB", ["AB"]),
        (["ok", "a", "b", "c", "ok"], "ok ABC ok", ["ok", "ABC", "ok"]),
        (["a", "中", "b"], "a中b", ["a", "中", "b"]),  # single letters not adjacent: no merge
        (["二", "零", "2", "4", "年"], "二零24年", ["二", "零", "2", "4", "年"]),
        (["<s>", "我", "<unk>", "好", "</s>", "<OOV>"], "我好", ["我", "好"]),
        (["hel@@"], "", []),  # trailing @@ piece vanishes
        (["我", "hel@@"], "我", ["我"]),
        (["hel@@", "你", "lo"], "你hello", ["你", "hello"]),  # pending @@ joins across CJK
        (["hello", "，", "你"], "hello 你", ["hello", "你"]),  # punctuation after a word is lost
        (["你", "，", "好"], "你，好", ["你", "，", "好"]),
        (["don't", "go"], "don't go", ["don't", "go"]),
        (["中@@", "国"], "中@@国", ["中@@", "国"]),  # all-CJK path keeps @@
        ([], "", []),
    ],
)
def test_postprocess_exact(tokens, sentence, words):
    assert postprocess_tokens(tokens) == (sentence, words)


def _funasr_postprocess(tokens):
    pytest.importorskip("funasr")
    from funasr.utils.postprocess_utils import sentence_postprocess

    return sentence_postprocess(list(tokens))


def test_postprocess_exact_cases_match_funasr():
    for tokens, _, _ in test_postprocess_exact.pytestmark[0].args[1]:
        assert postprocess_tokens(tokens) == _funasr_postprocess(tokens), tokens


PIECES = st.sampled_from(
    [
        "我",
        "爱",
        "中",
        "国",
        "公",
        "司",
        "\u9fff",
        "\u9fffx",
        "\u4e00",
        "中@@",
        "0",
        "1",
        "9",
        "23",
        "9x",
        "1a",
        "@",
        "@@",
        "a",
        "b",
        "i",
        "m",
        "B",
        "Z",
        "é",
        "ok",
        "hello",
        "world",
        "IBM",
        "don't",
        "'",
        "o'k",
        "hel@@",
        "re@@",
        "x@@y",
        "a1",
        "の",
        "한",
        "Ω",
        "，",
        "。",
        "!",
        "?",
        "-",
        "<unk>",
        "<s>",
        "</s>",
        "<OOV>",
        "a<unk>",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(PIECES, max_size=14))
def test_postprocess_matches_funasr_sentence_postprocess(tokens):
    assert postprocess_tokens(tokens) == _funasr_postprocess(tokens)


def test_decode_matches_funasr_paraformer_id_filtering():
    """Paraformer.inference: strip sos/eos, drop blank/sos/eos ids, then sentence_postprocess."""
    pytest.importorskip("funasr")
    from funasr.tokenizer.char_tokenizer import CharTokenizer

    fa = CharTokenizer(token_list=list(TOKENS))
    tok = _tok()
    seqs = [
        [1, 0, 5, 2, 0, 9, 2],
        _ids(["i", "b", "m", "公", "司"]) + [2],
        [0, 0] + _ids(["hel@@", "lo", "world", "我", "read@@"]) + [2, 2],
    ]
    for ids in seqs:
        kept = [i for i in ids if i not in (0, 1, 2)]
        assert tok.decode(ids) == _funasr_postprocess(fa.ids2tokens(kept))


def test_encode_decode_round_trip_on_mixed_line():
    tok = _tok()
    ids = tok.encode("我 爱 hello world 北京 IBM 公司")
    assert tok.decode(ids) == (
        "我爱hello world北京ibm公司",
        ["我", "爱", "hello", "world", "北", "京", "ibm", "公", "司"],
    )


def test_token_files_are_found_next_to_each_other(tmp_path):
    """load_token_list + load_seg_dict + Tokenizer, the way a model dir is read."""
    (tmp_path / "tokens.json").write_text(json.dumps(TOKENS, ensure_ascii=False), encoding="utf-8")
    _write_seg_dict(tmp_path / "seg_dict", SEG_DICT)
    tok = Tokenizer(
        load_token_list(os.path.join(tmp_path, "tokens.json")), load_seg_dict(os.path.join(tmp_path, "seg_dict"))
    )
    assert tok.tokenize("Hello 北京") == ["hel@@", "lo", "北", "京"]
