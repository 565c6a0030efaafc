"""Random-weight model dirs of the long-audio pipeline, built with FunASR's own classes (the oracle's parameter
names and shapes): a BiCifParaformer ASR dir, an FSMN-VAD dir at its real size and a CT-Transformer
punctuation dir, each in the FunASR 1.x layout (config.yaml, model.pt, configuration.json, am.mvn / tokens.json).

Random weights decide nothing useful, so each builder scales them until the outputs vary: the BiCif model fires
tokens and argmaxes vary (``model_shapes.spread_weights``); the VAD's silence output follows the frame energy,
so speech with pauses gives several segments; the punctuation head gets large logits so several classes win.
Used by tests/pipeline/test_pipeline_parity.py (tiny sizes) and tools/bench_long.py (real sizes). Not part of the
library; imports torch and funasr.
"""

import copy
import json
import math
import os
from typing import Dict, Sequence

import torch
import yaml

from model_shapes import funasr_model, spread_weights

__all__ = [
    "PUNC_LIST",
    "VAD_CONFIG",
    "bicif_config",
    "build_bicif_dir",
    "build_vad_dir",
    "build_punc_dir",
    "punc_config",
]

# the CT-Transformer punctuation classes (FunASR's templates; class 0 is never a real mark)
PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]

# FSMN-VAD, iic/speech_fsmn_vad_zh-cn-16k-common-pytorch's config.yaml (its real size: 0.4 M parameters)
VAD_CONFIG: Dict = {
    "frontend": "WavFrontendOnline",
    "frontend_conf": {
        "fs": 16000,
        "window": "hamming",
        "n_mels": 80,
        "frame_length": 25,
        "frame_shift": 10,
        "dither": 0.0,
        "lfr_m": 5,
        "lfr_n": 1,
    },
    "model": "FsmnVADStreaming",
    "model_conf": {
        "sample_rate": 16000,
        "detect_mode": 1,
        "snr_mode": 0,
        "max_end_silence_time": 800,
        "max_start_silence_time": 3000,
        "do_start_point_detection": True,
        "do_end_point_detection": True,
        "window_size_ms": 200,
        "sil_to_speech_time_thres": 150,
        "speech_to_sil_time_thres": 150,
        "speech_2_noise_ratio": 1.0,
        "do_extend": 1,
        "lookback_time_start_point": 200,
        "lookahead_time_end_point": 100,
        "max_single_segment_time": 60000,
        "snr_thres": -100.0,
        "noise_frame_num_used_for_snr": 100,
        "decibel_thres": -100.0,
        "speech_noise_thres": 0.6,
        "fe_prior_thres": 0.0001,
        "silence_pdf_num": 1,
        "sil_pdf_ids": [0],
        "speech_noise_thresh_low": -0.1,
        "speech_noise_thresh_high": 0.3,
        "output_frame_probs": False,
        "frame_in_ms": 10,
        "frame_length_ms": 25,
    },
    "encoder": "FSMN",
    "encoder_conf": {
        "input_dim": 400,
        "input_affine_dim": 140,
        "fsmn_layers": 4,
        "linear_dim": 250,
        "proj_dim": 128,
        "lorder": 20,
        "rorder": 0,
        "lstride": 1,
        "rstride": 0,
        "output_affine_dim": 140,
        "output_dim": 248,
    },
}


def bicif_config(paraformer_config: Dict) -> Dict:
    """A BiCifParaformer config.yaml dict from a Paraformer one of the same sizes: the CifPredictorV3 of the
    vad-punc model (the timestamp head: upsampling CNN + BiLSTM)."""
    config = copy.deepcopy(paraformer_config)
    config["model"] = "BiCifParaformer"
    config["predictor"] = "CifPredictorV3"
    config["predictor_conf"] = {
        "idim": config["encoder_conf"]["output_size"],
        "threshold": 1.0,
        "l_order": 1,
        "r_order": 1,
        "tail_threshold": 0.45,
        "smooth_factor2": 0.25,
        "noise_threshold2": 0.01,
        "upsample_times": 3,
        "use_cif1_cnn": False,
        "upsample_type": "cnn_blstm",
    }
    return config


def punc_config(*, d_model: int, heads: int, ffn: int, blocks: int) -> Dict:
    """A CTTransformer config.yaml dict (the layout of iic/punc_ct-transformer_zh-cn-common-vocab272727)."""
    return {
        "model": "CTTransformer",
        "model_conf": {
            "ignore_id": 0,
            "embed_unit": d_model,
            "att_unit": d_model,
            "dropout_rate": 0.1,
            "punc_list": list(PUNC_LIST),
            "punc_weight": [1.0] * len(PUNC_LIST),
            "sentence_end_id": 3,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            "input_size": d_model,
            "output_size": d_model,
            "attention_heads": heads,
            "linear_units": ffn,
            "num_blocks": blocks,
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.0,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
            "padding_idx": 0,
        },
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>"},
    }


def _configuration_json(out_dir: str, metas: Dict) -> None:
    conf = {
        "framework": "pytorch",
        "model": {"type": "funasr"},
        "pipeline": {"type": "funasr-pipeline"},
        "file_path_metas": {"init_param": "model.pt", "config": "config.yaml", **metas},
    }
    with open(os.path.join(out_dir, "configuration.json"), "w", encoding="utf-8") as f:
        json.dump(conf, f, ensure_ascii=False, indent=4)


