"""The model registry: which FunASR classes funasr-lite implements, under which names, and how to build them.

Each :class:`Registration` names a FunASR 1.x class, its FunASR 0.x name(s), the class slot of config.yaml it
fills (``model``, ``encoder``, ``decoder``, ...), and, for classes with an implementation here, where it lives
(``"module:attr"``, imported on first use, so reading a config never imports torch). Adding a model is one new
module plus its registrations below; the config schema, the legacy-name normalisation and model building all
read this table. Classes FunASR has and funasr-lite does not are listed in ``config/funasr_names.yaml``.
"""

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

__all__ = [
    "Registration",
    "REGISTRY",
    "OPTIONAL_SLOTS",
    "supported",
    "legacy_names",
    "resolve",
    "build_model",
    "decode_entry",
    "required_predictor",
]


@dataclass(frozen=True)
class Registration:
    """One FunASR class funasr-lite accepts in a config.yaml."""

    slot: str  # config.yaml key naming the class: model, encoder, decoder, predictor, frontend, specaug, ...
    name: str  # FunASR 1.x class name
    legacy: Tuple[str, ...] = ()  # FunASR 0.x names of the same class
    target: str = ""  # "module:attr" of funasr-lite's implementation ("" for a name-only entry)
    # models: "module:attr" of the function that searches a feature batch, ``(model, feats, feat_lens, options,
    # tokenizer)``; a model with hotwords takes ``hotwords=None`` too: token ids per hotword, without the "no bias"
    # entry (the model appends it), so Transcriber passes --hotword to it and refuses it for the others
    decode: str = ""
    trainable: bool = True  # False: accepted when decoding, refused for training
    predictor: str = ""  # models: the predictor class the model needs ("" for any registered one)


REGISTRY: Tuple[Registration, ...] = (
    Registration(
        "model",
        "Paraformer",
        ("paraformer",),
        "funasr_lite.models.paraformer:Paraformer",
        decode="funasr_lite.decode.transcribe:search_paraformer",
    ),
    Registration(
        "model",
        "BiCifParaformer",
        ("bicif_paraformer",),
        "funasr_lite.models.bicif:BiCifParaformer",
        decode="funasr_lite.decode.bicif:search_bicif",
        predictor="CifPredictorV3",
    ),
    Registration(
        "model",
        "ContextualParaformer",
        ("contextual_paraformer",),
        "funasr_lite.models.contextual:ContextualParaformer",
        decode="funasr_lite.decode.contextual:search_contextual",
    ),
    Registration(
        "model",
        "SeacoParaformer",
        (),
        "funasr_lite.models.seaco:SeacoParaformer",
        decode="funasr_lite.decode.bicif:search_seaco",
        predictor="CifPredictorV3",
    ),
    Registration("encoder", "SANMEncoder", ("sanm",), "funasr_lite.models.sanm:SANMEncoder"),
    Registration(
        "decoder",
        "ParaformerSANMDecoder",
        ("paraformer_decoder_sanm",),
        "funasr_lite.models.decoder:ParaformerSANMDecoder",
    ),
    Registration(
        "decoder",
        "ContextualParaformerDecoder",
        ("contextual_paraformer_decoder",),
        "funasr_lite.models.contextual:ContextualParaformerDecoder",
    ),
    Registration("predictor", "CifPredictorV2", ("cif_predictor_v2",), "funasr_lite.models.cif:CifPredictorV2"),
    Registration("predictor", "CifPredictorV3", ("cif_predictor_v3",), "funasr_lite.models.bicif:CifPredictorV3"),
    Registration("frontend", "WavFrontend", ("wav_frontend",), "funasr_lite.data.frontend:WavFrontend"),
    Registration("specaug", "SpecAugLFR", ("specaug_lfr",), "funasr_lite.models.specaug:SpecAugLFR"),
    Registration("specaug", "SpecAug", ("specaug",), trainable=False),
    Registration("tokenizer", "CharTokenizer", ("char",)),
    Registration("ctc", "CTC"),
)
# Slots that may be null; normalize/preencoder/postencoder must be (no implementation is registered).
OPTIONAL_SLOTS = ("specaug", "tokenizer", "ctc", "normalize", "preencoder", "postencoder")


def supported(slot: str, training: bool = False) -> Tuple[Optional[str], ...]:
    """The class names accepted in ``slot`` (None when the slot may be null)."""
    names = tuple(r.name for r in REGISTRY if r.slot == slot and (r.trainable or not training))
    return names + ((None,) if slot in OPTIONAL_SLOTS else ())


def legacy_names(slot: str) -> Dict[str, str]:
    """FunASR 0.x name -> 1.x name for the registered classes of ``slot``."""
    return {old: r.name for r in REGISTRY if r.slot == slot for old in r.legacy}


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _find(slot: str, name: Optional[str]) -> Registration:
    for r in REGISTRY:
        if r.slot == slot and (r.name == name or name in r.legacy) and r.target:
            return r
    known = [r.name for r in REGISTRY if r.slot == slot and r.target]
    raise ValueError(f"{slot}={name!r} is not supported by funasr-lite (supported: {', '.join(known)})")


def resolve(slot: str, name: Optional[str]) -> type:
    """The implementation of class ``name`` (1.x or 0.x name) in ``slot``; ValueError if there is none."""
    return _load(_find(slot, name).target)


def decode_entry(model_name: str) -> Callable:
    """The function that searches a feature batch for model class ``model_name``."""
    return _load(_find("model", model_name).decode)


def required_predictor(model_name: str) -> str:
    """The predictor class model class ``model_name`` needs ("" for any)."""
    return next((r.predictor for r in REGISTRY if r.slot == "model" and r.name == model_name), "")


def build_model(cfg, vocab_size: int):
    """Build the model a :class:`~funasr_lite.config.schema.ModelConfig` describes, with random weights."""
    return resolve("model", cfg.model).from_config(cfg, vocab_size=vocab_size)
