"""The whole-config schema: which classes funasr-lite supports, FunASR 0.x -> 1.x normalisation, checking a
layer's keys, and :class:`ModelConfig`, a whole config.yaml (class names + typed ``*_conf`` sections +
funasr-lite's ``decoding``) validated strictly.

Keys that FunASR's real configs contain but funasr-lite does not use are accepted and kept verbatim
(``extra``), so nothing is dropped and :meth:`ModelConfig.to_dict` writes them back in a config.yaml FunASR
1.4.16 can load.  Layering the config files is :mod:`funasr_lite.config.merge`'s job.
"""

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple, Union, get_type_hints

from funasr_lite.config.fields import SECTIONS, Section, Where, coerce, suggest, unknown_key
from funasr_lite.config.yaml_io import YamlDict, format_provenance, plain, save_yaml
from funasr_lite.config.sections import (
    FUNASR_OPTIMS, FUNASR_SCHEDULERS, SUPPORTED_OPTIMS, SUPPORTED_SCHEDULERS, CTCConf, DecoderConf,
    EncoderConf, FrontendConf, ModelConf, OptimConf, PredictorConf, SchedulerConf, SpecAugConf,
    TokenizerConf, class_args)
from funasr_lite.data.options import DatasetConf
from funasr_lite.decode.options import DecodingConf
from funasr_lite.train.options import TrainConf
from funasr_lite.errors import ConfigError

# The one supported class per slot; None = the slot may be null.  Legacy 0.x names map to 1.x names.
SUPPORTED_CLASSES: Dict[str, Tuple[Optional[str], ...]] = {
    "model": ("Paraformer",), "encoder": ("SANMEncoder",), "decoder": ("ParaformerSANMDecoder",),
    "predictor": ("CifPredictorV2",), "frontend": ("WavFrontend",), "tokenizer": ("CharTokenizer", None),
    "specaug": ("SpecAugLFR", "SpecAug", None), "normalize": (None,), "preencoder": (None,),
    "postencoder": (None,), "ctc": ("CTC", None)}
LEGACY_CLASS_NAMES: Dict[str, Dict[str, str]] = {
    "model": {"paraformer": "Paraformer", "bicif_paraformer": "BiCifParaformer", "uniasr": "UniASR",
              "contextual_paraformer": "ContextualParaformer", "paraformer_online": "ParaformerStreaming",
              "neatcontextual_paraformer": "NeatContextualParaformer", "paraformer_bert": "ParaformerBert",
              "asr": "Transformer", "mfcca": "MFCCA", "timestamp_prediction": "MonotonicAligner",
              "rnnt": "Transducer", "rnnt_unified": "UnifiedTransducer", "sa_asr": "SAASR"},
    "encoder": {"sanm": "SANMEncoder", "sanm_chunk_opt": "SANMEncoderChunkOpt", "conformer": "ConformerEncoder",
                "transformer": "TransformerEncoder", "rnn": "RNNEncoder", "data2vec_encoder": "Data2VecEncoder",
                "chunk_conformer": "ConformerChunkEncoder", "mfcca_enc": "MFCCAEncoder"},
    "decoder": {"paraformer_decoder_sanm": "ParaformerSANMDecoder", "paraformer_decoder_san": "ParaformerDecoderSAN",
                "contextual_paraformer_decoder": "ContextualParaformerDecoder", "transformer": "TransformerDecoder",
                "fsmn_scama_opt": "FsmnDecoderSCAMAOpt", "rnn": "RNNDecoder"},
    "predictor": {"cif_predictor_v2": "CifPredictorV2", "cif_predictor": "CifPredictor",
                  "cif_predictor_v3": "CifPredictorV3"},
    "frontend": {"wav_frontend": "WavFrontend", "default": "DefaultFrontend",
                 "wav_frontend_online": "WavFrontendOnline"},
    "specaug": {"specaug_lfr": "SpecAugLFR", "specaug": "SpecAug"},
    "normalize": {"global_mvn": "GlobalMVN", "utterance_mvn": "UtteranceMVN"},
    "tokenizer": {"char": "CharTokenizer"}}
