"""Finetune a Paraformer model dir on Kaldi-style train/dev data: the library entry point.

The recipe script ``finetune.py`` is a thin CLI over :func:`finetune`::

    from funasr_lite.train.finetune import FinetuneOptions, add_finetune_arguments, finetune, options_from_args
    parser = argparse.ArgumentParser(); add_finetune_arguments(parser, DEFAULTS)
    summary = finetune(options_from_args(parser.parse_args(), DEFAULTS))

Single process: ``python finetune.py ...``; several: ``torchrun --nproc_per_node N finetune.py ...``
(same flags). Re-running the same command after Ctrl-C or kill -9 resumes from
``output_dir/checkpoint.pb`` and ends with the same outputs; it never starts over silently.

``output_dir`` ends as a complete FunASR 1.x model dir: the merged ``config.yaml``, ``tokens.json``,
``am.mvn``, ``seg_dict`` and ``decoding.yaml`` (when the init model has them), ``configuration.json``
and ``model.pt`` (= the chosen checkpoint, ``valid.acc.ave.pb`` by default), plus the checkpoints
described in :mod:`funasr_lite.train.checkpoint`, ``training_curves.png`` and ``tensorboard/``.
"""

import argparse
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import yaml

from . import checkpoint as ckpt
from funasr_lite.config.merge import flags_layer, merge_layers, model_dir_layers, parse_overrides
from funasr_lite.config.schema import ModelConfig
from funasr_lite.config.yaml_io import save_yaml
from funasr_lite.data.dataset import build_dataloader
from funasr_lite.train.distributed import DistInfo, barrier, cleanup_distributed, setup_distributed
from funasr_lite.errors import ConfigError, DataDirError
from funasr_lite.utils.fileio import atomic_copy, atomic_write_json
from funasr_lite.hub.download import resolve_model
from funasr_lite.hub.model_dir import ModelDir, detect_model_dir, load_state_dict, load_weights_strict
from funasr_lite.models.paraformer import Paraformer
from funasr_lite.train.scheduler import build_optimizer, build_scheduler
from funasr_lite.decode.search import SearchOptions
from funasr_lite.data.tokenizer import Tokenizer, load_seg_dict, load_token_list
from funasr_lite.train.trainer import Trainer, TrainerOptions
from funasr_lite.decode.transcribe import search_features

__all__ = ["FinetuneOptions", "finetune", "add_finetune_arguments", "options_from_args", "select_checkpoint",
           "merge_finetune_config", "CONFIG_FLAGS"]

logger = logging.getLogger(__name__)

# flags that map onto config keys (funasr_lite.config.merge.FLAG_PATHS); the rest are runtime options
CONFIG_FLAGS = ("dataset_type", "batch_bins", "max_epoch", "accum_grad", "keep_nbest_models", "optim", "lr",
                "scheduler", "scheduler_conf", "specaug", "specaug_conf", "seed", "num_workers")


@dataclass
class FinetuneOptions:
    """Everything :func:`finetune` needs. ``None`` means "not given": the merged config decides."""

    # init model: a ModelScope hub id or a local model dir (FunASR 1.x or 0.x layout)
    model: str
    # data dir holding train/ and dev/ (or validation/), each with wav.scp and text (large: data.list)
    data_path: str
    # where checkpoints and the finished model dir go (created; must not be the init model dir)
    output_dir: str = "./checkpoint"
    # "small" (in-memory list, length-sorted buckets) or "large" (streamed shards)
    dataset_type: Optional[str] = None
    # batch capacity: small = padded LFR frames (60 ms each), large = padded milliseconds
    batch_bins: Optional[int] = None
    # total epochs (a resumed run continues up to this)
    max_epoch: Optional[int] = None
    # micro-batches per optimizer update
    accum_grad: Optional[int] = None
    # n of each valid.acc.ave_{n}best.pb (an int or a list)
    keep_nbest_models: Optional[Union[int, List[int]]] = None
    # optimizer: adam, adamw or sgd
    optim: Optional[str] = None
    # (peak) learning rate, optim_conf.lr
    lr: Optional[float] = None
    # lr schedule: warmuplr (FunASR's formula) or none
    scheduler: Optional[str] = None
    # scheduler_conf as a dict or YAML/JSON text, e.g. '{"warmup_steps": 300}'
    scheduler_conf: Optional[Union[str, Dict[str, Any]]] = None
    # specaug_lfr (FunASR's SpecAugLFR) or none
    specaug: Optional[str] = None
    # specaug_conf as a dict or YAML/JSON text
    specaug_conf: Optional[Union[str, Dict[str, Any]]] = None
    # auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)
    device: str = "auto"
    # base random seed (train_conf.seed)
    seed: Optional[int] = None
    # DataLoader worker processes (feature extraction runs there)
    num_workers: Optional[int] = None
    # mixed precision on GPU: none, bf16 or fp16 (None: train_conf.use_bf16/use_fp16)
    amp: Optional[str] = None
    # stop before training if more than this fraction of train utterances is unusable, else skip them
    max_bad_ratio: float = 0.1
    # the checkpoint that becomes model.pt (and configuration.json's init_param) at the end
    final_checkpoint: str = "valid.acc.ave.pb"
    # dev metrics that rank checkpoints: acc (FunASR's valid.acc.*) and cer (valid.cer.*)
    best_model_criterion: List[str] = field(default_factory=lambda: ["acc", "cer"])
    # extra config overrides, Hydra style: ["++train_conf.grad_clip=1.0", ...]
    overrides: List[str] = field(default_factory=list)
    # the recipe script's defaults {flag: value} (precedence between finetune.yaml and the flags)
    recipe_defaults: Dict[str, Any] = field(default_factory=dict)
    # tqdm progress bar on rank 0
    progress_bar: bool = True


