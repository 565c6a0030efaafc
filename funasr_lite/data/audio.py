"""Audio loading: any soundfile format -> float32 mono (S,) at the model's rate.

The result matches, sample for sample, what funasr 1.4.16's
``load_audio_text_image_video`` gives for a file path (where ``torchaudio.load``
needs torchcodec and FunASR falls back to soundfile):

1. ``soundfile.read(path, dtype="float32")`` (integer PCM becomes x / 2**(bits-1));
2. multi-channel audio becomes the mean of its channels (float32, in torch);
3. a rate other than the target is resampled with a windowed-sinc kernel built
   exactly like ``torchaudio.transforms.Resample(orig, target)`` at its defaults
   (``sinc_interp_hann``, ``lowpass_filter_width=6``, ``rolloff=0.99``).

About step 3: ``torchaudio.functional.resample`` uses the same method and
parameters, but builds its kernel in the waveform's dtype (float32), while the
``Resample`` transform that FunASR calls builds it in float64 and rounds it to
float32.  The two differ by up to ~4e-5 per sample, which is visible in the
log-mel energies of near-silent frames.  We therefore use the transform's
kernel (cached per rate pair) so that features match FunASR's.

Bounded cost (where we differ from FunASR on purpose):

* Files are read in blocks of :data:`BLOCK_FRAMES` frames and downmixed block by
  block (same samples as reading whole), so memory holds one mono float32 copy,
  never all channels.  ``max_seconds`` refuses a file from its header, before
  reading, and stops a read whose length the header does not know.
* A header frame count of 2**62 or more (libsndfile's "unknown length" of a
  streamed FLAC) is taken as unknown: the length is measured by decoding.
* The sinc kernel for rates ``orig -> target`` has about ``t * (o + 12 o / min(o, t))``
  elements for the gcd-reduced rates ``o : t``.  When that exceeds
  :data:`MAX_KERNEL_ELEMENTS` (e.g. 16001 Hz, reduced 16001:16000), the ratio
  is replaced by the closest fraction ``o' / t'`` whose kernel fits
  (``Fraction.limit_denominator``), so memory and time stay proportional to the
  audio length.  The output then runs fast or slow by the relative difference
  of the two ratios (62 ppm for 16001 Hz, which becomes no resampling at all;
  below 1e-4 for rates up to 48 kHz), which ASR does not notice.  Every common
  rate (8k ... 48k, 11.025k, 88.2k, 96k, 192k) keeps the exact kernel, so
  FunASR parity holds.  Rates above :data:`MAX_SAMPLE_RATE` are refused.
* Float samples must be finite and within ``[-MAX_FLOAT_PEAK, MAX_FLOAT_PEAK]``
  (see :data:`MAX_FLOAT_PEAK`); anything else is refused, never decoded.

Every problem raises :class:`~funasr_lite.errors.AudioError` naming the file.
"""

import contextlib
import functools
import math
import os
import re
import sys
import tempfile
import threading
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio

from funasr_lite.errors import AudioError
from funasr_lite.utils.textio import special_file_kind

# The shortest usable input: one 25 ms analysis frame at the target rate.
MIN_FRAME_MS = 25.0

# Float audio is nominally in [-1, 1].  Real recordings and float mixes overshoot a
# little (inter-sample peaks, gain without a limiter), so up to 32 (+30 dBFS) is
# accepted as is.  Beyond that the samples are not [-1, 1] audio: integer PCM stored
# as float (peaks in the thousands), or garbage (3e38), which overflows the frontend.
MAX_FLOAT_PEAK = 32.0

# Frames read (and downmixed) at a time.
BLOCK_FRAMES = 1 << 16

# Header frame counts at or above this mean "unknown" (libsndfile reports 2**63-1).
_UNKNOWN_FRAMES = 1 << 62

# Largest resampling kernel (elements) built; above it the ratio is approximated.
MAX_KERNEL_ELEMENTS = 1 << 19