# Other classes FunASR 1.4.16 registers (funasr.register.tables): named "not supported", never "did you mean".
FUNASR_CLASSES: Dict[str, Tuple[str, ...]] = {
    "model": ("BAT", "BiCifParaformer", "Branchformer", "CAMPPlus", "CTC", "CTTransformer", "CTTransformerStreaming",
              "Conformer", "ContextualParaformer", "EBranchformer", "EParaformer", "ERes2NetV2", "Emotion2vec",
              "FsmnKWS", "FsmnVADStreaming", "FunASRNano", "LCBNet", "LLMASR", "MonotonicAligner",
              "OpenAIWhisperModel", "ParaformerStreaming", "Paraformer_v2_community", "SANM", "SCAMA",
              "SeacoParaformer", "SenseVoiceSmall", "Transducer", "Transformer", "UniASR"),
    "encoder": ("BranchformerEncoder", "ChunkConformerEncoder", "ConformerEncoder", "EBranchformerEncoder", "FSMN",
                "SANMEncoderChunkOpt", "SANMVadEncoder", "SenseVoiceEncoderSmall", "TransformerEncoder"),
    "decoder": ("ContextualParaformerDecoder", "FsmnDecoder", "FsmnDecoderSCAMAOpt", "ParaformerDecoderSAN",
                "ParaformerSANDecoder", "ParaformerSANMDecoder_v2_community", "TransformerDecoder"),
    "predictor": ("CifPredictor", "CifPredictorV3", "PifPredictor"),
    "frontend": ("WavFrontendOnline", "WhisperFrontend"), "normalize": ("GlobalMVN", "UtteranceMVN"),
    "tokenizer": ("HuggingfaceTokenizer", "SenseVoiceTokenizer", "SentencepiecesTokenizer", "WhisperTokenizer")}
_OPTIONAL_CLASS_KEYS = ("specaug", "normalize", "preencoder", "postencoder", "ctc", "tokenizer", "scheduler")
# 0.x top-level keys that 1.x keeps in a section: old -> (section, new). Moved only where the section does
# not set the key in the same file (then the top-level value is kept as a known-but-unused key).
LEGACY_MOVES: Dict[str, Tuple[str, str]] = {
    **{k: ("train_conf", k) for k in ("max_epoch", "accum_grad", "grad_clip", "grad_clip_type",
                                      "keep_nbest_models", "log_interval")},
    "unused_parameters": ("train_conf", "find_unused_parameters"),
    **{k: ("dataset_conf", k) for k in ("dataset_type", "batch_bins", "num_workers", "speech_length_min",
                                        "speech_length_max")},
    "token_list": ("tokenizer_conf", "token_list"), "split_with_space": ("tokenizer_conf", "split_with_space"),
    "seg_dict_file": ("tokenizer_conf", "seg_dict_file"), "cmvn_file": ("frontend_conf", "cmvn_file")}