def finetune(opts: FinetuneOptions) -> Dict[str, Any]:
    """Finetune ``opts.model`` on ``opts.data_path`` into ``opts.output_dir``; returns a summary dict.

    Raises:
        FunasrLiteError subclasses with a clear message: ConfigError, ModelDirError, DataDirError,
        CheckpointError (DiskFullError), TrainingInterrupted (state saved), TrainingDiverged.
    """
    dist = setup_distributed(opts.device)
    lib_logger = logging.getLogger("funasr_lite")
    level = lib_logger.level
    if not dist.is_main:  # one log: other ranks only warn
        lib_logger.setLevel(max(logging.WARNING, level))
    try:
        return _finetune(opts, dist)
    finally:
        lib_logger.setLevel(level)
        cleanup_distributed(dist)


def _finetune(opts: FinetuneOptions, dist: DistInfo) -> Dict[str, Any]:
    out = os.path.abspath(opts.output_dir)
    # 1. the init model dir (a hub id is resolved through the local ModelScope cache first)
    md = detect_model_dir(resolve_model(opts.model))
    if os.path.realpath(md.root) == os.path.realpath(out):
        raise ConfigError(f"--output_dir {out} is the init model dir; choose another dir (the init model is never modified)")
    # 2. the config: built-in defaults < config.yaml < finetune.yaml < recipe defaults < flags
    cfg = merge_finetune_config(md, opts)
    # 3. print and save the merged config; copy the model files the dir needs (rank 0)
    if dist.is_main:
        os.makedirs(out, exist_ok=True)
        logger.info("merged config (value  # where it was set):\n%s", cfg.describe())
    barrier(dist)
    token_list = _token_list(md, cfg)
    if dist.is_main:
        write_model_files(md, cfg, token_list, out)
    # 4. tokenizer, the same one inference uses
    seg_dict = load_seg_dict(md.seg_dict) if md.seg_dict else None
    tokenizer = Tokenizer(token_list, seg_dict)
    # 5. data: pre-flight scan (bad utterances reported, skipped or fatal), then the loaders
    train_dir, dev_dir = find_data_dirs(opts.data_path)
    frontend_conf = cfg.frontend_conf.kwargs()
    run = dict(seed=cfg.train_conf.seed, max_bad_ratio=opts.max_bad_ratio, rank=dist.rank, world_size=dist.world_size)
    train_loader = build_dataloader(train_dir, tokenizer, frontend_conf, cfg.dataset_conf, train=True, **run)
    dev_loader = build_dataloader(dev_dir, tokenizer, frontend_conf, cfg.dataset_conf, train=False, **run)
    # 6. the model, from the init weights (checkpoint.pb, if any, replaces them in step 8)
    model = Paraformer.from_config(cfg.model_dict(), vocab_size=tokenizer.vocab_size)
    load_weights_strict(model, load_state_dict(md.checkpoint), md.checkpoint)
    model.to(dist.device)
    # 7. optimizer and lr schedule
    optimizer = build_optimizer(cfg.optim, model.parameters(), cfg.optim_conf.kwargs())
    scheduler = build_scheduler(cfg.scheduler, optimizer, cfg.scheduler_conf.kwargs() if cfg.scheduler else {})
    # 8. the trainer; resume from output_dir/checkpoint.pb when it exists (logged either way)
    tc = cfg.train_conf
    trainer = Trainer(model, optimizer, scheduler, train_loader, dev_loader, TrainerOptions(
        output_dir=out, max_epoch=tc.max_epoch, accum_grad=tc.accum_grad, grad_clip=tc.grad_clip,
        keep_nbest_models=tc.nbest_list(), best_model_criterion=list(opts.best_model_criterion),
        amp=opts.amp or ("bf16" if tc.use_bf16 else "fp16" if tc.use_fp16 else "none"), log_interval=tc.log_interval,
        max_nonfinite_steps=tc.max_nan_steps, seed=tc.seed, tensorboard=True, plot=True,
        frame_seconds=cfg.frontend_conf.frame_shift * cfg.frontend_conf.lfr_n / 1000.0,
        progress_bar=opts.progress_bar, find_unused_parameters=tc.find_unused_parameters,
        config_digest=_digest(cfg)), dist, decode_fn=greedy_decoder(tokenizer), tokenizer=tokenizer)
    resumed = trainer.resume()
    # 9. the epoch loop, then the n-best averages
    result = trainer.fit()
    # 10. model.pt = the chosen checkpoint; configuration.json points FunASR at it
    final = None
    if dist.is_main:
        final = select_checkpoint(out, _existing_choice(out, opts.final_checkpoint, result.records))
    barrier(dist)
    last = result.records[-1] if result.records else None
    return {"output_dir": out, "resumed": resumed, "epochs": len(result.records), "step": result.step,
            "best_epochs": result.best_epochs, "averaged": sorted(result.averaged), "final_checkpoint": final,
            "last_dev_cer": last.dev_cer if last else None, "last_dev_acc": last.dev_acc if last else None,
            "records": [r.to_dict() for r in result.records]}