# Highest sample rate accepted (768 kHz is the highest rate converters offer).
MAX_SAMPLE_RATE = 768000

# Placeholder data-chunk sizes that streaming writers leave in a WAV header;
# a mismatch with the file length is then expected, not a truncation.
_WAV_SIZE_PLACEHOLDERS = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 8}

_DATA_CHUNK_RE = re.compile(r"^\s*data\s*:\s*(\d+)\s*\(should be\s*(\d+)\)", re.MULTILINE)

# libsndfile's messages for data it does not recognise as audio at all
_NOT_AUDIO = ("format not recognised", "possibly a pipe", "unknown format", "file contains data in an unknown format")

ArrayLike = Union[np.ndarray, torch.Tensor]

# What libsndfile's MP3 decoder (libmpg123) prints to fd 2 while it probes data that is not MP3.
_MPG123_NOISE = re.compile(
    rb"^(\[src/libmpg123/|Note: (Illegal Audio-MPEG-Header|Trying to resync|Hit end of \(available\) data|Skipped \d+ bytes))"
)
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_native_decoders() -> Iterator[None]:
    """Keep libmpg123's parse messages off stderr (they name no file and follow an AudioError anyway).

    libsndfile gives no way to silence it, so file descriptor 2 is pointed at a temporary file
    while soundfile works, then restored; whatever else was written there meanwhile (another
    thread's log line) is copied to stderr afterwards, so only libmpg123's lines are dropped.
    A lock serialises this between threads.  If fd 2 cannot be duplicated, nothing is filtered.
    """
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError, AttributeError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                keep = [line for line in tmp.read().splitlines(True) if not _MPG123_NOISE.match(line)]
                if keep:
                    os.write(2, b"".join(keep))


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, target_sr: int) -> torchaudio.transforms.Resample:
    """FunASR's resampler: ``torchaudio.transforms.Resample`` at its defaults."""
    return torchaudio.transforms.Resample(orig_sr, target_sr)


def _kernel_elements(orig: int, new: int) -> int:
    """Elements of torchaudio's sinc kernel for ``orig -> new`` (see its ``_get_sinc_resample_kernel``)."""
    g = math.gcd(orig, new)
    o, t = orig // g, new // g
    width = math.ceil(6 * o / (min(o, t) * 0.99))
    return t * (o + 2 * width)


@functools.lru_cache(maxsize=64)
def resample_rates(orig_sr: int, target_sr: int) -> Tuple[int, int]:
    """The rate pair actually used to resample ``orig_sr -> target_sr`` (see the module doc).

    ``(orig_sr, target_sr)`` itself when its kernel is small (FunASR parity), else the
    closest fraction whose kernel has at most :data:`MAX_KERNEL_ELEMENTS` elements.
    """
    if _kernel_elements(orig_sr, target_sr) <= MAX_KERNEL_ELEMENTS:
        return orig_sr, target_sr
    exact = Fraction(orig_sr, target_sr)
    max_den = min(target_sr, 4096)
    while max_den > 1:
        approx = exact.limit_denominator(max_den)
        if _kernel_elements(approx.numerator, approx.denominator) <= MAX_KERNEL_ELEMENTS:
            return approx.numerator, approx.denominator
        max_den //= 2
    approx = exact.limit_denominator(1)
    return max(1, approx.numerator), 1


def _check_truncated_wav(path: str, snd: sf.SoundFile) -> None:
    """Raise AudioError when a WAV header promises more data than the file holds."""
    if snd.format not in ("WAV", "WAVEX", "RF64", "W64"):
        return
    match = _DATA_CHUNK_RE.search(snd.extra_info or "")
    if match is None:
        return
    declared, present = int(match.group(1)), int(match.group(2))
    if declared > present and declared not in _WAV_SIZE_PLACEHOLDERS:
        raise AudioError(
            f"{path}: truncated file: the header declares {declared} bytes of audio data but only {present} are present"
        )


