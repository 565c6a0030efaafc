#!/usr/bin/env python3
"""Synthesize a Mandarin Kaldi data dir from sentences with espeak-ng.

Usage:
    # sentences.txt holds one sentence per line, or `key sentence` lines
    python tools/synth_data.py --text sentences.txt --out data/test
    python tools/synth_data.py --text sentences.txt --out data/train \\
        --voices cmn-latn-pinyin cmn-latn-pinyin+f2 --speeds 130 160 190 --pitches 35 50 65 \\
        --noise_prob 0.3 --format flac --seed 1

It writes ``OUT/wav/<key>.<format>`` (16 kHz mono), ``OUT/wav.scp`` with
absolute paths and ``OUT/text`` with one CJK character per space-separated
token (AISHELL style, which FunASR's CharTokenizer expects).  Each utterance
gets a voice, speed and pitch drawn from the given lists with a seeded RNG,
and with probability ``noise_prob`` white noise at a random 20-35 dB SNR.
espeak-ng is run with an argument list (never through a shell).
"""

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
import torchaudio

# cmn-latn-pinyin speaks Mandarin; plain "cmn" spells many characters as pinyin letters.
DEFAULT_VOICES = [
    "cmn-latn-pinyin",
    "cmn-latn-pinyin+f2",
    "cmn-latn-pinyin+m3",
    "cmn-latn-pinyin+f4",
    "cmn-latn-pinyin+m1",
]


@dataclass
class SynthOptions:
    # espeak-ng voice names (language+variant), drawn per utterance
    voices: List[str] = field(default_factory=lambda: list(DEFAULT_VOICES))
    # speaking rates in words per minute, drawn per utterance
    speeds: List[int] = field(default_factory=lambda: [140, 165, 190])
    # pitch values 0..99, drawn per utterance
    pitches: List[int] = field(default_factory=lambda: [35, 50, 65])
    # probability of adding white noise to an utterance
    noise_prob: float = 0.0
    # SNR range in dB for the added noise
    snr_db: Tuple[float, float] = (20.0, 35.0)
    # output sample rate in Hz
    sample_rate: int = 16000
    # audio container: flac (compact) or wav
    format: str = "flac"
    # RNG seed: the same sentences and seed give the same corpus
    seed: int = 0


def espeak_available() -> bool:
    """True when the espeak-ng binary is on PATH."""
    return shutil.which("espeak-ng") is not None


def synthesize(
    text: str, *, voice: str = "cmn-latn-pinyin", speed: int = 165, pitch: int = 50, sample_rate: int = 16000
) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return float32 mono samples at ``sample_rate``."""
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install -y espeak-ng)")
    proc = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text.replace(" ", "")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"espeak-ng failed for {text!r}: {proc.stderr.decode(errors='replace').strip()}")
    # espeak-ng's streamed WAV header has unknown sizes; soundfile copes with it.
    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=False)
    wav = torch.from_numpy(np.ascontiguousarray(audio))
    if sr != sample_rate:
        wav = torchaudio.functional.resample(wav, sr, sample_rate)
    return wav.numpy()


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white noise at ``snr_db`` relative to the signal's power."""
    power = float(np.mean(audio**2)) or 1e-8
    noise = rng.standard_normal(audio.shape).astype(np.float32) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(audio + noise, -1.0, 1.0).astype(np.float32)


def make_long_recording(
    path: str,
    sentences: Sequence[str],
    seconds: float,
    *,
    pauses: Tuple[float, float] = (0.4, 2.5),
    noise_db: float = -60.0,
    opts: Optional[SynthOptions] = None,
) -> str:
    """Write a ``seconds``-long recording of ``sentences`` spoken in turn (cycling, each with a voice, speed and
    pitch drawn from ``opts``), separated by pauses drawn from ``pauses`` seconds, over faint white noise at
    ``noise_db`` dBFS (a VAD needs something to call silence). Each distinct (sentence, voice, speed, pitch) is
    synthesized once. Returns the transcript (space-separated characters) of what was spoken."""
    opts = opts or SynthOptions()
    rng = random.Random(opts.seed)
    nrng = np.random.default_rng(opts.seed)
    total = int(seconds * opts.sample_rate)
    cache: Dict[tuple, np.ndarray] = {}
    parts: List[np.ndarray] = []
    spoken: List[str] = []
    n, i = 0, 0
    while n < total:
        text = sentences[i % len(sentences)]
        i += 1
        style = (text, rng.choice(opts.voices), rng.choice(opts.speeds), rng.choice(opts.pitches))
        if style not in cache:
            cache[style] = synthesize(
                text, voice=style[1], speed=style[2], pitch=style[3], sample_rate=opts.sample_rate
            )
        pause = np.zeros(int(rng.uniform(*pauses) * opts.sample_rate), dtype=np.float32)
        for piece in (pause, cache[style]):
            parts.append(piece[: total - n])
            n += parts[-1].size
        if parts[-1].size == cache[style].size:
            spoken.append(spaced(text))
    audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    audio = audio + nrng.standard_normal(audio.shape).astype(np.float32) * np.float32(10 ** (noise_db / 20))
    sf.write(path, np.clip(audio, -1.0, 1.0), opts.sample_rate, subtype="PCM_16")
    return " ".join(spoken)


