"""Model shapes for tests and benchmarks: a Paraformer config scaled to other sizes, FunASR's own model
classes built from a config, and random weights made non-degenerate so that decoding them gives varied,
comparable text.

Used by ``tests/tiny_model.py`` (tools/ is on sys.path via tests/conftest.py) and
``tools/bench_common.py`` (a sibling module); not part of the library.
"""

import copy
from typing import Any, Dict, Optional

import torch


def scaled_config(
    base: Dict, *, d_model: int, heads: int, ffn: int, enc_blocks: int, dec_blocks: int, dither: Optional[float] = None
) -> Dict:
    """A copy of a Paraformer config.yaml dict with other sizes (all other keys kept).

    Sets the encoder/decoder width, heads, FFN units and block counts (the
    decoder's ``att_layer_num`` follows its block count), the predictor's input
    width, and optionally the frontend's dither.
    """
    config = copy.deepcopy(dict(base))
    config["encoder_conf"].update(output_size=d_model, attention_heads=heads, linear_units=ffn, num_blocks=enc_blocks)
    config["decoder_conf"].update(
        attention_heads=heads, linear_units=ffn, num_blocks=dec_blocks, att_layer_num=dec_blocks
    )
    config["predictor_conf"]["idim"] = d_model
    if dither is not None:
        config["frontend_conf"]["dither"] = dither
    return config


def funasr_model(model_class, config: Dict, vocab_size: int, seed: int = 0, **extra: Any):
    """One of FunASR's Paraformer-family classes (``model_class``) built from the config.yaml dict ``config``
    with random weights from ``torch.manual_seed(seed)``: the oracle's parameter names and shapes.
    ``extra``: constructor arguments beyond the config's sections (e.g. SeACo's ``seaco_decoder``)."""
    torch.manual_seed(seed)
    return model_class(
        **{k: config[k] for k in ("encoder", "encoder_conf", "decoder", "decoder_conf", "predictor", "predictor_conf")},
        ctc_conf=config.get("ctc_conf"),
        input_size=config["frontend_conf"]["n_mels"] * config["frontend_conf"]["lfr_m"],
        vocab_size=vocab_size,
        **config.get("model_conf", {}),
        **extra,
    )


def spread_weights(state: Dict[str, torch.Tensor], seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random weights made non-degenerate, for tests and benchmarks with no trained model.

    Random weights usually make CIF never fire (empty text) or the decoder predict
    one token everywhere. The predictor's output layer gets small weights and a
    bias of -0.7 (sigmoid ~ 0.33: a token about every third 60 ms frame), and the
    decoder's output layer a large scale, so the argmax varies.
    """
    g = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in state.items()}
    w = state["predictor.cif_output.weight"]
    state["predictor.cif_output.weight"] = torch.randn(w.shape, generator=g) * 0.05
    state["predictor.cif_output.bias"] = torch.full_like(state["predictor.cif_output.bias"], -0.7)
    ow = state["decoder.output_layer.weight"]
    state["decoder.output_layer.weight"] = torch.randn(ow.shape, generator=g) * 0.5
    return state