# Top-level keys real FunASR configs contain that funasr-lite does not use: accepted and kept verbatim.
TOP_LEVEL_UNUSED: Tuple[str, ...] = tuple(LEGACY_MOVES) + (
    # class slots that must be null (checked), or that we ignore
    "normalize", "normalize_conf", "preencoder", "preencoder_conf", "postencoder", "postencoder_conf", "ctc",
    "dataset", "encoder2", "encoder2_conf", "decoder2", "decoder2_conf", "predictor2", "predictor2_conf",
    "stride_conv", "stride_conv_conf", "rnnt_decoder", "rnnt_decoder_conf", "joint_network",
    "joint_network_conf", "joint_net_conf", "asr_encoder", "asr_encoder_conf", "spk_encoder", "spk_encoder_conf",
    # 0.x ESPnet-style argparse dump (funasr/tasks/abs_task.py, tasks/asr.py)
    "config", "print_config", "log_level", "dry_run", "iterator_type", "output_dir", "ngpu", "seed",
    "num_att_plot", "dist_backend", "dist_init_method", "dist_world_size", "dist_rank", "local_rank",
    "dist_master_addr", "dist_master_port", "dist_launcher", "multiprocessing_distributed", "distributed",
    "sharded_ddp", "cudnn_enabled", "cudnn_benchmark", "cudnn_deterministic", "collect_stats",
    "write_collected_feats", "max_update", "patience", "val_scheduler_criterion", "early_stopping_criterion",
    "best_model_criterion", "nbest_averaging_interval", "grad_noise", "no_forward_run", "resume", "train_dtype",
    "use_amp", "use_tensorboard", "use_wandb", "wandb_project", "wandb_id", "wandb_entity", "wandb_name",
    "wandb_model_log_interval", "detect_anomaly", "pretrain_path", "ignore_init_mismatch", "freeze_param",
    "num_iters_per_epoch", "batch_size", "valid_batch_size", "valid_batch_bins", "train_shape_file",
    "valid_shape_file", "batch_type", "valid_batch_type", "fold_length", "sort_in_batch", "sort_batch",
    "multiple_iterator", "chunk_length", "chunk_shift_ratio", "num_cache_chunks", "train_data_file",
    "valid_data_file", "train_data_path_and_name_and_type", "valid_data_path_and_name_and_type",
    "allow_variable_data_keys", "max_cache_size", "max_cache_fd", "valid_max_cache_size", "use_pai",
    "simple_ddp", "num_worker_count", "access_key_id", "access_key_secret", "endpoint", "bucket_name",
    "oss_bucket", "max_spk_num", "init", "use_preprocessor", "token_type", "bpemodel", "non_linguistic_symbols",
    "cleaner", "g2p", "speech_volume_normalize", "rir_scp", "rir_apply_prob", "noise_scp", "noise_apply_prob",
    "noise_db_range", "feature_transform", "required", "version", "data_dir", "train_set", "dev_set",
    "mate_params",
    # 1.x AutoModel / train.py keyword arguments (dumped into a finetuned dir's config.yaml)
    "model_path", "model_revision", "hub", "device", "ncpu", "disable_update", "disable_pbar", "disable_log",
    "batch_size_s", "batch_size_threshold_s", "train_data_set_list", "valid_data_set_list", "is_training",
    "trust_remote_code", "remote_code", "check_latest", "vad_model", "vad_kwargs", "vad_model_revision",
    "punc_model", "punc_kwargs", "punc_model_revision", "spk_model", "spk_kwargs", "spk_mode", "fp16", "bf16",
    "use_fsdp", "use_deepspeed", "deepspeed_config", "backend", "enable_tf32", "lora_only", "lora_bias", "debug",
    "scope_map", "excludes", "jieba_usr_dict", "data_type", "vocab_size", "token_lists", "seg_dicts")



def is_null_name(v) -> bool:
    """True for None and the strings "none" / "null" / "" (0.x configs and flags spell a null class so)."""
    return v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", ""))


def normalize_legacy(d: Mapping) -> YamlDict:
    """Rewrite FunASR 0.x spellings to 1.x, without dropping anything: class names (``sanm`` ->
    ``SANMEncoder``), "none" -> null for optional slots, LEGACY_MOVES, a one-element ``init_param`` list ->
    its string.  Idempotent; a YamlDict keeps its line numbers (moved keys keep their old line)."""
    lines = dict(getattr(d, "lines", {}))
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()}
    for slot in _OPTIONAL_CLASS_KEYS:
        if slot in out and is_null_name(out[slot]):
            out[slot] = None
    for slot, table in LEGACY_CLASS_NAMES.items():
        if isinstance(out.get(slot), str):
            out[slot] = table.get(out[slot], out[slot])
    for slot in ("optim", "scheduler"):
        if isinstance(out.get(slot), str):
            out[slot] = out[slot].lower()
    for old, (section, new) in LEGACY_MOVES.items():
        sec = out.get(section)
        if old in out and (sec is None or isinstance(sec, dict)) and new not in (sec or {}):
            out[section] = dict(sec or {}, **{new: out.pop(old)})
            if (old,) in lines:
                lines[(section, new)] = lines.pop((old,))
    ip = out.get("init_param")
    if isinstance(ip, (list, tuple)) and len(ip) <= 1:
        out["init_param"] = ip[0] if ip else None
    return YamlDict(out, lines, getattr(d, "path", ""))


