"""Tiny Paraformer model dirs for tests: a FunASR-shaped config, random weights made
non-degenerate, CMVN from synthesized audio.

Random weights usually predict no tokens at all (CIF never fires) or the same
token everywhere.  ``spread_weights`` biases the predictor so that about one
token fires every 3 encoder frames and scales the output layer so that argmax
ids vary, which makes text comparisons meaningful.

The model-level parity tests (tests/models) share ``SharedEncoder``, ``private_randperm`` and ``bicif_kwargs``
from here.
"""

import copy
import os
import sys
from typing import Dict, List, Optional

import torch
import yaml

from funasr_lite.hub.model_init import data_dir_cmvn, write_model_dir

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
if TOOLS not in sys.path:  # test scripts run as subprocesses have no conftest.py
    sys.path.insert(0, TOOLS)
from model_shapes import funasr_model, scaled_config, spread_weights  # noqa: E402  (tools/model_shapes.py)

DEMO_CONF = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "egs_modelscope",
    "asr",
    "paraformer",
    "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo",
    "conf",
    "paraformer_tiny.yaml",
)
D = 64
with open(DEMO_CONF, encoding="utf-8") as _f:
    # the demo's FunASR-shaped config.yaml, shrunk further; dither 0 for exact comparisons
    TINY_CONFIG: Dict = scaled_config(
        yaml.safe_load(_f), d_model=D, heads=4, ffn=128, enc_blocks=3, dec_blocks=2, dither=0.0
    )

# 40 CJK characters (plus the specials) make the vocabulary.
CHARS = list("今天是二零一三四五六七八九十年月日号电话码下午点分开会共元角明早上出发我的百千")


def tiny_token_list() -> List[str]:
    return ["<blank>", "<s>", "</s>"] + CHARS + ["<unk>"]


def cmvn_from_data_dir(data_dir: str, config: Optional[Dict] = None):
    """Global mean/std of the LFR features of a data dir's audio."""
    mean, std, _, _ = data_dir_cmvn(data_dir, (config or TINY_CONFIG)["frontend_conf"], stats_on="lfr")
    return mean, std


def build_tiny_model_dir(
    out_dir: str, data_dir: str, *, state_dict=None, layout: str = "1.x", config: Optional[Dict] = None, seed: int = 0
) -> str:
    """Write a tiny model dir; weights from ``state_dict`` or our own random init, spread."""
    config = copy.deepcopy(config or TINY_CONFIG)
    tokens = tiny_token_list()
    if state_dict is None:
        from funasr_lite.models.paraformer import Paraformer

        torch.manual_seed(seed)
        state_dict = Paraformer.from_config(config, vocab_size=len(tokens)).state_dict()
    mean, std = cmvn_from_data_dir(data_dir, config)
    os.makedirs(out_dir, exist_ok=True)
    return write_model_dir(
        out_dir,
        config,
        tokens,
        cmvn_mean=mean,
        cmvn_std=std,
        state_dict=spread_weights(state_dict, seed),
        layout=layout,
    )


# CifPredictorV3's timestamp head as the ModelScope BiCif and SeACo models configure it (a BLSTM over the
# encoder output, 3 sub-frames per frame).
CIF_V3_TIMESTAMP_CONF: Dict = dict(
    smooth_factor2=0.25, noise_threshold2=0.01, upsample_times=3, use_cif1_cnn=False, upsample_type="cnn_blstm"
)


def write_train_dev_data(data_path, data_dir: str) -> None:
    """A finetune ``data_path`` (created here) whose train/ and dev/ both hold ``data_dir``'s wav.scp and text."""
    for sub in ("train", "dev"):
        os.makedirs(os.path.join(data_path, sub))
        for name in ("wav.scp", "text"):
            with open(os.path.join(data_dir, name), encoding="utf-8") as f:
                text = f.read()
            with open(os.path.join(data_path, sub, name), "w", encoding="utf-8") as f:
                f.write(text)


# A tiny BiCifParaformer: TINY_CONFIG with the ModelScope BiCif model's predictor (CifPredictorV3 with a
# BLSTM timestamp head that reads the encoder output, 3 sub-frames per frame).
BICIF_CONFIG: Dict = copy.deepcopy(TINY_CONFIG)
BICIF_CONFIG["model"] = "BiCifParaformer"
BICIF_CONFIG["predictor"] = "CifPredictorV3"
BICIF_CONFIG["predictor_conf"].update(CIF_V3_TIMESTAMP_CONF)


