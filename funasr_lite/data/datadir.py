r"""Read and validate Kaldi data dirs (``wav.scp`` and ``text``).

File format (both files): one ``key value`` entry per line. The line is split
at the first run of spaces/tabs; the value is the rest of the line, so audio
paths may contain spaces. Files are UTF-8; a BOM at the start of the file,
CRLF line endings, blank lines, leading indentation and trailing spaces/tabs
are accepted silently.

Lines end at ``\n`` only (as in Kaldi and ``wc -l``); one ``\r`` before it is
dropped.  Any other line break left in a line (``\r``, ``\v``, ``\f``,
``\x1c``-``\x1e``, ``\x85``, U+2028, U+2029: Python's ``str.splitlines`` would
split there) is an error for that line, naming the character, since the line
may hold several entries.  A key must also be free of control characters
and non-ASCII spaces (Unicode Cc, Zs, Zl, Zp); such a key is kept with those characters escaped
(``\u2028``), so that it is reported as a failed utterance and written back
safely.  A file with ``\r`` but no ``\n`` at all (old Mac line endings) is one
whole-file error.  Only regular files are read (a FIFO would block forever).

Validation follows Kaldi's ``utils/validate_data_dir.sh`` in spirit and
collects *every* problem, each naming ``file:line``:

* duplicate keys, lines with no value, lines with non-UTF-8 bytes;
* Kaldi pipe entries (``cmd |``), stdin (``-``), ``ark:``/``scp:`` extended
  filenames and ``file.ark:1234`` offsets in ``wav.scp``: refused, never run;
* missing, unreadable or 0-byte audio files (``check_audio=True``);
* keys in ``text`` but not in ``wav.scp`` (error for training, warning for
  inference) and keys in ``wav.scp`` but not in ``text`` (same severities).

Relative audio paths are resolved Kaldi-style (:func:`resolve_audio_path`).

Per-utterance problems carry the utterance ``key`` (see
:meth:`DataDir.failed_keys`), so a batch job can skip just those utterances.
Whole-file problems (no such dir/file, empty ``wav.scp``, a file that is not
UTF-8 text at all, an unsupported ``segments`` file) raise
:class:`~funasr_lite.errors.DataDirError`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from funasr_lite.errors import DataDirError
from funasr_lite.utils.textio import read_bytes

__all__ = ["Problem", "ScpTable", "DataDir", "read_scp", "resolve_audio_path", "load_data_dir"]

ERROR = "error"
WARNING = "warning"

_BOM = b"\xef\xbb\xbf"
_SPLIT = re.compile(r"[ \t]+")
_SPLIT_BYTES = re.compile(rb"[ \t]+")
# characters at which str.splitlines() breaks a line, other than "\n"
_LINE_BREAKS = "\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAK_RE = re.compile(f"[{re.escape(_LINE_BREAKS)}]")
# ark:foo.ark, scp:foo.scp, ark,s,cs:-, ark,t:... (Kaldi rspecifiers)
_RSPECIFIER = re.compile(r"^(ark|scp)(,[A-Za-z]+)*:")
# foo.ark:1234 or foo.ark:1234[0:100] (byte offset, optional range)
_ARK_OFFSET = re.compile(r":\d+(\[[^\]]*\])?$")


@dataclass(frozen=True)
class Problem:
    """One problem found in a data dir file."""

    file: str  # path of the file the problem is in
    line: Optional[int]  # 1-based line number, None for a whole-file problem
    message: str  # what is wrong, in words
    severity: str = ERROR  # "error" or "warning"
    key: Optional[str] = None  # utterance the problem belongs to, when known

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class ScpTable:
    """The parsed contents of one ``key value`` file, in file order."""

    path: str  # the file that was read
    entries: Dict[str, str] = field(default_factory=OrderedDict)  # key -> value (first occurrence)
    lines: Dict[str, int] = field(default_factory=dict)  # key -> 1-based line of that entry
    problems: List[Problem] = field(default_factory=list)  # per-line problems, file order


@dataclass
class DataDir:
    """A loaded Kaldi data dir."""

    path: str  # the data dir
    wavs: Dict[str, str]  # key -> audio path (resolved, see module doc), wav.scp order
    texts: Optional[Dict[str, str]]  # key -> transcription, or None without a usable text file
    problems: List[Problem]  # every problem found, wav.scp first, then text, then cross-checks
    wav_lines: Dict[str, int] = field(default_factory=dict)  # key -> line in wav.scp
    text_lines: Dict[str, int] = field(default_factory=dict)  # key -> line in text

    @property
    def errors(self) -> List[Problem]:
        """Problems with severity ``"error"``."""
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> List[Problem]:
        """Problems with severity ``"warning"``."""
        return [p for p in self.problems if p.severity == WARNING]

    def failed_keys(self, include_text: bool = True) -> Dict[str, List[Problem]]:
        """wav.scp keys that have at least one error, mapped to their errors (wav.scp order).

        With ``include_text=False`` only errors found in ``wav.scp`` and in the audio
        files count, so an inference job can still decode an utterance whose
        reference line in ``text`` is broken.
        """
        out: Dict[str, List[Problem]] = OrderedDict()
        wav_file = os.path.join(self.path, "wav.scp")
        for p in self.errors:
            if p.key is not None and p.key in self.wavs and (include_text or p.file == wav_file):
                out.setdefault(p.key, []).append(p)
        return OrderedDict((k, out[k]) for k in self.wavs if k in out)

    def good_keys(self, include_text: bool = True) -> List[str]:
        """wav.scp keys without any error, in wav.scp order (see :meth:`failed_keys`)."""
        bad = self.failed_keys(include_text)
        return [k for k in self.wavs if k not in bad]

    def file_errors(self) -> List[Problem]:
        """Errors that belong to no usable utterance (e.g. a bad line with no readable key)."""
        return [p for p in self.errors if p.key is None or p.key not in self.wavs]


# names of the control characters unicodedata.name() does not know
_CONTROL_NAMES = {
    "\x00": "NULL",
    "\r": "CARRIAGE RETURN",
    "\v": "LINE TABULATION",
    "\f": "FORM FEED",
    "\x1b": "ESCAPE",
    "\x1c": "FILE SEPARATOR",
    "\x1d": "GROUP SEPARATOR",
    "\x1e": "RECORD SEPARATOR",
    "\x1f": "UNIT SEPARATOR",
    "\x7f": "DELETE",
    "\x85": "NEXT LINE",
}

# Unicode categories refused in keys: control characters, line/paragraph separators, spaces
_BAD_KEY_CATEGORIES = ("Cc", "Zl", "Zp", "Zs")


def char_name(c: str) -> str:
    """``U+2028 LINE SEPARATOR`` for one character."""
    return f"U+{ord(c):04X} {unicodedata.name(c, _CONTROL_NAMES.get(c, 'control character'))}"


def _bad_key_char(key: str) -> Optional[str]:
    """The first character of ``key`` that cannot be in a key (see the module doc), or None."""
    return next((c for c in key if unicodedata.category(c) in _BAD_KEY_CATEGORIES), None)


def _escape_key(key: str) -> str:
    """``key`` with each refused character written as ``\\uXXXX`` (safe to write back as one line)."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in _BAD_KEY_CATEGORIES else c for c in key)


