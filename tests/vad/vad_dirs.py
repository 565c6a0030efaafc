"""FSMN-VAD model dirs and long test audio for the VAD tests.

The dir has the real model's shapes (config.yaml as ModelScope ships it for
``iic/speech_fsmn_vad_zh-cn-16k-common-pytorch``), weights from FunASR's own class with a seeded random init,
and an am.mvn computed on the test audio.  Random weights give a silence probability that hardly depends on the
input; ``calibrate`` rescales the output layer's silence row so that the silence probability crosses the
speech/noise threshold between the pauses and the speech of the audio, so the VAD finds several segments.
"""

import copy
import os
from typing import Dict, List

import numpy as np
import torch
import yaml

from funasr_lite.data.frontend import WavFrontend, compute_cmvn_stats, write_cmvn

# Sentences spoken (at two speeds) to make the test audio.
UTTERANCES = [
    "今天是二零二四年三月五日",
    "电话号码是一三八零零一三八零零零",
    "下午三点四十五分开会",
    "一共是九十九元五角",
    "明天早上八点出发",
    "我的号码是六六八八",
]

# config.yaml of the real model (FunASR 1.x layout), as ModelScope ships it: one copy, in tools/ (on sys.path)
from pipeline_models import VAD_CONFIG  # noqa: E402


def lfr_feats(wav: torch.Tensor) -> torch.Tensor:
    """(S,) waveform -> (T, 400) LFR fbank features without CMVN."""
    fe = WavFrontend(lfr_m=5, lfr_n=1)
    feats, _ = fe(wav[None], [wav.numel()])
    return feats[0]


def funasr_vad(config: Dict, seed: int):
    """FunASR's FsmnVADStreaming with a seeded random init."""
    from funasr.models.fsmn_vad_streaming.model import FsmnVADStreaming

    torch.manual_seed(seed)
    return FsmnVADStreaming(encoder="FSMN", encoder_conf=config["encoder_conf"], **config["model_conf"]).eval()


def calibrate(model, feats: torch.Tensor, speech_share: float, scale: float = 2.0) -> None:
    """Make the silence output (class 0) of ``model`` follow loudness on ``feats`` ((T, 400), CMVN'd).

    The speech evidence of a frame is its last hidden layer projected on the direction that separates the loud
    half of the frames from the quiet half (by the centre frame's mean log-mel); the silence row of the output
    layer is set so that the silence logit is ``scale * (q - evidence)`` above the other classes' typical
    log-sum-exp, with ``q`` the evidence quantile that leaves ``speech_share`` of the frames below 0.5.
    """
    enc = model.encoder
    with torch.no_grad():
        hidden = enc.out_linear1(enc.fsmn(enc.relu(enc.in_linear2(enc.in_linear1(feats[None]))), None))[0]
        loud = feats[:, 160:240].mean(1)
        is_loud = loud > loud.median()
        direction = hidden[is_loud].mean(0) - hidden[~is_loud].mean(0)
        e = hidden @ direction
        mu, sd = float(e.mean()), float(e.std())
        q = float(torch.quantile((e - mu) / sd, 1.0 - speech_share))
        lin = enc.out_linear2.linear
        others = torch.logsumexp(hidden @ lin.weight[1:].T + lin.bias[1:], dim=1)
        lin.weight[0] = -scale * direction / sd
        lin.bias[0] = float(others.median()) + scale * (q + mu / sd)


def write_vad_dir(out_dir: str, model, cmvn_mean, cmvn_std, config: Dict = VAD_CONFIG) -> str:
    """config.yaml + model.pt + am.mvn, the 1.x layout AutoModel loads."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(copy.deepcopy(config), f, sort_keys=False)
    torch.save(model.state_dict(), os.path.join(out_dir, "model.pt"))
    write_cmvn(os.path.join(out_dir, "am.mvn"), cmvn_mean, cmvn_std)
    return out_dir


def concat_with_pauses(utterances: List[np.ndarray], pauses_s: List[float], seed: int, noise: float = 0.003):
    """Utterances separated by pauses of the given lengths (low white noise throughout), float32 (S,)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, u in enumerate(utterances):
        parts.append(np.zeros(int(pauses_s[i % len(pauses_s)] * 16000), dtype=np.float32))
        parts.append(u.astype(np.float32))
    parts.append(np.zeros(int(pauses_s[0] * 16000), dtype=np.float32))
    wav = np.concatenate(parts)
    wav = wav + noise * rng.standard_normal(wav.shape).astype(np.float32)
    return torch.from_numpy(np.clip(wav, -1, 1).astype(np.float32))


def cmvn_of(wav: torch.Tensor):
    mean, std, _ = compute_cmvn_stats([lfr_feats(wav)])
    return mean, std