# ---------------------------------------------------------------------------------------------- steps
def merge_finetune_config(md: ModelDir, opts: FinetuneOptions) -> ModelConfig:
    """Layers 1-3 of the model dir (finetune.yaml on top), the recipe defaults, the flags, the overrides.

    Raises:
        ConfigError: an unknown key or bad value in any layer (named with its file/flag), or a setup
            funasr-lite cannot train (optimizer, scheduler, specaug).
    """
    layers = model_dir_layers(md, "finetune")
    if opts.recipe_defaults:
        layers.append(("recipe defaults", flags_layer(_config_flags(opts.recipe_defaults))))
    given = _config_flags({f.name: getattr(opts, f.name) for f in fields(opts)})
    if given:
        layers.append(("command line", flags_layer(given)))
    if opts.overrides:
        layers.append(("command line overrides", parse_overrides(opts.overrides)))
    merged = merge_layers(layers)
    for name, section in (("scheduler", "scheduler_conf"), ("specaug", "specaug_conf")):
        if merged.get(name) is None and merged.get(section):
            merged[section] = {}  # --scheduler none / --specaug none: their conf has nothing to configure
    cfg = ModelConfig.from_dict(merged, source="merged finetune config")
    cfg.check_trainable()
    if opts.amp not in (None, "none", "bf16", "fp16"):
        raise ConfigError(f"--amp must be none, bf16 or fp16, got {opts.amp!r}")
    return cfg


def _config_flags(values: Dict[str, Any]) -> Dict[str, Any]:
    out = {k: v for k, v in values.items() if k in CONFIG_FLAGS and v is not None}
    if isinstance(out.get("keep_nbest_models"), int):
        out["keep_nbest_models"] = [out["keep_nbest_models"]]
    return out


