"""The output files of a decoding job, written so that ``1best_recog/`` always holds one run's outputs.

* When decoding starts, every file an earlier run of ours left in the dir is removed (only our own names:
  ``text token score timestamp failed text.cer errs-*.txt``, the long-audio pipeline's ``raw_text sentences
  vad`` and ``subtitles/*.srt``, their ``.part`` files and temporary files; never anything else a user keeps
  there).
* Each batch is appended (and flushed to disk) to ``<name>.part`` files, so an interrupted job, or one that
  hits a full disk late, keeps what it decoded.
* At the end every final file is written to a temporary file first; only when all of them are written are
  they renamed into place, and the ``.part`` files removed.

Write errors (a full disk, a read-only dir) are :class:`OutputError` naming the path.
"""

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
from typing import IO, Dict, Iterable, List, Mapping, Optional

from funasr_lite.errors import FunasrLiteError
from funasr_lite.pipeline.sentences import sentence_text
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

__all__ = [
    "OutputError",
    "ResultWriter",
    "FIELDS",
    "LONG_AUDIO_FIELDS",
    "SUBTITLES_DIR",
    "check_writable",
    "format_results",
    "is_our_output",
    "write_subtitles",
]

# the per-utterance files, and how one result dict becomes the value of a line
FIELDS = {
    "text": lambda r: r["text"],
    "token": lambda r: " ".join(r["tokens"]),
    "score": lambda r: f"{r['score']:.6f}",
    "timestamp": lambda r: "[" + ",".join(f"[{s},{e}]" for s, e in r["timestamp"]) + "]",
}


def _sentence_line(s: Dict) -> str:
    return f"{s['start']} {s['end']} {sentence_text(s['text'])}"


# the long-audio pipeline's files (with FIELDS); a list value is one ``key value`` line per item
LONG_AUDIO_FIELDS = {
    **FIELDS,
    "raw_text": lambda r: " ".join(r["raw_text"].split()),
    "sentences": lambda r: [_sentence_line(s) for s in r["sentence_info"]],
    "vad": lambda r: "[" + ",".join(f"[{s},{e}]" for s, e in r["vad_segments"]) + "]",
}
# per-recording subtitles go to this dir inside 1best_recog/
SUBTITLES_DIR = "subtitles"
_NAMES = "|".join([*LONG_AUDIO_FIELDS, "failed"])
_OURS = re.compile(
    rf"^(?:(?:{_NAMES})(?:\.part)?|text\.cer|errs-.+\.txt|\.(?:{_NAMES}|text\.cer|errs-.+\.txt)\..+\.tmp)$"
)


class OutputError(FunasrLiteError):
    """An output file cannot be written (full disk, read-only or missing dir); the message names it."""


def _is_subtitle(name: str) -> bool:
    """A subtitle file of ours, or a temporary one (``.<key>.srt.<random>.tmp``)."""
    return name.endswith(".srt") or (name.startswith(".") and name.endswith(".tmp") and ".srt." in name)


def write_subtitles(result_dir: str, file_name: str, content: str) -> None:
    """Write ``result_dir/subtitles/<file_name>`` atomically (the dir is created)."""
    path = os.path.join(result_dir, SUBTITLES_DIR, file_name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_open(path) as f:
            f.write(content)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_why(e)}") from e


def is_our_output(name: str) -> bool:
    """True for a file name a decoding job of ours writes into ``1best_recog/`` (final, part or temporary)."""
    return bool(_OURS.match(name))