def _check_class(slot: str, value, where: Where, training: bool = False) -> None:
    supported = SUPPORTED_CLASSES[slot]
    if training and slot == "specaug":
        supported = ("SpecAugLFR", None)
    if value in supported:
        return
    names = [s for s in supported if s is not None]
    shown = "null" if value is None else repr(value)
    legacy = {v: k for k, v in LEGACY_CLASS_NAMES.get(slot, {}).items()}
    hint = f" ({legacy[value]} in FunASR 0.x)" if value in legacy else ""
    ok = " or ".join([repr(s) for s in names] + (["null"] if None in supported else []))
    raise ConfigError(f"{where((slot,))}: {slot} class {shown}{hint} is not supported by funasr-lite"
                      f"{' for training' if training else ''} (supported: {ok})"
                      + (suggest(value, names) if isinstance(value, str) and value not in legacy
                         and value not in FUNASR_CLASSES.get(slot, ()) else ""))


def _check_named(kind: str, value, where: Where, training: bool = False) -> None:
    """Check an optimizer (``kind="optim"``) or scheduler name; None passes."""
    known = FUNASR_OPTIMS if kind == "optim" else FUNASR_SCHEDULERS
    supported = SUPPORTED_OPTIMS if kind == "optim" else SUPPORTED_SCHEDULERS
    if value is None:
        return
    if not isinstance(value, str) or value not in known:
        raise ConfigError(f"{where((kind,))}: unknown {kind} {value!r}" + suggest(value, known)
                          + f" (FunASR's: {', '.join(known)})")
    if training and value not in supported:
        raise ConfigError(f"{where((kind,))}: {kind} {value!r} is not supported by funasr-lite for training "
                          f"(supported: {', '.join(supported)}{', none' if kind == 'scheduler' else ''})")