def funasr_state_dict(model_class, config: Dict, seed: int = 0, **extra) -> Dict[str, torch.Tensor]:
    """Random weights from one of funasr's model classes built from ``config`` (the oracle's parameter names)."""
    return funasr_model(model_class, config, len(tiny_token_list()), seed, **extra).state_dict()


def spread_timestamp_head(state: Dict[str, torch.Tensor], scale: float = 3.0, seed: int = 5) -> Dict[str, torch.Tensor]:
    """Large random weights for CifPredictorV3's timestamp output layer, so its weights are spiky: tokens of
    varied length, some longer than FunASR's 240 ms cap (the silence-cut path)."""
    state = dict(state)
    w = state["predictor.cif_output2.weight"]
    state["predictor.cif_output2.weight"] = torch.randn(w.shape, generator=torch.Generator().manual_seed(seed)) * scale
    return state


def tiny_contextual_config() -> Dict:
    """TINY_CONFIG as a ContextualParaformer (hotword width = model width)."""
    config = copy.deepcopy(TINY_CONFIG)
    config.update(model="ContextualParaformer", decoder="ContextualParaformerDecoder")
    config["model_conf"]["inner_dim"] = D
    return config


def build_tiny_contextual_dir(out_dir: str, data_dir: str, seed: int = 0) -> str:
    """A tiny ContextualParaformer dir with weights from funasr's own class and a char seg_dict. The predictor and
    output layer are spread, and the hotword attention's share of ``bias_output`` and the hotword embeddings
    are scaled up, so that hotwords change some outputs."""
    from funasr.models.contextual_paraformer.model import ContextualParaformer

    config = tiny_contextual_config()
    tokens = tiny_token_list()
    torch.manual_seed(seed)
    model = ContextualParaformer(
        **{k: config[k] for k in ("encoder", "encoder_conf", "decoder", "decoder_conf", "predictor", "ctc_conf")},
        predictor_conf=config["predictor_conf"],
        input_size=560,
        vocab_size=len(tokens),
        **config["model_conf"],
    )
    state = spread_weights(model.state_dict(), seed)
    g = torch.Generator().manual_seed(seed + 5)
    w = state["decoder.bias_output.weight"]
    state["decoder.bias_output.weight"] = torch.cat([w[:, :D], torch.randn(D, D, 1, generator=g)], dim=1)
    state["bias_embed.weight"] = torch.randn(state["bias_embed.weight"].shape, generator=g) * 3
    mean, std = cmvn_from_data_dir(data_dir, config)
    os.makedirs(out_dir, exist_ok=True)
    return write_model_dir(
        out_dir, config, tokens, cmvn_mean=mean, cmvn_std=std, state_dict=state, seg_dict={c: [c] for c in CHARS}
    )


# A tiny SeacoParaformer: BICIF_CONFIG plus the hub config's SeACo keys (a hotword decoder whose
# "num_blocks: 4" FunASR builds as 6 blocks); NO_BIAS is a real token of the tiny vocabulary.
SEACO_NO_BIAS = len(tiny_token_list()) - 2
SEACO_CONFIG: Dict = copy.deepcopy(BICIF_CONFIG)
SEACO_CONFIG["model"] = "SeacoParaformer"
SEACO_CONFIG["model_conf"].update(
    inner_dim=D,
    bias_encoder_type="lstm",
    seaco_lsm_weight=0.1,
    seaco_length_normalized_loss=True,
    NO_BIAS=SEACO_NO_BIAS,
)
SEACO_CONFIG["seaco_decoder"] = "ParaformerSANMDecoder"
SEACO_CONFIG["seaco_decoder_conf"] = dict(
    attention_heads=4,
    linear_units=128,
    num_blocks=4,
    kernel_size=11,
    sanm_shfit=0,
    use_output_layer=False,
    wo_input_layer=True,
)


def spread_hotword_head(state: Dict[str, torch.Tensor], seed: int = 9) -> Dict[str, torch.Tensor]:
    """Random hotword output weights and a NO_BIAS bias of +3, so that the hotword head says "no bias" at
    most positions and changes some: hotwords then change some tokens, not all."""
    state = dict(state)
    w = state["hotword_output_layer.weight"]
    state["hotword_output_layer.weight"] = torch.randn(w.shape, generator=torch.Generator().manual_seed(seed)) * 0.5
    bias = state["hotword_output_layer.bias"].clone()
    bias[SEACO_NO_BIAS] += 3.0
    state["hotword_output_layer.bias"] = bias
    return state