def _save(out_dir: str, config: Dict, state: Dict[str, torch.Tensor]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    torch.save({k: v.detach().contiguous() for k, v in state.items()}, os.path.join(out_dir, "model.pt"))


def build_bicif_dir(out_dir: str, config: Dict, token_list: Sequence[str], data_dir: str, *, seed: int = 0) -> str:
    """A BiCifParaformer dir: FunASR's class at ``config``'s sizes, weights spread, am.mvn from ``data_dir``.

    The timestamp head's output layer gets the same firing bias as the CIF's, so timestamps are not all zero."""
    from funasr.models.bicif_paraformer.model import BiCifParaformer

    from funasr_lite.hub.model_init import data_dir_cmvn, write_model_dir

    state = spread_weights(funasr_model(BiCifParaformer, config, len(token_list), seed).state_dict(), seed)
    g = torch.Generator().manual_seed(seed + 1)
    w2 = state["predictor.cif_output2.weight"]
    state["predictor.cif_output2.weight"] = torch.randn(w2.shape, generator=g) * 0.05
    state["predictor.cif_output2.bias"] = torch.full_like(state["predictor.cif_output2.bias"], -0.7)
    mean, std, _, _ = data_dir_cmvn(data_dir, config["frontend_conf"], stats_on="lfr", max_utts=16)
    return write_model_dir(out_dir, config, list(token_list), cmvn_mean=mean, cmvn_std=std, state_dict=state)


def build_vad_dir(out_dir: str, calibration_wavs: Sequence[str], *, seed: int = 0, gain: float = 6.0) -> str:
    """An FSMN-VAD dir at its real size whose silence probability follows the frame energy.

    am.mvn comes from the features of ``calibration_wavs`` (recordings with pauses), made by FunASR's own
    WavFrontendOnline. The random FSMN is kept but for its last layer: the silence row becomes ``-gain`` times
    the direction, in that layer's input space, from the quiet frames' mean to the loud frames' (scaled by the
    spread along it), centred between them; the other rows are shrunk, so quiet frames score silence.
    The result is checked by the caller (several segments on speech with pauses), not here.
    """
    from funasr.frontends.wav_frontend import WavFrontendOnline
    from funasr.models.fsmn_vad_streaming.encoder import FSMN
    from funasr.utils.load_utils import extract_fbank

    from funasr_lite.data.audio import load_audio
    from funasr_lite.hub.model_init import write_cmvn

    frontend = WavFrontendOnline(cmvn_file=None, **VAD_CONFIG["frontend_conf"])
    feats, energy = [], []
    for path in calibration_wavs:
        wav = load_audio(path, 16000)
        f, _ = extract_fbank(wav[None], data_type="sound", frontend=frontend, cache={}, is_final=True)[:2]
        feats.append(f[0])
        energy.append(f[0][:, :80].mean(-1))
    x, e = torch.cat(feats), torch.cat(energy)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-3)
    torch.manual_seed(seed)
    enc = FSMN(**VAD_CONFIG["encoder_conf"]).eval()
    loud, quiet = e > e.quantile(0.6), e < e.quantile(0.2)
    with torch.no_grad():
        hidden = _vad_hidden(enc, (x - mean) / std)  # (T, 140): the input of the last linear layer
        direction = hidden[loud].mean(0) - hidden[quiet].mean(0)
        proj = hidden @ direction
        centre = 0.5 * (proj[loud].mean() + proj[quiet].mean())
        spread = (proj[loud].mean() - proj[quiet].mean()).clamp_min(1e-6)
        state = enc.state_dict()
        w, b = state["out_linear2.linear.weight"], state["out_linear2.linear.bias"]
        w.mul_(0.01)
        b.zero_()
        w[0] = -gain * direction / spread
        # + log(#other classes): at the centre silence and the rest are equally likely
        b[0] = gain * centre / spread + math.log(w.shape[0] - 1)
    os.makedirs(out_dir, exist_ok=True)
    write_cmvn(os.path.join(out_dir, "am.mvn"), mean, std)
    _save(out_dir, VAD_CONFIG, {f"encoder.{k}": v for k, v in state.items()})
    _configuration_json(out_dir, {"frontend_conf": {"cmvn_file": "am.mvn"}})
    return out_dir


def _vad_hidden(enc, x: torch.Tensor) -> torch.Tensor:
    """The FSMN's activations before its last linear layer, for (T, 400) normalized frames."""
    captured = {}
    handle = enc.out_linear2.register_forward_hook(lambda m, inp, out: captured.setdefault("x", inp[0]))
    try:
        enc(x[None], {})
    finally:
        handle.remove()
    return captured["x"][0]


def build_punc_dir(
    out_dir: str, chars: Sequence[str], *, d_model: int, heads: int, ffn: int, blocks: int, seed: int = 0, scale=4.0
) -> str:
    """A CTTransformer dir (FunASR's class) over a vocabulary of ``chars``; the classifier is scaled by
    ``scale`` and biased towards 'no mark' so that a mark comes every few tokens and several classes win."""
    from funasr.models.ct_transformer.model import CTTransformer

    config = punc_config(d_model=d_model, heads=heads, ffn=ffn, blocks=blocks)
    tokens = ["<blank>", "<s>", "</s>", *chars, "<unk>"]
    torch.manual_seed(seed)
    model = CTTransformer(
        encoder=config["encoder"], encoder_conf=config["encoder_conf"], vocab_size=len(tokens), **config["model_conf"]
    )
    state = model.state_dict()
    del model
    g = torch.Generator().manual_seed(seed)
    w = state["decoder.weight"]
    state["decoder.weight"] = torch.randn(w.shape, generator=g) * scale / w.shape[1] ** 0.5
    state["decoder.bias"] = torch.tensor([-20.0, 3.0, 0.0, 0.0, 0.0, 0.0])[: w.shape[0]]
    _save(out_dir, config, state)
    with open(os.path.join(out_dir, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(tokens, f, ensure_ascii=False, indent=0)
    _configuration_json(out_dir, {"tokenizer_conf": {"token_list": "tokens.json"}})
    return out_dir
