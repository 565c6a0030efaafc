"""Small stand-ins for the VAD and punctuation models, with the interfaces of ``funasr_lite.vad`` and
``funasr_lite.punc``: an energy VAD and a punctuation model that marks every k-th token, both deterministic."""

from dataclasses import dataclass
from types import SimpleNamespace
from typing import List, Optional

import torch

PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]


class EnergyVad:
    """Speech = 10 ms frames above ``threshold`` RMS; gaps under ``min_gap_ms`` are bridged, segments under
    ``min_speech_ms`` dropped. ``segments(wav) -> [[start_ms, end_ms], ...]``."""

    sample_rate = 16000

    def __init__(self, threshold: float = 0.01, min_gap_ms: int = 300, min_speech_ms: int = 100):
        self.threshold, self.min_gap_ms, self.min_speech_ms = threshold, min_gap_ms, min_speech_ms
        self.calls = 0

    def segments(self, wav: torch.Tensor) -> List[List[int]]:
        self.calls += 1
        hop = self.sample_rate // 100
        n = wav.numel() // hop
        if n == 0:
            return []
        rms = wav[: n * hop].reshape(n, hop).pow(2).mean(-1).sqrt()
        voiced = (rms > self.threshold).tolist()
        segs: List[List[int]] = []
        for i, v in enumerate(voiced):
            if not v:
                continue
            if segs and i * 10 - segs[-1][1] < self.min_gap_ms:
                segs[-1][1] = (i + 1) * 10
            else:
                segs.append([i * 10, (i + 1) * 10])
        return [s for s in segs if s[1] - s[0] >= self.min_speech_ms]


@dataclass
class PuncResult:
    text: str
    punc_ids: List[int]
    words: List[str]


class EveryKPunc:
    """One id per token (CJK characters one by one, other words whole): 2 (，) every ``comma`` tokens, 4 (？)
    every ``question`` tokens, 3 (。) at the end, 1 elsewhere."""

    punc_list = PUNC_LIST

    def __init__(self, comma: int = 5, question: int = 13):
        self.comma, self.question = comma, question
        self.inputs: List[str] = []

    def punctuate(self, text: str) -> PuncResult:
        self.inputs.append(text)
        words: List[str] = []
        for w in text.split():
            words.extend(list(w) if all("\u3400" <= c <= "\u9fff" for c in w) else [w])
        ids = []
        for i, _ in enumerate(words, 1):
            ids.append(3 if i == len(words) else 4 if i % self.question == 0 else 2 if i % self.comma == 0 else 1)
        out = ""
        for w, pid in zip(words, ids):
            latin = w[0].isascii() and w[0].isalpha()
            out += (" " if out and (latin or out[-1].isascii() and out[-1].isalpha()) else "") + w
            out += PUNC_LIST[pid] if pid > 1 else ""
        return PuncResult(out, ids, words)


class HashAsr:
    """A deterministic stand-in for a Transcriber: the text of a waveform depends on its samples. Some
    segments get no tokens; tokens are space-separated CJK characters (as BiCif's text) with one
    ``[start_ms, end_ms]`` each, relative to the segment. ``decode_waveforms`` records each batch's size and
    audio seconds; ``options`` bounds the pipeline's forward passes as a Transcriber's decoding options do
    (by default no bound: each FunASR batch is one forward pass)."""

    sample_rate = 16000
    CHARS = "今天是二零一三四五六七八九十年月日号电话码下午点分开会"

    def __init__(self, spaced: bool = True, batch_size: int = 10**6, batch_seconds: Optional[float] = None):
        self.spaced = spaced
        self.options = SimpleNamespace(batch_size=batch_size, batch_seconds=batch_seconds)
        self.batch_sizes: List[int] = []
        self.batch_seconds: List[float] = []

    def decode_one(self, wav) -> dict:
        wav = torch.as_tensor(wav, dtype=torch.float32)
        n = wav.numel()
        seed = int(wav.abs().sum().item() * 1000) + n
        k = seed % 7 if n > 3200 else 0
        chars = [self.CHARS[(seed // (i + 1)) % len(self.CHARS)] for i in range(k)]
        ms = n * 1000 // self.sample_rate
        step = max(1, ms // (k + 1))
        return {
            "text": (" " if self.spaced else "").join(chars),
            "tokens": chars,
            "token_ids": [self.CHARS.index(c) for c in chars],
            "score": -float(k),
            "timestamp": [[i * step + 10, i * step + step - 10] for i in range(k)],
        }

    def decode_waveforms(self, wavs, hotwords=None) -> List[dict]:
        assert hotwords is None, "the stand-in ASR takes no hotwords"
        self.batch_sizes.append(len(wavs))
        self.batch_seconds.append(sum(w.numel() for w in wavs) / self.sample_rate)
        return [self.decode_one(w) for w in wavs]