def _line_problem(text: str, key: str, bad: Optional[str]) -> Optional[str]:
    """Why a decoded line cannot be an entry (a stray line break, a refused key character), or None."""
    brk = _LINE_BREAK_RE.search(text)
    if brk is not None:
        return (
            f"line contains {char_name(brk.group())} at column {brk.start() + 1}, a line break other than "
            "'\\n', so it may hold several entries; Kaldi files end lines with '\\n' (LF) only"
        )
    if bad is not None:
        return f"key contains {char_name(bad)}; keys must be printable, without spaces (written here as {key})"
    return None


def _decode_line(raw: bytes, path: str, lineno: int) -> "tuple[Optional[str], Optional[Problem]]":
    """Decode one line as UTF-8, or return a problem naming the first bad byte."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        head = _SPLIT_BYTES.split(raw.lstrip(b" \t"), maxsplit=1)[0]
        # a key with bad bytes is still a key of the file: written with \xNN escapes so
        # that it is listed (e.g. in 1best_recog/failed) instead of vanishing
        key = _escape_key(head.decode("utf-8", "backslashreplace")) or None
        msg = (
            f"invalid UTF-8 byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line; "
            "the file must be UTF-8 (convert it, e.g. with iconv -f GBK -t UTF-8)"
        )
        return None, Problem(path, lineno, msg, ERROR, key)


def _kaldi_extended(value: str) -> Optional[str]:
    """Why a wav.scp value is a Kaldi pipe/ark/stdin entry we refuse, or None if it is a path."""
    if value.endswith("|") or value.startswith("|"):
        return (
            f"Kaldi pipe command {value!r} is refused and never run; "
            "convert the audio to files (e.g. with sox) and list their paths"
        )
    if value == "-":
        return "reading audio from stdin ('-') is not supported; list file paths"
    if _RSPECIFIER.match(value):
        return f"Kaldi extended filename {value!r} (ark:/scp: specifier) is not supported; list plain audio file paths"
    if _ARK_OFFSET.search(value):
        return (
            f"Kaldi archive offset {value!r} (file:offset) is not supported; "
            "extract the audio to files and list their paths"
        )
    return None


def read_scp(path: str, *, what: str = "wav.scp", allow_empty_value: bool = False) -> ScpTable:
    """Read a Kaldi ``key value`` file (``wav.scp`` or ``text``), collecting per-line problems.

    Args:
        what: ``"wav.scp"`` (values are audio paths: pipes, ``ark:`` specifiers and
            offsets are refused) or ``"text"`` (values are free text).
        allow_empty_value: keep a line with a key and no value as ``""`` and report a
            warning instead of an error (used for ``text`` at inference).

    Returns:
        An :class:`ScpTable`. The first occurrence of a duplicate key is kept.

    Raises:
        DataDirError: the file does not exist or cannot be read, contains NUL bytes
            (binary/UTF-16) or has no line that is valid UTF-8.
    """
    if what not in ("wav.scp", "text"):
        raise ValueError(f"what must be 'wav.scp' or 'text', got {what!r}")
    path = os.fspath(path)
    data = read_bytes(path, what, DataDirError)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataDirError(
            f"{path}: looks like UTF-16; the file must be UTF-8 (convert it, e.g. with iconv -f UTF-16 -t UTF-8)"
        )
    if b"\x00" in data:
        nul_line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise DataDirError(f"{path}:{nul_line}: contains NUL bytes; this is not a UTF-8 {what} text file (binary?)")
    data = data.removeprefix(_BOM)
    if b"\n" not in data and b"\r" in data.rstrip(b"\r"):
        raise DataDirError(
            f"{path}: lines end with CR (\\r) only, no LF (\\n) (old Mac line endings); Kaldi files "
            "end lines with '\\n': convert it, e.g. with tr '\\r' '\\n'"
        )

    table = ScpTable(path)
    decoded_any = False
    undecodable = 0
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if not raw.strip(b" \t"):
            continue
        text, problem = _decode_line(raw, path, lineno)
        if problem is not None:
            undecodable += 1
            table.problems.append(problem)
            if problem.key is not None:
                table.lines.setdefault(problem.key, lineno)
            continue
        decoded_any = True
        assert text is not None
        line = text.strip(" \t")
        parts = _SPLIT.split(line, maxsplit=1)
        key = parts[0]
        value = parts[1] if len(parts) > 1 else ""
        bad = _bad_key_char(key)
        if bad is not None:
            key = _escape_key(key)
        if key in table.lines:
            table.problems.append(
                Problem(path, lineno, f"duplicate key {key!r} (first seen at line {table.lines[key]})", ERROR, key)
            )
            continue
        table.lines[key] = lineno
        why_not = _line_problem(text, key, bad)
        if why_not is not None:
            table.problems.append(Problem(path, lineno, why_not, ERROR, key))
            continue
        if not value and not allow_empty_value:
            table.problems.append(Problem(path, lineno, f"key {key!r} has no value (expected 'key value')", ERROR, key))
            continue
        if not value:
            table.problems.append(Problem(path, lineno, f"key {key!r} has an empty value", WARNING, key))
        elif what == "wav.scp" and (why := _kaldi_extended(value)) is not None:
            table.problems.append(Problem(path, lineno, why, ERROR, key))
        table.entries[key] = value
    if undecodable and not decoded_any:
        raise DataDirError(
            f"{path}: no line is valid UTF-8 ({undecodable} lines tried); this is not a UTF-8 {what} text file"
        )
    return table


def resolve_audio_path(value: str, data_dir: str) -> str:
    """Resolve a wav.scp path: as written (absolute, or relative to the *current working directory*)
    if that exists, else relative to ``data_dir`` if that exists, else unchanged."""
    if os.path.isabs(value) or os.path.exists(value):
        return value
    alt = os.path.join(data_dir, value)
    return alt if os.path.exists(alt) else value


def _check_audio(path: str, wav_file: str, line: int, key: str) -> Optional[Problem]:
    """A problem if the audio file of ``key`` is missing, not a file, unreadable or empty."""
    if not os.path.exists(path):
        return Problem(wav_file, line, f"audio file of {key!r} not found: {path}", ERROR, key)
    if not os.path.isfile(path):
        return Problem(wav_file, line, f"audio path of {key!r} is not a file: {path}", ERROR, key)
    if not os.access(path, os.R_OK):
        return Problem(wav_file, line, f"audio file of {key!r} is not readable: {path}", ERROR, key)
    if os.path.getsize(path) == 0:
        return Problem(wav_file, line, f"audio file of {key!r} is empty (0 bytes): {path}", ERROR, key)
    return None


def load_data_dir(path: str, *, mode: str = "infer", check_audio: bool = True, strict: bool = False) -> DataDir:
    """Load and validate a Kaldi data dir (``wav.scp`` plus optional ``text``).

    Args:
        mode: ``"infer"`` (``text`` optional; key mismatches and empty
            transcriptions are warnings) or ``"train"`` (``text`` required;
            they are errors).
        check_audio: resolve each audio path (see module doc) and report
            missing/unreadable/empty files. When False, values are kept as written.
        strict: raise :class:`DataDirError` listing every error instead of returning.

    Returns:
        A :class:`DataDir` with all problems collected.

    Raises:
        DataDirError: a whole-file problem (see module doc), or any error when ``strict``.
    """
    if mode not in ("infer", "train"):
        raise ValueError(f"mode must be 'infer' or 'train', got {mode!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataDirError(f"{path}: data dir does not exist")
    if not os.path.isdir(path):
        raise DataDirError(f"{path}: is not a directory (expected a data dir holding wav.scp)")
    if not os.path.exists(os.path.join(path, "wav.scp")):
        raise DataDirError(f"{path}: data dir has no wav.scp")
    if os.path.exists(os.path.join(path, "segments")):
        raise DataDirError(
            f"{os.path.join(path, 'segments')}: Kaldi 'segments' files are not "
            "supported; cut the recordings into one audio file per utterance"
        )
    train = mode == "train"
    miss_sev = ERROR if train else WARNING
    wav_file = os.path.join(path, "wav.scp")
    wav = read_scp(wav_file, what="wav.scp")
    if not wav.lines and not wav.problems:
        raise DataDirError(f"{wav_file}: is empty (no 'key path' lines)")
    problems: List[Problem] = list(wav.problems)
    failed = {p.key for p in wav.problems if p.severity == ERROR and p.key is not None}

    # every key of wav.scp is kept, even one whose line is unusable (value ""): it is
    # then a failed utterance, listed by failed_keys()
    wavs: Dict[str, str] = OrderedDict()
    for key, line in wav.lines.items():
        value = wav.entries.get(key, "")
        if check_audio and key not in failed:
            value = resolve_audio_path(value, path)
            problem = _check_audio(value, wav_file, line, key)
            if problem is not None:
                problems.append(problem)
        wavs[key] = value

    text_file = os.path.join(path, "text")
    texts: Optional[Dict[str, str]] = None
    text_lines: Dict[str, int] = {}
    # lexists: a dangling 'text' symlink is a broken reference file, not an absent one
    if not os.path.lexists(text_file):
        if train:
            raise DataDirError(f"{path}: data dir has no 'text' file (needed for training)")
    else:
        tab = read_scp(text_file, what="text", allow_empty_value=not train)
        if not tab.lines and not tab.problems:
            if train:
                raise DataDirError(f"{text_file}: is empty (no 'key transcription' lines)")
            problems.append(Problem(text_file, None, "is empty; no reference transcriptions", WARNING))
        else:
            problems.extend(tab.problems)
            texts, text_lines = tab.entries, tab.lines
            for key, line in tab.lines.items():
                if key not in wav.lines:
                    problems.append(Problem(text_file, line, f"key {key!r} is not in wav.scp", miss_sev, None))
            for key, line in wav.lines.items():
                if key not in tab.lines:
                    what = "cannot be trained" if train else "will have no reference (not scored)"
                    problems.append(
                        Problem(wav_file, line, f"key {key!r} has no line in text; it {what}", miss_sev, key)
                    )
    dd = DataDir(path, wavs, texts, problems, dict(wav.lines), text_lines)
    if strict and dd.errors:
        lines = "\n".join(str(p) for p in dd.errors)
        raise DataDirError(f"data dir {path!r} has {len(dd.errors)} error(s):\n{lines}")
    return dd
