"""Write a complete Paraformer model dir (FunASR 1.x or legacy 0.x layout).

Used to make an init model for finetuning from scratch (``tools/make_model_dir.py``),
by the tests to save weights that both funasr-lite and FunASR load, and to
re-layout a finetuned checkpoint.  The dir holds exactly the files a ModelScope
Paraformer dir has:

* 1.x: ``config.yaml model.pt tokens.json am.mvn configuration.json`` (+ ``seg_dict``);
* 0.x: ``config.yaml`` (with ``token_list``) ``model.pb tokens.txt am.mvn decoding.yaml
  finetune.yaml configuration.json`` (+ ``seg_dict``).
"""

import copy
import os
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from funasr_lite.config.schema import ModelConfig
from funasr_lite.config.yaml_io import save_yaml
from funasr_lite.data.audio import load_audio
from funasr_lite.data.datadir import load_data_dir
from funasr_lite.data.frontend import WavFrontend, compute_cmvn_stats, write_cmvn
from funasr_lite.errors import DataDirError
from funasr_lite.models.registry import build_model, legacy_names
from funasr_lite.utils.fileio import atomic_torch_save, atomic_write_json, atomic_write_text

SPECIAL_TOKENS = ("<blank>", "<s>", "</s>")
UNK = "<unk>"
HUB_ID = "iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"

# decoding.yaml keys FunASR 0.x requires (greedy decoding).
DEFAULT_DECODING = {
    "beam_size": 1,
    "penalty": 0.0,
    "maxlenratio": 0.0,
    "minlenratio": 0.0,
    "ctc_weight": 0.0,
    "lm_weight": 0.0,
}


def token_list_from_texts(texts: Iterable[str], min_count: int = 1) -> List[str]:
    """FunASR's token list layout: ``<blank> <s> </s>``, the units by frequency, then ``<unk>``.

    Units are the space-separated tokens of Kaldi ``text`` values (one CJK
    character each in AISHELL-style transcripts); ties keep first-seen order.
    """
    counts = Counter(unit for text in texts for unit in text.split())
    units = [u for u, c in counts.most_common() if c >= min_count and u not in SPECIAL_TOKENS and u != UNK]
    return list(SPECIAL_TOKENS) + units + [UNK]


def data_dir_cmvn(
    data_dir: str, frontend_conf: Dict, *, stats_on: str = "fbank", max_utts: int = 0
) -> Tuple[torch.Tensor, torch.Tensor, int, int]:
    """Global CMVN statistics of a data dir's audio for a frontend config (dither 0).

    Args:
        data_dir: Kaldi data dir with wav.scp.
        frontend_conf: WavFrontend keys (fs, n_mels, lfr_m, lfr_n, ...).
        stats_on: ``fbank``: over fbank frames, tiled ``lfr_m`` times (the layout of
            the am.mvn shipped with Paraformer models); ``lfr``: over LFR frames
            (FunASR 1.x's compute_audio_cmvn.py).
        max_utts: use only the first N utterances (0 = all).
    Returns:
        (mean (D,), std (D,), frames, utterances) with D = n_mels * lfr_m.
    Raises:
        DataDirError: the data dir has bad utterances (all listed).
    """
    if stats_on not in ("fbank", "lfr"):
        raise ValueError(f"stats_on must be 'fbank' or 'lfr', got {stats_on!r}")
    data = load_data_dir(data_dir, mode="infer")
    bad = data.failed_keys(include_text=False)
    if bad:
        raise DataDirError(
            f"{len(bad)} bad utterance(s) in {data_dir}; fix wav.scp first:\n"
            + "\n".join(str(p) for probs in bad.values() for p in probs)
        )
    conf = {**frontend_conf, "dither": 0.0}
    conf.pop("cmvn_file", None)
    lfr_m = int(conf.get("lfr_m", 1))
    if stats_on == "fbank":
        conf.update(lfr_m=1, lfr_n=1)
    frontend = WavFrontend(**conf)
    keys = list(data.wavs)[: max_utts or None]

    def features():
        for key in keys:
            wav = load_audio(data.wavs[key], target_sr=int(conf.get("fs", 16000)))
            with torch.no_grad():
                feats, _ = frontend(wav[None, :], torch.tensor([wav.numel()]))
            yield feats[0]

    mean, std, frames = compute_cmvn_stats(features())
    if stats_on == "fbank":
        mean, std = mean.repeat(lfr_m), std.repeat(lfr_m)
    return mean, std, frames, len(keys)