def funasr_bicif_state() -> Dict[str, torch.Tensor]:
    """BICIF_CONFIG's weights from funasr's own BiCifParaformer (seed 0), timestamp head spread."""
    from funasr.models.bicif_paraformer.model import BiCifParaformer

    return spread_timestamp_head(funasr_state_dict(BiCifParaformer, BICIF_CONFIG))


def funasr_seaco_state() -> Dict[str, torch.Tensor]:
    """SEACO_CONFIG's weights from funasr's own SeacoParaformer (seed 0), timestamp and hotword heads spread."""
    from funasr.models.seaco_paraformer.model import SeacoParaformer

    extra = {k: SEACO_CONFIG[k] for k in ("seaco_decoder", "seaco_decoder_conf")}
    return spread_hotword_head(spread_timestamp_head(funasr_state_dict(SeacoParaformer, SEACO_CONFIG, **extra)))


def write_char_seg_dict(model_dir: str) -> None:
    """A seg_dict mapping each character of the vocabulary to itself: FunASR then splits hotwords into
    characters (without one, each hotword is a single <unk>)."""
    with open(os.path.join(model_dir, "seg_dict"), "w", encoding="utf-8") as f:
        f.write("".join(f"{c} {c}\n" for c in CHARS))


class SharedEncoder(torch.nn.Module):
    """Gives one of FunASR's models our encoder (FunASR's encoder returns a 3-tuple).

    In training, CIF rescales alphas to sum to the target length exactly and a
    token only fires if the float prefix sum reaches that integer, so whether
    the last token fires is decided by 1e-7 rounding noise. Sharing the encoder
    makes both sides see bit-identical encoder outputs, so the comparison tests
    the loss itself; the encoder's own parity is tested separately.
    """

    def __init__(self, encoder):
        super().__init__()
        self.inner = encoder

    def forward(self, x, lengths):
        enc, lens = self.inner(x, lengths)
        return enc, lens, None


def private_randperm(monkeypatch) -> torch.Generator:
    """Make ``torch.randperm`` (the training sampler's draws) use the returned generator for the rest of the test.

    Reseeding it before each forward gives FunASR's model and ours the same draws: FunASR's layer
    containers also draw from the global RNG on every call, so the global streams differ.
    """
    draws = torch.Generator()
    real_randperm = torch.randperm
    monkeypatch.setattr(torch, "randperm", lambda n, **kw: real_randperm(int(n), generator=draws))
    return draws


def sanm_encoder_conf(d: int, num_blocks: int, **extra) -> Dict:
    """The ``encoder_conf`` of a tiny SANMEncoder (funasr's and ours take the same): width ``d``, 4 heads, FFN
    128, FSMN kernel 11, ``num_blocks`` blocks; ``extra`` adds or overrides keys (dropout rates, ...)."""
    conf = dict(
        output_size=d,
        attention_heads=4,
        linear_units=128,
        num_blocks=num_blocks,
        input_layer="pe",
        pos_enc_class="SinusoidalPositionEncoder",
        normalize_before=True,
        kernel_size=11,
        sanm_shfit=0,
        selfattention_layer_type="sanm",
    )
    return {**conf, **extra}


def bicif_kwargs(d: int, vocab_size: int, input_size: int) -> Dict:
    """Constructor kwargs (funasr's BiCifParaformer and ours take the same) of a BiCifParaformer of width ``d``
    with 2 encoder and 2 decoder blocks, no CTC and no dropout settings: for model-level parity tests that feed
    random features of ``input_size`` dims."""
    return dict(
        encoder="SANMEncoder",
        encoder_conf=sanm_encoder_conf(d, num_blocks=2),
        decoder="ParaformerSANMDecoder",
        decoder_conf=dict(attention_heads=4, linear_units=128, num_blocks=2, att_layer_num=2, kernel_size=11),
        predictor="CifPredictorV3",
        predictor_conf=dict(idim=d, threshold=1.0, l_order=1, r_order=1, tail_threshold=0.45, **CIF_V3_TIMESTAMP_CONF),
        ctc_weight=0.0,
        input_size=input_size,
        vocab_size=vocab_size,
        lsm_weight=0.1,
        length_normalized_loss=True,
        predictor_weight=1.0,
        predictor_bias=1,
        sampling_ratio=0.75,
    )
