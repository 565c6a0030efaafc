"""Tiny Paraformer model dirs for tests: a FunASR-shaped config, random weights made
non-degenerate, CMVN from synthesized audio.

Random weights usually predict no tokens at all (CIF never fires) or the same
token everywhere.  ``spread_weights`` biases the predictor so that about one
token fires every 3 encoder frames and scales the output layer so that argmax
ids vary, which makes text comparisons meaningful.
"""

import copy
import os
from typing import Dict, List, Optional

import torch

from funasr_lite.model_init import data_dir_cmvn, write_model_dir

D = 64
TINY_CONFIG: Dict = {
    "model": "Paraformer",
    "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True,
                   "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75},
    "encoder": "SANMEncoder",
    "encoder_conf": {"output_size": D, "attention_heads": 4, "linear_units": 128, "num_blocks": 3,
                     "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
                     "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True,
                     "kernel_size": 11, "sanm_shfit": 0, "selfattention_layer_type": "sanm"},
    "decoder": "ParaformerSANMDecoder",
    "decoder_conf": {"attention_heads": 4, "linear_units": 128, "num_blocks": 2, "dropout_rate": 0.1,
                     "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
                     "src_attention_dropout_rate": 0.1, "att_layer_num": 2, "kernel_size": 11, "sanm_shfit": 0},
    "predictor": "CifPredictorV2",
    "predictor_conf": {"idim": D, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
    "frontend": "WavFrontend",
    "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                      "lfr_m": 7, "lfr_n": 6, "dither": 0.0},
    "specaug": "SpecAugLFR",
    "specaug_conf": {"apply_time_warp": False, "time_warp_window": 5, "time_warp_mode": "bicubic",
                     "apply_freq_mask": True, "freq_mask_width_range": [0, 30], "lfr_rate": 6,
                     "num_freq_mask": 1, "apply_time_mask": True, "time_mask_width_range": [0, 12],
                     "num_time_mask": 1},
    "tokenizer": "CharTokenizer",
    "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
    "normalize": None,
}

# 40 CJK characters (plus the specials) make the vocabulary.
CHARS = list("今天是二零一三四五六七八九十年月日号电话码下午点分开会共元角明早上出发我的百千")


def tiny_token_list() -> List[str]:
    return ["<blank>", "<s>", "</s>"] + CHARS + ["<unk>"]


def spread_weights(state: Dict[str, torch.Tensor], seed: int = 0) -> Dict[str, torch.Tensor]:
    """Make random weights give non-empty, varied outputs (see module docstring)."""
    g = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in state.items()}
    w = state["predictor.cif_output.weight"]
    state["predictor.cif_output.weight"] = torch.randn(w.shape, generator=g) * 0.05
    # sigmoid(-0.7) ~ 0.33: about one token per three 60 ms frames
    state["predictor.cif_output.bias"] = torch.full_like(state["predictor.cif_output.bias"], -0.7)
    ow = state["decoder.output_layer.weight"]
    state["decoder.output_layer.weight"] = torch.randn(ow.shape, generator=g) * 0.5
    return state


def cmvn_from_data_dir(data_dir: str, config: Optional[Dict] = None):
    """Global mean/std of the LFR features of a data dir's audio."""
    mean, std, _, _ = data_dir_cmvn(data_dir, (config or TINY_CONFIG)["frontend_conf"], stats_on="lfr")
    return mean, std


def build_tiny_model_dir(out_dir: str, data_dir: str, *, state_dict=None, layout: str = "1.x",
                         config: Optional[Dict] = None, seed: int = 0) -> str:
    """Write a tiny model dir; weights from ``state_dict`` or our own random init, spread."""
    config = copy.deepcopy(config or TINY_CONFIG)
    tokens = tiny_token_list()
    if state_dict is None:
        from funasr_lite.paraformer import Paraformer

        torch.manual_seed(seed)
        state_dict = Paraformer.from_config(config, vocab_size=len(tokens)).state_dict()
    mean, std = cmvn_from_data_dir(data_dir, config)
    os.makedirs(out_dir, exist_ok=True)
    return write_model_dir(out_dir, config, tokens, cmvn_mean=mean, cmvn_std=std,
                           state_dict=spread_weights(state_dict, seed), layout=layout)