def spaced(text: str) -> str:
    """Kaldi/AISHELL-style transcript: CJK characters space-separated, words kept."""
    out: List[str] = []
    word = ""
    for ch in text:
        if ch.isspace():
            if word:
                out.append(word)
                word = ""
        elif "\u4e00" <= ch <= "\u9fff":
            if word:
                out.append(word)
                word = ""
            out.append(ch)
        else:
            word += ch
    if word:
        out.append(word)
    return " ".join(out)


def read_sentences(path: str) -> Dict[str, str]:
    """Read ``key sentence`` lines, or bare sentences (keys become utt0000, ...)."""
    sentences: Dict[str, str] = {}
    with open(path, encoding="utf-8-sig") as f:
        lines = [line.strip() for line in f if line.strip()]
    for i, line in enumerate(lines):
        parts = line.split(maxsplit=1)
        if len(parts) == 2 and parts[0].isascii():
            sentences[parts[0]] = parts[1]
        else:
            sentences[f"utt{i:04d}"] = line
    return sentences


def make_data_dir(out_dir: str, sentences: Dict[str, str], opts: Optional[SynthOptions] = None) -> Dict[str, str]:
    """Synthesize every sentence into ``out_dir`` and write wav.scp and text.

    Returns the ``key -> audio path`` mapping.
    """
    opts = opts or SynthOptions()
    rng = random.Random(opts.seed)
    nrng = np.random.default_rng(opts.seed)
    wav_dir = os.path.join(os.path.abspath(out_dir), "wav")
    os.makedirs(wav_dir, exist_ok=True)
    paths: Dict[str, str] = {}
    for key in sorted(sentences):
        text = sentences[key]
        voice, speed, pitch = rng.choice(opts.voices), rng.choice(opts.speeds), rng.choice(opts.pitches)
        noisy = rng.random() < opts.noise_prob
        snr = rng.uniform(*opts.snr_db)
        audio = synthesize(text, voice=voice, speed=speed, pitch=pitch, sample_rate=opts.sample_rate)
        if noisy:
            audio = add_noise(audio, snr, nrng)
        path = os.path.join(wav_dir, f"{key}.{opts.format}")
        sf.write(path, audio, opts.sample_rate, subtype="PCM_16")
        paths[key] = path
    with open(os.path.join(out_dir, "wav.scp"), "w", encoding="utf-8") as f:
        f.writelines(f"{k} {paths[k]}\n" for k in sorted(paths))
    with open(os.path.join(out_dir, "text"), "w", encoding="utf-8") as f:
        f.writelines(f"{k} {spaced(sentences[k])}\n" for k in sorted(paths))
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", required=True, help="sentences file (`key sentence` or one sentence per line)")
    parser.add_argument("--out", required=True, help="output data dir")
    defaults = SynthOptions()
    parser.add_argument("--voices", nargs="+", default=defaults.voices)
    parser.add_argument("--speeds", nargs="+", type=int, default=defaults.speeds)
    parser.add_argument("--pitches", nargs="+", type=int, default=defaults.pitches)
    parser.add_argument("--noise_prob", type=float, default=defaults.noise_prob)
    parser.add_argument("--sample_rate", type=int, default=defaults.sample_rate)
    parser.add_argument("--format", choices=["flac", "wav"], default=defaults.format)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    opts = SynthOptions(
        voices=args.voices,
        speeds=args.speeds,
        pitches=args.pitches,
        noise_prob=args.noise_prob,
        sample_rate=args.sample_rate,
        format=args.format,
        seed=args.seed,
    )
    try:
        paths = make_data_dir(args.out, read_sentences(args.text), opts)
    except (OSError, RuntimeError) as e:
        print(f"synth_data.py: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(paths)} utterances to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
