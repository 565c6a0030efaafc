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

Every problem raises :class:`~funasr_lite.errors.AudioError` naming the file.
"""

import functools
import os
import re
from typing import Tuple, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio

from funasr_lite.errors import AudioError

# The shortest usable input: one 25 ms analysis frame at the target rate.
MIN_FRAME_MS = 25.0

# Placeholder data-chunk sizes that streaming writers leave in a WAV header;
# a mismatch with the file length is then expected, not a truncation.
_WAV_SIZE_PLACEHOLDERS = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 8}

_DATA_CHUNK_RE = re.compile(r"^\s*data\s*:\s*(\d+)\s*\(should be\s*(\d+)\)", re.MULTILINE)

ArrayLike = Union[np.ndarray, torch.Tensor]


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, target_sr: int) -> torchaudio.transforms.Resample:
    """FunASR's resampler: ``torchaudio.transforms.Resample`` at its defaults."""
    return torchaudio.transforms.Resample(orig_sr, target_sr)


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


def _read_file(path: str) -> Tuple[np.ndarray, int]:
    """Read ``path`` with soundfile as float32 (frames, channels); AudioError on any failure."""
    if not os.path.exists(path):
        raise AudioError(f"{path}: audio file not found")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: audio file is not readable (permission denied)")
    try:
        with sf.SoundFile(path) as snd:
            _check_truncated_wav(path, snd)
            declared_frames = snd.frames
            sr = snd.samplerate
            # Like soundfile.read (which FunASR calls): seek to 0 first, then read the
            # declared frame count.  For mp3 the seek resets the decoder, which changes
            # the decoded samples by ~1e-7; matching it keeps samples identical.
            if snd.seekable():
                snd.seek(0)
            data = snd.read(declared_frames if declared_frames > 0 else -1, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: cannot decode audio (corrupt or unsupported format): {exc}") from exc
    if 0 < data.shape[0] < declared_frames:
        raise AudioError(
            f"{path}: truncated file: the header declares {declared_frames} samples "
            f"but only {data.shape[0]} could be decoded"
        )
    if sr <= 0:
        raise AudioError(f"{path}: invalid sample rate {sr}")
    return data, int(sr)


def _finish(wav: torch.Tensor, sr: int, target_sr: int, name: str) -> torch.Tensor:
    """Validate a mono float32 waveform (S,), resample it and check its final length."""
    if wav.numel() == 0:
        raise AudioError(f"{name}: audio has zero samples")
    if not bool(torch.isfinite(wav).all()):
        bad = int((~torch.isfinite(wav)).sum())
        raise AudioError(f"{name}: audio contains {bad} NaN/Inf sample(s)")
    if sr != target_sr:  # FunASR's resampler (see module doc); wav is on the CPU here
        with torch.no_grad():
            wav = _resampler(sr, int(target_sr))(wav[None, :])[0, :]
    min_samples = int(target_sr * MIN_FRAME_MS / 1000.0)
    if wav.numel() < min_samples:
        raise AudioError(
            f"{name}: audio is too short: {wav.numel()} samples at {target_sr} Hz, "
            f"fewer than one {MIN_FRAME_MS:g} ms frame ({min_samples} samples)"
        )
    return wav.contiguous()


def load_audio(path: str, target_sr: int = 16000) -> torch.Tensor:
    """Load an audio file (wav/flac/ogg/mp3, any bit depth or rate) as float32 mono at ``target_sr`` Hz.

    Returns:
        torch.float32 tensor (S,), integer formats scaled to [-1, 1), channels
        averaged, resampled to ``target_sr`` exactly like FunASR's loader.

    Raises:
        AudioError: missing, unreadable, corrupt or truncated file; zero samples;
            NaN/Inf samples; fewer samples than one 25 ms frame at ``target_sr``.
    """
    path = os.fspath(path)
    data, sr = _read_file(path)
    wav = torch.from_numpy(data)
    # FunASR squeezes (S, 1) to (S,) and averages (S, C>1) over C in torch float32.
    wav = wav[:, 0] if wav.shape[1] == 1 else wav.mean(-1)
    return _finish(wav, sr, target_sr, path)


def _to_float32(arr: torch.Tensor, name: str) -> torch.Tensor:
    """Integer PCM -> float32 in [-1, 1); float types -> float32."""
    if arr.is_floating_point():
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
            (expected in [-1, 1]); int16/int32/int8 are divided by 2**(bits-1), uint8 is centred at 128.
        name: how errors refer to this input.

    Returns:
        torch.float32 tensor (S',) at ``target_sr``.

    Raises:
        AudioError: wrong shape or dtype, zero samples, NaN/Inf, shorter than 25 ms.
    """
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "fiu":
            raise AudioError(f"{name}: unsupported sample dtype {data.dtype}")
        arr = torch.from_numpy(np.ascontiguousarray(data))
    elif isinstance(data, torch.Tensor):
        arr = data.detach().cpu()
    else:
        raise AudioError(f"{name}: expected a numpy array or torch tensor, got {type(data).__name__}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(f"{name}: invalid sample rate {sample_rate!r}")
    if arr.ndim not in (1, 2):
        raise AudioError(f"{name}: expected shape (S,) or (channels, S), got {tuple(arr.shape)}")
    arr = _to_float32(arr, name)
    if arr.ndim == 2:
        arr = arr[0] if arr.shape[0] == 1 else arr.mean(0)
    return _finish(arr, int(sample_rate), target_sr, name)


def audio_duration(path: str) -> float:
    """Duration in seconds from the file header (cheap: no decoding), for length batching.

    Raises:
        AudioError: missing or unreadable file, or a header soundfile cannot parse.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: audio file not found")
    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: cannot read audio header: {exc}") from exc
    if info.samplerate <= 0:
        raise AudioError(f"{path}: invalid sample rate {info.samplerate}")
    return float(info.frames) / float(info.samplerate)