# ------------------------------------------------------------------------------------ the whole config
@dataclass(frozen=True)
class ModelConfig:
    """A whole config.yaml (FunASR 1.x class names) plus our ``decoding`` section, validated strictly."""

    model: str = "Paraformer"  # model class
    model_conf: ModelConf = field(default_factory=ModelConf)  # Paraformer loss and ids
    encoder: str = "SANMEncoder"  # encoder class (0.x: sanm)
    encoder_conf: EncoderConf = field(default_factory=EncoderConf)  # SANMEncoder kwargs
    decoder: str = "ParaformerSANMDecoder"  # decoder class (0.x: paraformer_decoder_sanm)
    decoder_conf: DecoderConf = field(default_factory=DecoderConf)  # ParaformerSANMDecoder kwargs
    predictor: str = "CifPredictorV2"  # predictor class (0.x: cif_predictor_v2)
    predictor_conf: PredictorConf = field(default_factory=PredictorConf)  # CifPredictorV2 kwargs
    frontend: str = "WavFrontend"  # frontend class (0.x: wav_frontend)
    frontend_conf: FrontendConf = field(default_factory=FrontendConf)  # WavFrontend kwargs
    specaug: Optional[str] = None  # SpecAugLFR (0.x: specaug_lfr) or null; training only
    specaug_conf: SpecAugConf = field(default_factory=SpecAugConf)  # SpecAugLFR kwargs
    tokenizer: Optional[str] = "CharTokenizer"  # tokenizer class (0.x configs have none: char tokens)
    tokenizer_conf: TokenizerConf = field(default_factory=TokenizerConf)  # CharTokenizer kwargs
    ctc_conf: CTCConf = field(default_factory=CTCConf)  # CTC head kwargs
    input_size: Optional[int] = None  # feature dim (FunASR recomputes it from the frontend: n_mels*lfr_m)
    init_param: Optional[Union[str, List[str]]] = None  # checkpoint to initialise from
    optim: Optional[str] = None  # optimizer name (training)
    optim_conf: OptimConf = field(default_factory=OptimConf)  # optimizer kwargs
    scheduler: Optional[str] = None  # lr scheduler name or null (training)
    scheduler_conf: SchedulerConf = field(default_factory=SchedulerConf)  # scheduler kwargs
    dataset_conf: DatasetConf = field(default_factory=DatasetConf)  # data loading and batching
    train_conf: TrainConf = field(default_factory=TrainConf)  # training loop
    decoding: DecodingConf = field(default_factory=DecodingConf)  # decoding (funasr-lite; not in config.yaml)
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)  # known-but-unused top-level keys, verbatim
    provenance: Dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # leaf -> source
    _given: frozenset = field(default=frozenset(), repr=False, compare=False)  # top-level keys the input set

    _REQUIRED: ClassVar[Tuple[str, ...]] = ("model", "encoder", "decoder", "predictor", "frontend")

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "<dict>") -> "ModelConfig":
        """Validate a config.yaml dict (1.x or 0.x) or a MergedConfig strictly and build the typed config.

        Unsupported classes (SeacoParaformer, BiCifParaformer, UniASR, ...) and unknown keys are
        ConfigErrors naming the source; so are missing required keys and inconsistent sizes."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: a config must be a mapping, got {type(d).__name__}")
        n = normalize_legacy(d)
        where = Where(n.path or source, n.lines, getattr(d, "provenance", None))
        validate_layer(n, where)
        for k in cls._REQUIRED:
            if n.get(k) is None:
                raise ConfigError(f"{where()}: missing required key '{k}' (e.g. {k}: {SUPPORTED_CLASSES[k][0]})")
        _check_class("specaug", n.get("specaug"), where)
        _check_class("tokenizer", n.get("tokenizer"), where)
        _check_named("optim", n.get("optim"), where)
        _check_named("scheduler", n.get("scheduler"), where)
        hints, kw = get_type_hints(cls), {}
        for k, v in n.items():
            if k in SECTIONS:
                sec = SECTIONS[k]
                kw[k] = sec.from_dict(v, where, n.get(sec.CLASS_KEY) if sec.CLASS_KEY else None, (k,))
            elif k in TOP_LEVEL_KEYS:
                kw[k] = coerce(v, hints[k], (k,), where)
        if kw.get("tokenizer") is None:
            kw["tokenizer"] = "CharTokenizer"  # funasr-lite always tokenizes characters (0.x: token_type char)
        cfg = cls(extra={k: copy.deepcopy(v) for k, v in n.items() if k in TOP_LEVEL_UNUSED},
                  provenance=dict(where.provenance), _given=frozenset(kw), **kw)
        cfg._check(where)
        return cfg

    def _check(self, where: Where) -> None:
        p = self.predictor_conf
        for k in ("idim", "l_order", "r_order"):
            if getattr(p, k) is None:
                raise ConfigError(f"{where(('predictor_conf',))}: predictor_conf.{k} is required (CifPredictorV2 has no default)")
        if p.idim != self.encoder_conf.output_size:
            raise ConfigError(f"{where(('predictor_conf', 'idim'))}: predictor_conf.idim={p.idim} must equal "
                              f"encoder_conf.output_size={self.encoder_conf.output_size}")
        if self.decoding.ctc_weight > 0 and self.model_conf.ctc_weight <= 0:
            raise ConfigError(f"{where(('decoding', 'ctc_weight'))}: decoding ctc_weight={self.decoding.ctc_weight} "
                              "needs a CTC head, but this model has none (model_conf.ctc_weight is 0)")

    def check_trainable(self) -> None:
        """Raise ConfigError unless funasr-lite can train with this optimizer, scheduler and specaug."""
        where = Where("<config>", provenance=self.provenance)
        if self.optim is None:
            raise ConfigError("no optimizer: set optim (adam, adamw or sgd) and optim_conf.lr")
        _check_named("optim", self.optim, where, training=True)
        _check_named("scheduler", self.scheduler, where, training=True)
        _check_class("specaug", self.specaug, where, training=True)
        if self.optim_conf.lr is None:
            raise ConfigError(f"{where(('optim',))}: optim_conf.lr is not set")
        wrong = [k for k in self.optim_conf.kwargs() if k not in class_args("optim", self.optim)]
        if wrong:
            raise ConfigError(f"{where(('optim_conf', wrong[0]))}: optim_conf.{wrong[0]} is not an argument of {self.optim}")

    def encoder_input_size(self) -> int:
        """Feature dim entering the encoder: frontend n_mels * lfr_m (560 for paraformer-large)."""
        return self.frontend_conf.n_mels * self.frontend_conf.lfr_m

    def cmvn_file(self) -> Optional[str]:
        """The am.mvn path from frontend_conf (0.x top-level cmvn_file is moved there)."""
        return self.frontend_conf.cmvn_file

    def token_list(self) -> Union[str, List[str], None]:
        """tokenizer_conf.token_list: a tokens.json/tokens.txt path or the list (0.x top-level moved there)."""
        return self.tokenizer_conf.token_list

    def to_dict(self, full: bool = False, include_decoding: bool = False) -> Dict[str, Any]:
        """A config.yaml dict FunASR 1.4.16's AutoModel loads: class keys always, each section's set keys
        (every field with ``full``), ``extra`` verbatim.  ``decoding`` only with include_decoding."""
        out: Dict[str, Any] = {}
        always = ("model", "model_conf", "encoder", "encoder_conf", "decoder", "decoder_conf", "predictor",
                  "predictor_conf", "frontend", "frontend_conf", "specaug", "tokenizer", "tokenizer_conf")
        for name in TOP_LEVEL_KEYS:
            value = getattr(self, name)
            if name == "decoding" and not include_decoding:
                continue
            if isinstance(value, Section):
                d = value.to_dict(full)
                if d or name in always or name in self._given:
                    out[name] = d
            elif name in always or name in self._given or value is not None:
                out[name] = plain(value)
        for k, v in self.extra.items():
            out.setdefault(k, plain(v))
        return out

    def model_dict(self) -> Dict[str, Any]:
        """The network/frontend/tokenizer part of ``to_dict()`` (what building the model needs), plus a
        top-level ``token_list`` when tokenizer_conf holds the list itself (0.x configs)."""
        full = self.to_dict()
        out = {k: full[k] for k in MODEL_KEYS if k in full}
        if isinstance(self.tokenizer_conf.token_list, list):
            out["token_list"] = list(self.tokenizer_conf.token_list)
        return out

    def save(self, path: str) -> None:
        """Write ``to_dict()`` as config.yaml, atomically."""
        save_yaml(path, self.to_dict())

    def describe(self) -> str:
        """The final config, one leaf per line, each with the source that set it (or "default")."""
        return format_provenance(self.to_dict(full=True, include_decoding=True), self.provenance)


# The top-level keys ModelConfig types (class names and sections), in config.yaml order.
TOP_LEVEL_KEYS: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ModelConfig)
                                        if f.name not in ("extra", "provenance", "_given"))
# The part of a config that building the model needs (ModelConfig.model_dict).
MODEL_KEYS = ("model", "model_conf", "encoder", "encoder_conf", "decoder", "decoder_conf", "predictor",
              "predictor_conf", "frontend", "frontend_conf", "specaug", "specaug_conf", "ctc_conf", "tokenizer",
              "tokenizer_conf", "input_size")


def validate_layer(layer: Mapping, where: Where) -> None:
    """Check a (normalised) layer: architecture class names, then every key against the schema.

    A ``*_conf`` whose class the layer names is checked against that class (``optim_conf`` against the
    named optimizer's arguments); otherwise against the supported class.  Sections of a class we do not
    use (e.g. ``specaug_conf`` of SpecAug) get the same field check, being FunASR's same keys."""
    for slot in ("model", "encoder", "decoder", "predictor", "frontend", "normalize", "preencoder", "postencoder", "ctc"):
        if slot in layer:
            _check_class(slot, layer[slot], where)
    for k, v in layer.items():
        if k in SECTIONS:
            if v is None:
                continue
            if not isinstance(v, Mapping):
                raise ConfigError(f"{where((k,))}: {k} must be a mapping, got {v!r}")
            sec = SECTIONS[k]
            class_name = layer.get(sec.CLASS_KEY) if sec.CLASS_KEY else None
            if class_name is not None:
                _check_named(sec.CLASS_KEY, class_name, where)
            allowed = sec.known_keys(class_name)
            for sk in v:
                if sk not in allowed:
                    raise unknown_key((k, sk), allowed, where, f" (not an argument of {class_name})" if class_name else "")
        elif k not in TOP_LEVEL_KEYS and k not in TOP_LEVEL_UNUSED:
            raise unknown_key((k,), list(TOP_LEVEL_KEYS) + list(TOP_LEVEL_UNUSED), where)