def _check_path(path: str) -> None:
    """AudioError unless ``path`` is an existing, readable regular file (never open a FIFO: it blocks)."""
    if not os.path.exists(path):
        raise AudioError(f"{path}: audio file not found")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory, not an audio file")
    kind = special_file_kind(path)
    if kind is not None:
        raise AudioError(f"{path}: is a {kind}, not a regular audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: audio file is not readable (permission denied)")


def _soundfile_error(path: str, exc: Exception, what: str) -> AudioError:
    """An AudioError for a soundfile/libsndfile failure; unrecognised data is named as such."""
    msg = str(exc)
    if any(s in msg.lower() for s in _NOT_AUDIO):
        return AudioError(f"{path}: {what}: not a readable audio file (format not recognised)")
    return AudioError(f"{path}: {what}: {msg}")


def _check_rate(path: str, sr: int) -> None:
    if sr <= 0:
        raise AudioError(f"{path}: invalid sample rate {sr}")
    if sr > MAX_SAMPLE_RATE:
        raise AudioError(f"{path}: unsupported sample rate {sr} Hz (at most {MAX_SAMPLE_RATE} Hz)")


def _check_samples(x: torch.Tensor, name: str, offset: int = 0) -> None:
    """AudioError if float samples ``x`` (frames first) are non-finite or far outside [-1, 1].

    Checked in blocks of :data:`BLOCK_FRAMES` frames, so the temporaries stay small for hours of audio."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    for start in range(0, x.shape[0], BLOCK_FRAMES):
        _check_block(x[start : start + BLOCK_FRAMES], name, offset + start)


def _check_block(x: torch.Tensor, name: str, offset: int) -> None:
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        first = int((~finite).reshape(x.shape[0], -1).any(-1).nonzero()[0, 0]) + offset
        raise AudioError(f"{name}: audio contains {bad} non-finite (NaN/Inf) sample(s), the first at frame {first}")
    low, high = torch.aminmax(x)
    peak = max(-float(low), float(high))
    if peak > MAX_FLOAT_PEAK:
        raise AudioError(
            f"{name}: samples far outside [-1, 1]: peak {peak:.3g} (float audio must be scaled to [-1, 1]; "
            f"at most {MAX_FLOAT_PEAK:g} is accepted; integer PCM stored as float?)"
        )


def _read_block(snd: sf.SoundFile, frames: int, known: bool) -> np.ndarray:
    """Up to ``frames`` frames as float32 (n, channels).

    With an unknown length, ``SoundFile.read`` fails at the end of the stream (after a short read
    it seeks to the new position, which libsndfile refuses past the unknown end), so the block is
    read with libsndfile's ``sf_readf_float`` directly, the call ``SoundFile.read`` makes.
    """
    if known:
        return snd.read(frames, dtype="float32", always_2d=True)
    out = np.empty((frames, snd.channels), np.float32)
    got = sf._snd.sf_readf_float(snd._file, sf._ffi.cast("float *", out.__array_interface__["data"][0]), frames)
    err = sf._snd.sf_error(snd._file)
    if err:
        raise sf.LibsndfileError(err)
    return out[:got]


def _downmix(block: torch.Tensor) -> torch.Tensor:
    """(S, C) -> (S,): FunASR squeezes (S, 1) and averages (S, C>1) over C in torch float32."""
    return block[:, 0].clone() if block.shape[1] == 1 else block.mean(-1)


def _too_long(path: str, seconds: float, max_seconds: float, how: str) -> AudioError:
    return AudioError(f"{path}: {how} {seconds:.1f} s, longer than the {max_seconds:g} s allowed (max_duration)")


def _read_file(path: str, max_seconds: Optional[float] = None) -> Tuple[torch.Tensor, int]:
    """Read ``path`` block by block as float32 mono (S,); AudioError on any failure (see the module doc)."""
    _check_path(path)
    blocks: List[torch.Tensor] = []
    whole: Optional[torch.Tensor] = None  # with a known length the blocks are copied into one tensor
    n = 0
    try:
        with _quiet_native_decoders(), sf.SoundFile(path) as snd:
            _check_truncated_wav(path, snd)
            sr = int(snd.samplerate)
            _check_rate(path, sr)
            declared = snd.frames
            known = 0 < declared < _UNKNOWN_FRAMES
            limit = None if max_seconds is None else int(max_seconds * sr)
            if known and limit is not None and declared > limit:
                raise _too_long(path, declared / sr, max_seconds, "the header says")
            # Like soundfile.read (which FunASR calls): seek to 0 first.  For mp3 the seek
            # resets the decoder, which changes the decoded samples by ~1e-7.
            if snd.seekable():
                snd.seek(0)
            while not known or n < declared:
                want = min(BLOCK_FRAMES, declared - n) if known else BLOCK_FRAMES
                block = torch.from_numpy(_read_block(snd, want, known))
                if block.shape[0] == 0:
                    break
                _check_samples(block, path, n)
                if known:
                    whole = torch.empty(declared, dtype=torch.float32) if whole is None else whole
                    whole[n : n + block.shape[0]] = _downmix(block)
                else:
                    blocks.append(_downmix(block))
                n += block.shape[0]
                if limit is not None and n > limit:
                    raise _too_long(path, n / sr, max_seconds, "decoding reached")
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, MemoryError) as exc:
        raise _soundfile_error(path, exc, "cannot decode audio (corrupt or unsupported format)") from exc
    if known and 0 < n < declared:
        raise AudioError(
            f"{path}: truncated file: the header declares {declared} samples but only {n} could be decoded"
        )
    if whole is not None:
        return whole, sr
    wav = torch.cat(blocks) if len(blocks) > 1 else (blocks[0] if blocks else torch.zeros(0))
    return wav, sr


def _finish(wav: torch.Tensor, sr: int, target_sr: int, name: str) -> torch.Tensor:
    """Validate a mono float32 waveform (S,), resample it and check its final length."""
    if wav.numel() == 0:
        raise AudioError(f"{name}: audio has zero samples")
    _check_samples(wav, name)
    min_samples = int(target_sr * MIN_FRAME_MS / 1000.0)
    if sr != target_sr:  # FunASR's resampler (see module doc); wav is on the CPU here
        if math.ceil(wav.numel() * target_sr / sr) < min_samples:  # too short: do not resample at all
            wav = wav[: math.ceil(wav.numel() * target_sr / sr)]
        else:
            orig, new = resample_rates(sr, int(target_sr))
            if orig != new:
                with torch.no_grad():
                    wav = _resampler(orig, new)(wav[None, :])[0, :]
    if wav.numel() < min_samples:
        raise AudioError(
            f"{name}: audio is too short: {wav.numel()} samples at {target_sr} Hz, "
            f"fewer than one {MIN_FRAME_MS:g} ms frame ({min_samples} samples)"
        )
    return wav.contiguous()


def load_audio(path: str, target_sr: int = 16000, max_seconds: Optional[float] = None) -> torch.Tensor:
    """Load an audio file (wav/flac/ogg/mp3, any bit depth or rate) as float32 mono at ``target_sr`` Hz.

    Args:
        max_seconds: refuse a longer file, from its header before reading it (or, when the
            header does not know the length, as soon as decoding passes it).

    Returns:
        torch.float32 tensor (S,), integer formats scaled to [-1, 1), channels
        averaged, resampled to ``target_sr`` like FunASR's loader (see the module doc).

    Raises:
        AudioError: missing, not a regular file, unreadable, not audio, corrupt or truncated;
            zero samples; NaN/Inf samples or a peak above :data:`MAX_FLOAT_PEAK`; a sample
            rate above :data:`MAX_SAMPLE_RATE`; longer than ``max_seconds``; fewer samples
            than one 25 ms frame at ``target_sr``.
    """
    path = os.fspath(path)
    wav, sr = _read_file(path, max_seconds)
    return _finish(wav, sr, target_sr, path)


def _to_float32(arr: torch.Tensor, name: str) -> torch.Tensor:
    """Integer PCM -> float32 in [-1, 1); float types -> float32 (after the range check)."""
    if arr.is_floating_point():
        _check_samples(arr.T if arr.ndim == 2 else arr, name)
        return arr.to(torch.float32)
    if arr.dtype == torch.uint8:
        return (arr.to(torch.float32) - 128.0) / 128.0
    scale = {torch.int8: 2.0**7, torch.int16: 2.0**15, torch.int32: 2.0**31}.get(arr.dtype)
    if scale is None:
        raise AudioError(f"{name}: unsupported sample dtype {arr.dtype}")
    return arr.to(torch.float32) / scale


def load_audio_array(data: ArrayLike, sample_rate: int, target_sr: int = 16000, name: str = "<array>") -> torch.Tensor:
    """Prepare in-memory audio (Python API) exactly like :func:`load_audio` does a file.

    Args:
        data: numpy array or tensor at ``sample_rate`` Hz, (S,) mono or (C, S) channels-first (torch
            convention; pass ``arr.T`` for soundfile's (S, C)).  Float samples are taken as they are
            (expected in [-1, 1], at most :data:`MAX_FLOAT_PEAK`); int16/int32/int8 are divided by
            2**(bits-1), uint8 is centred at 128.
        name: how errors refer to this input.

    Returns:
        torch.float32 tensor (S',) at ``target_sr``.

    Raises:
        AudioError: wrong shape or dtype, zero samples, NaN/Inf, far outside [-1, 1], bad rate,
            shorter than 25 ms.
    """
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "fiu":
            raise AudioError(f"{name}: unsupported sample dtype {data.dtype}")
        arr = torch.from_numpy(np.ascontiguousarray(data))
    elif isinstance(data, torch.Tensor):
        arr = data.detach().cpu()
    else:
        raise AudioError(f"{name}: expected a numpy array or torch tensor, got {type(data).__name__}")
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, (int, float, np.integer, np.floating))
        or not math.isfinite(sample_rate)
        or int(sample_rate) != sample_rate
    ):
        raise AudioError(f"{name}: invalid sample rate {sample_rate!r}")
    _check_rate(name, int(sample_rate))
    if arr.ndim not in (1, 2):
        raise AudioError(f"{name}: expected shape (S,) or (channels, S), got {tuple(arr.shape)}")
    arr = _to_float32(arr, name)
    if arr.ndim == 2:
        arr = arr[0] if arr.shape[0] == 1 else arr.mean(0)
    return _finish(arr, int(sample_rate), target_sr, name)


def audio_duration(path: str, limit_seconds: Optional[float] = None) -> float:
    """Duration in seconds, for length batching: from the header (no decoding) when it knows the length.

    When the header says the length is unknown (a streamed FLAC), the frames are counted by
    decoding block by block (memory stays one block), stopping once past ``limit_seconds``.

    Raises:
        AudioError: missing, not a regular file or unreadable; not audio; a header soundfile
            cannot parse; an invalid or unsupported sample rate.
    """
    path = os.fspath(path)
    _check_path(path)
    try:
        with _quiet_native_decoders(), sf.SoundFile(path) as snd:
            sr = int(snd.samplerate)
            _check_rate(path, sr)
            if 0 <= snd.frames < _UNKNOWN_FRAMES:
                return float(snd.frames) / float(sr)
            limit = math.inf if limit_seconds is None else limit_seconds * sr
            n = 0
            while n <= limit:
                got = _read_block(snd, BLOCK_FRAMES, False).shape[0]
                if got == 0:
                    break
                n += got
            return float(n) / float(sr)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, MemoryError) as exc:
        raise _soundfile_error(path, exc, "cannot read audio header") from exc