def _why(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{e.strerror} (the disk is full)"
    return e.strerror or str(e)


def _size(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def check_writable(directory: str, need_bytes: int) -> None:
    """Pre-flight: ``directory`` can take a file of ``need_bytes`` (written, fsynced and removed again).

    Raises:
        OutputError: it cannot (the message names the dir, the free space and the size needed).
    """
    try:
        free = shutil.disk_usage(directory).free
        if free < need_bytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fd, tmp = tempfile.mkstemp(prefix=".write_test.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                for _ in range(0, need_bytes, 1 << 20):
                    f.write(b"\0" * min(1 << 20, need_bytes))
                f.flush()
                os.fsync(f.fileno())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except OSError as e:
        free = shutil.disk_usage(directory).free if os.path.isdir(directory) else 0
        raise OutputError(
            f"output dir {directory} is not writable: {_why(e)}; the outputs need about {_size(need_bytes)}, "
            f"{_size(free)} are free"
        ) from e


def format_results(name: str, results: Mapping[str, Dict], keys: Optional[Iterable[str]] = None) -> str:
    """The ``key value`` lines of the per-utterance file ``name`` (sorted by key unless ``keys`` is given);
    a field whose value is a list gives one line per item, none for an empty list."""
    fmt = LONG_AUDIO_FIELDS[name]
    lines = []
    for k in sorted(results) if keys is None else keys:
        value = fmt(results[k])
        lines += [f"{k} {v}\n".replace(" \n", "\n") for v in (value if isinstance(value, list) else [value])]
    return "".join(lines)


class ResultWriter:
    """Owns ``result_dir`` for one job: clears our stale files, appends batches, finishes atomically.

    ``fields``: the per-utterance files (names of :data:`LONG_AUDIO_FIELDS`), default :data:`FIELDS`;
    ``subtitles``: the job writes :data:`SUBTITLES_DIR` (checked to be creatable before any work)."""

    def __init__(self, result_dir: str, fields: Iterable[str] = tuple(FIELDS), subtitles: bool = False):
        self.result_dir = result_dir
        self.fields = list(fields)
        self.created = not os.path.isdir(result_dir)
        self.decoded = 0
        self._parts: Dict[str, IO] = {}
        try:
            os.makedirs(result_dir, exist_ok=True)
            self._remove(name for name in os.listdir(result_dir) if is_our_output(name))
            sub_dir = os.path.join(result_dir, SUBTITLES_DIR)
            if os.path.isdir(sub_dir):
                self._remove(os.path.join(SUBTITLES_DIR, n) for n in os.listdir(sub_dir) if _is_subtitle(n))
                with contextlib.suppress(OSError):
                    os.rmdir(sub_dir)  # when empty: a job without subtitles leaves no subtitles/ of an earlier one
            elif subtitles and os.path.lexists(sub_dir):
                raise OutputError(f"cannot write {sub_dir}/: it exists and is not a directory; move it away")
            for name in [*self.fields, "failed"]:
                self._parts[name] = open(self.path(name + ".part"), "w", encoding="utf-8")
        except OSError as e:
            self.close()
            raise OutputError(f"cannot write {getattr(e, 'filename', None) or result_dir}: {_why(e)}") from e

    def path(self, name: str) -> str:
        return os.path.join(self.result_dir, name)

    def _remove(self, names: Iterable[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(name))

    def add(self, results: Mapping[str, Dict], failed: Mapping[str, str]) -> None:
        """Append one batch's results and failures to the ``.part`` files and flush them to disk."""
        name = ""
        try:
            for name, f in self._parts.items():
                lines = "".join(f"{k} {failed[k]}\n" for k in failed) if name == "failed" else None
                f.write(format_results(name, results, list(results)) if lines is None else lines)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise OutputError(
                f"cannot write {self.path(name + '.part')}: {_why(e)}; the {self.decoded} utterances decoded before "
                f"are kept in {self.result_dir}/*.part"
            ) from e
        self.decoded += len(results)

    def finish(self, files: Mapping[str, str]) -> None:
        """Write ``{name: content}`` as the job's final outputs, then remove the ``.part`` files.

        Every file is written to a temporary file first; the renames happen only when all are written, so a
        full disk leaves the ``.part`` files (the results) and no half-set of final files.
        """
        self.close()
        ready: List[tuple] = []
        name = ""
        try:
            for name, content in files.items():
                cm = atomic_open(self.path(name))
                f = cm.__enter__()
                ready.append((name, cm))
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            for _, cm in ready:
                with contextlib.suppress(BaseException):
                    cm.__exit__(OSError, e, None)  # removes its temporary file
            raise OutputError(
                f"cannot write {self.path(name)}: {_why(e)}; the results are kept in {self.result_dir}/*.part"
            ) from e
        for _, cm in ready:
            cm.__exit__(None, None, None)  # rename into place
        self._remove(n for n in os.listdir(self.result_dir) if is_our_output(n) and n not in files)

    def abort(self) -> None:
        """The job stops early: keep the ``.part`` files when they hold anything, else leave no trace."""
        self.close()
        if self.decoded:
            logger.warning("the %d utterances decoded so far are kept in %s/*.part", self.decoded, self.result_dir)
            return
        self._remove(n + ".part" for n in [*self.fields, "failed"])
        if self.created:
            with contextlib.suppress(OSError):
                os.rmdir(self.path(SUBTITLES_DIR))  # only when empty, as the dir itself
            with contextlib.suppress(OSError):
                os.rmdir(self.result_dir)

    def close(self) -> None:
        for f in self._parts.values():
            with contextlib.suppress(OSError):
                f.close()
        self._parts = {}