def _digest(cfg: ModelConfig) -> str:
    """Hash of the merged config, except max_epoch (raising it to train longer is a normal resume)."""
    conf = cfg.to_dict()
    conf.get("train_conf", {}).pop("max_epoch", None)
    text = yaml.safe_dump(conf, allow_unicode=True, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _token_list(md: ModelDir, cfg: ModelConfig) -> List[str]:
    if md.tokens:
        return load_token_list(md.tokens)
    listed = cfg.tokenizer_conf.token_list
    if isinstance(listed, list) and listed:
        return list(listed)
    if isinstance(listed, str) and os.path.isfile(listed):
        return load_token_list(listed)
    raise ConfigError(f"{md.root}: no tokens.json/tokens.txt and no token_list in {md.config}")


def find_data_dirs(data_path: str):
    """``(train_dir, dev_dir)`` under ``data_path``: ``train/`` and ``dev/`` (or ``validation/``).

    Raises:
        DataDirError: naming what is missing and what the dir holds.
    """
    if not os.path.isdir(data_path):
        raise DataDirError(f"--data_path {data_path} is not a directory")
    train = os.path.join(data_path, "train")
    dev = next((os.path.join(data_path, d) for d in ("dev", "validation") if os.path.isdir(os.path.join(data_path, d))),
               None)
    if not os.path.isdir(train) or dev is None:
        missing = [n for n, ok in (("train/", os.path.isdir(train)), ("dev/ (or validation/)", dev is not None)) if not ok]
        raise DataDirError(f"--data_path {data_path}: missing {' and '.join(missing)}; it holds: "
                           f"{', '.join(sorted(os.listdir(data_path))) or 'nothing'}")
    return train, dev


def greedy_decoder(tokenizer: Tokenizer):
    """A ``decode_fn`` for dev CER: FunASR's default greedy Paraformer decoding of a feature batch."""
    search = SearchOptions(blank_id=tokenizer.blank_id, sos_id=tokenizer.sos_id, eos_id=tokenizer.eos_id)

    def decode(model: Paraformer, feats: torch.Tensor, feat_lens: torch.Tensor) -> List[List[int]]:
        hyps, _, _, _ = search_features(model, feats, feat_lens, search)
        return [list(h[0].token_ids) if h else [] for h in hyps]

    return decode


def write_model_files(md: ModelDir, cfg: ModelConfig, token_list: Sequence[str], out: str) -> None:
    """config.yaml (merged; file paths by name), tokens.json, am.mvn, seg_dict, decoding.yaml (all atomic)."""
    conf = cfg.to_dict()
    conf.pop("init_param", None)
    conf.setdefault("frontend_conf", {})["cmvn_file"] = "am.mvn"
    tok = conf.setdefault("tokenizer_conf", {})
    tok["token_list"] = "tokens.json"
    for key in ("seg_dict", "seg_dict_file"):
        tok.pop(key, None)
    if md.seg_dict:
        tok["seg_dict_file"] = "seg_dict"
    save_yaml(os.path.join(out, "config.yaml"), conf)
    atomic_write_json(os.path.join(out, "tokens.json"), list(token_list), indent=0)
    if md.cmvn:
        atomic_copy(md.cmvn, os.path.join(out, "am.mvn"))
    if md.seg_dict:
        atomic_copy(md.seg_dict, os.path.join(out, "seg_dict"))
    if md.decoding_yaml:
        atomic_copy(md.decoding_yaml, os.path.join(out, "decoding.yaml"))
    _write_configuration(out, md, chosen=None)


def _write_configuration(out: str, md: Optional[ModelDir], chosen: Optional[str]) -> None:
    path = os.path.join(out, "configuration.json")
    if md is not None:
        conf = dict(md.configuration or {})
        init = conf.get("model_name_in_hub") or md.root
    else:
        with open(path, encoding="utf-8") as f:
            conf = json.load(f)
        init = conf.get("funasr_lite", {}).get("init_model")
    metas = {"init_param": "model.pt", "config": "config.yaml",
             "tokenizer_conf": {"token_list": "tokens.json"}, "frontend_conf": {"cmvn_file": "am.mvn"}}
    if os.path.isfile(os.path.join(out, "seg_dict")):
        metas["tokenizer_conf"]["seg_dict_file"] = "seg_dict"
    model = conf.get("model") if isinstance(conf.get("model"), dict) and "am_model_name" not in conf["model"] else {}
    conf.update({"framework": conf.get("framework", "pytorch"), "task": conf.get("task", "auto-speech-recognition"),
                 "model": dict(model, type="funasr"), "pipeline": {"type": "funasr-pipeline"},
                 "file_path_metas": metas})
    lite = dict(conf.get("funasr_lite") or {}, init_model=init)
    if chosen:
        lite["model.pt"] = chosen
    conf["funasr_lite"] = lite
    atomic_write_json(path, conf)


def _existing_choice(out: str, wanted: str, records: Sequence[ckpt.EpochRecord]) -> str:
    """``wanted`` if it exists, else valid.acc.best.pb, else the latest epoch file (with a warning)."""
    candidates = [wanted, "valid.acc.best.pb", "valid.cer.best.pb"]
    candidates += [ckpt.epoch_ckpt_name(r.epoch) for r in sorted(records, key=lambda r: -r.epoch)]
    for name in candidates:
        if os.path.isfile(os.path.join(out, name)):
            if name != wanted:
                logger.warning("%s was not written (no dev metric?); model.pt = %s instead", wanted, name)
            return name
    return wanted


def select_checkpoint(output_dir: str, name: str) -> str:
    """Make ``output_dir/model.pt`` the weights of ``name`` (a hard link or copy, atomic) and record it in
    configuration.json, so FunASR's AutoModel and funasr-lite load that checkpoint. Returns model.pt's path.

    Raises:
        CheckpointError: ``name`` does not exist; the message lists the checkpoints that do.
    """
    src = os.path.join(output_dir, name)
    if not os.path.isfile(src):
        available = sorted(f for f in os.listdir(output_dir) if f.endswith((".pb", ".pt")) and f != ckpt.RESUME_NAME)
        raise ckpt.CheckpointError(f"{src} does not exist; available checkpoints: {', '.join(available) or 'none'}")
    dst = os.path.join(output_dir, "model.pt")
    ckpt.link_or_copy(src, dst)
    _write_configuration(output_dir, None, chosen=name)
    logger.info("model.pt = %s (configuration.json updated)", name)
    return dst


# ------------------------------------------------------------------------------------ CLI helpers
def add_finetune_arguments(parser: argparse.ArgumentParser, defaults: Dict[str, Any]) -> argparse.ArgumentParser:
    """Add the recipe flags (issue #4 names). Flags default to None ("not given"); ``defaults`` are shown in
    the help and applied as the recipe-defaults layer by :func:`options_from_args`."""
    def d(name: str) -> str:
        return f" (recipe default: {defaults[name]})" if name in defaults else ""

    parser.add_argument("--model", default=None, help="init model: hub id or local model dir" + d("model"))
    parser.add_argument("--data_path", default=None, help="dir with train/ and dev/ (or validation/)" + d("data_path"))
    parser.add_argument("--output_dir", default=None, help="output model dir" + d("output_dir"))
    parser.add_argument("--dataset_type", choices=["small", "large"], default=None, help="small or large" + d("dataset_type"))
    parser.add_argument("--batch_bins", type=int, default=None,
                        help="small: padded LFR frames (60 ms) per batch; large: milliseconds" + d("batch_bins"))
    parser.add_argument("--max_epoch", type=int, default=None, help="epochs" + d("max_epoch"))
    parser.add_argument("--accum_grad", type=int, default=None, help="batches per update" + d("accum_grad"))
    parser.add_argument("--keep_nbest_models", type=int, nargs="+", default=None,
                        help="n of valid.acc.ave_{n}best.pb" + d("keep_nbest_models"))
    parser.add_argument("--optim", choices=["adam", "adamw", "sgd"], default=None, help="optimizer" + d("optim"))
    parser.add_argument("--lr", type=float, default=None, help="(peak) learning rate" + d("lr"))
    parser.add_argument("--scheduler", choices=["warmuplr", "none"], default=None, help="lr schedule" + d("scheduler"))
    parser.add_argument("--scheduler_conf", default=None, help="YAML/JSON, e.g. '{warmup_steps: 300}'" + d("scheduler_conf"))
    parser.add_argument("--specaug", choices=["specaug_lfr", "none"], default=None, help="SpecAugLFR or none" + d("specaug"))
    parser.add_argument("--specaug_conf", default=None, help="YAML/JSON specaug_conf" + d("specaug_conf"))
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N" + d("device"))
    parser.add_argument("--seed", type=int, default=None, help="random seed" + d("seed"))
    parser.add_argument("--num_workers", type=int, default=None, help="DataLoader workers" + d("num_workers"))
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None, help="mixed precision on GPU")
    parser.add_argument("--max_bad_ratio", type=float, default=None,
                        help="stop if more than this fraction of train utterances is unusable, else skip them")
    parser.add_argument("--final_checkpoint", default=None, help="checkpoint that becomes model.pt at the end")
    parser.add_argument("--no_progress_bar", action="store_true", help="no tqdm bar")
    parser.add_argument("--override", dest="overrides", action="append", default=None, metavar="++SECTION.KEY=VALUE",
                        help="config override, repeatable, e.g. --override ++train_conf.grad_clip=1.0")
    return parser


def options_from_args(args: argparse.Namespace, defaults: Dict[str, Any]) -> FinetuneOptions:
    """FinetuneOptions from parsed flags: runtime options take flag > recipe default > dataclass default;
    config flags go in as given (None = not given) with ``defaults`` as the recipe-defaults layer."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    runtime = {"model", "data_path", "output_dir", "device", "amp", "max_bad_ratio", "final_checkpoint"}
    kw: Dict[str, Any] = {k: given.get(k, defaults.get(k)) for k in runtime if k in given or k in defaults}
    for name in ("model", "data_path"):
        if kw.get(name) is None:
            raise ConfigError(f"--{name} is required (no recipe default)")
    kw.update({k: given[k] for k in CONFIG_FLAGS if k in given})
    return FinetuneOptions(**kw, overrides=list(given.get("overrides") or []), progress_bar=not args.no_progress_bar,
                           recipe_defaults={k: v for k, v in defaults.items() if k in CONFIG_FLAGS})