def configuration_json(layout: str, checkpoint_name: str) -> Dict:
    """The configuration.json ModelScope/FunASR read for each layout."""
    if layout == "1.x":
        return {
            "framework": "pytorch",
            "task": "auto-speech-recognition",
            "model": {"type": "funasr"},
            "pipeline": {"type": "funasr-pipeline"},
            "file_path_metas": {
                "init_param": checkpoint_name,
                "config": "config.yaml",
                "tokenizer_conf": {"token_list": "tokens.json", "seg_dict_file": "seg_dict"},
                "frontend_conf": {"cmvn_file": "am.mvn"},
            },
        }
    return {
        "framework": "pytorch",
        "task": "auto-speech-recognition",
        "pipeline": {"type": "asr-inference"},
        "model": {
            "type": "generic-asr",
            "am_model_name": checkpoint_name,
            "model_config": {
                "type": "pytorch",
                "code_base": "funasr",
                "mode": "paraformer",
                "lang": "zh-cn",
                "batch_size": 1,
                "am_model_config": "config.yaml",
                "asr_model_config": "decoding.yaml",
                "mvn_file": "am.mvn",
                "model": HUB_ID,
            },
        },
    }


def write_model_dir(
    out_dir: str,
    config: Dict,
    token_list: Sequence[str],
    *,
    cmvn_mean: torch.Tensor,
    cmvn_std: torch.Tensor,
    state_dict: Optional[Dict[str, torch.Tensor]] = None,
    seed: int = 0,
    seg_dict: Optional[Dict[str, List[str]]] = None,
    layout: str = "1.x",
    decoding: Optional[Dict] = None,
    finetune: Optional[Dict] = None,
) -> str:
    """Write a model dir and return its path.

    Args:
        out_dir: created if missing; files in it are replaced atomically.
        config: a FunASR config.yaml dict (1.x class names); ``token_list``,
            ``cmvn_file`` and ``init_param`` entries are dropped (the files carry them).
        token_list: the vocabulary; its length is the model's vocab size.
        cmvn_mean, cmvn_std: (D,) statistics of the LFR features (D = n_mels*lfr_m).
        state_dict: weights; None = a fresh :class:`Paraformer` seeded with ``seed``.
        seg_dict: English word -> ``@@`` pieces, written as ``seg_dict`` when given.
        layout: ``"1.x"`` or ``"0.x"``.
        decoding, finetune: decoding.yaml / finetune.yaml contents (0.x layout; decoding also for 1.x).
    """
    if layout not in ("1.x", "0.x"):
        raise ValueError(f"layout must be '1.x' or '0.x', got {layout!r}")
    config = copy.deepcopy(dict(config))
    for key in ("token_list", "cmvn_file", "init_param"):
        config.pop(key, None)
    for section, key in (
        ("frontend_conf", "cmvn_file"),
        ("tokenizer_conf", "token_list"),
        ("tokenizer_conf", "seg_dict"),
        ("tokenizer_conf", "seg_dict_file"),
    ):
        if isinstance(config.get(section), dict):
            config[section].pop(key, None)
    if state_dict is None:
        torch.manual_seed(seed)
        state_dict = build_model(ModelConfig.from_dict(config), vocab_size=len(token_list)).state_dict()
    os.makedirs(out_dir, exist_ok=True)
    weights = "model.pt" if layout == "1.x" else "model.pb"
    atomic_torch_save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, os.path.join(out_dir, weights))
    write_cmvn(os.path.join(out_dir, "am.mvn"), cmvn_mean, cmvn_std)
    if seg_dict:
        atomic_write_text(
            os.path.join(out_dir, "seg_dict"), "".join(f"{w} {' '.join(p)}\n" for w, p in seg_dict.items())
        )
    atomic_write_json(os.path.join(out_dir, "configuration.json"), configuration_json(layout, weights))
    if layout == "1.x":
        atomic_write_json(os.path.join(out_dir, "tokens.json"), list(token_list), indent=0)
        save_yaml(os.path.join(out_dir, "config.yaml"), config)
        if decoding:
            save_yaml(os.path.join(out_dir, "decoding.yaml"), decoding)
    else:
        atomic_write_text(os.path.join(out_dir, "tokens.txt"), "".join(f"{t}\n" for t in token_list))
        # a 0.x config.yaml names each class by its 0.x name (Paraformer -> paraformer), from the model registry
        short = {k: {new: old for old, new in legacy_names(k).items()} for k in config}
        legacy = {k: short[k].get(v, v) if isinstance(v, str) else v for k, v in config.items()}
        legacy.pop("tokenizer", None)
        legacy.pop("tokenizer_conf", None)
        save_yaml(os.path.join(out_dir, "config.yaml"), {**legacy, "token_list": list(token_list)})
        save_yaml(os.path.join(out_dir, "decoding.yaml"), decoding or DEFAULT_DECODING)
        save_yaml(os.path.join(out_dir, "finetune.yaml"), finetune or {})
    return out_dir
