"""Finetune a Paraformer model dir on Kaldi-style train/dev data: the library entry point.

The recipe script ``finetune.py`` is a thin CLI over :func:`finetune`
(:func:`funasr_lite.cli.recipes.finetune_cli`: flags to :class:`FinetuneOptions` and config layers).

Single process: ``python finetune.py ...``; several: ``torchrun --nproc_per_node N finetune.py ...``
(same flags). Re-running the same command after Ctrl-C or kill -9 resumes from
``output_dir/checkpoint.pb`` and ends with the same outputs; it never starts over silently. A resume that
changes settings the restored state would override (lr, scheduler, model, data) is refused, naming the keys
(:mod:`funasr_lite.train.rundir`). One run per output dir: a second one is refused while the first holds it,
and nothing is written there before the config, the data and the resume state are checked.

``output_dir`` ends as a complete FunASR 1.x model dir: the merged ``config.yaml``, ``tokens.json``,
``am.mvn``, ``seg_dict`` and ``decoding.yaml`` (when the init model has them), ``configuration.json``
and ``model.pt`` (= the chosen checkpoint, ``valid.acc.ave.pb`` by default), plus the checkpoints
described in :mod:`funasr_lite.train.checkpoint`, ``training_curves.png``, ``tensorboard/``, ``train.log`` (the log,
appended across resumes) and ``config.provenance.txt`` (the merged config with the source of each value), see
:mod:`funasr_lite.train.runlog`.
"""

import json
import logging
import os
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from funasr_lite.config.merge import merge_layers, model_dir_layers
from funasr_lite.config.schema import ModelConfig
from funasr_lite.config.yaml_io import save_yaml
from funasr_lite.data.dataset import build_dataloader
from funasr_lite.data.tokenizer import Tokenizer, load_seg_dict, load_token_list
from funasr_lite.decode.options import DecodingOptions
from funasr_lite.decode.transcribe import search_features
from funasr_lite.errors import ConfigError, DataDirError
from funasr_lite.hub.download import resolve_model
from funasr_lite.hub.model_dir import ModelDir, detect_model_dir, load_state_dict, load_weights_strict
from funasr_lite.models.paraformer import Paraformer
from funasr_lite.models.registry import build_model
from funasr_lite.train import checkpoint as ckpt
from funasr_lite.train.distributed import DistInfo, barrier, cleanup_distributed, setup_distributed
from funasr_lite.train.faults import run_on_rank0
from funasr_lite.train.options import FinetuneOptions, TrainConf
from funasr_lite.train.rundir import locked_output_dir, training_config
from funasr_lite.train.runlog import RunLog, config_summary, write_provenance
from funasr_lite.train.scheduler import build_optimizer, build_scheduler
from funasr_lite.train.trainer import Trainer
from funasr_lite.utils.fileio import atomic_copy, atomic_write_json

__all__ = ["FinetuneOptions", "finetune", "select_checkpoint", "merge_finetune_config"]

logger = logging.getLogger(__name__)


def finetune(opts: FinetuneOptions, layers: Sequence[Tuple[str, Mapping[str, Any]]] = ()) -> Dict[str, Any]:
    """Finetune ``opts.model`` on ``opts.data_path`` into ``opts.output_dir``; returns a summary dict.

    ``layers``: config layers above the model dir's config.yaml and finetune.yaml, lowest first, each a
    ``(source, dict)`` in config.yaml shape, e.g. ``[("my run", {"train_conf": {"max_epoch": 3}})]``.

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
        return _finetune(opts, layers, dist)
    finally:
        lib_logger.setLevel(level)
        cleanup_distributed(dist)


def _finetune(opts: FinetuneOptions, layers: Sequence[Tuple[str, Mapping[str, Any]]], dist: DistInfo) -> Dict[str, Any]:
    out = os.path.abspath(opts.output_dir)
    # 1. the init model dir (a hub id is resolved through the local ModelScope cache first)
    md = detect_model_dir(resolve_model(opts.model))
    if os.path.realpath(md.root) == os.path.realpath(out):
        raise ConfigError(
            f"--output_dir {out} is the init model dir; choose another dir (the init model is never modified)"
        )
    # 2. one run per output dir (rank 0 holds the lock to the end); nothing is written there until the
    # config, data and resume state are checked (steps 3-9)
    with locked_output_dir(out, dist), RunLog(out, dist.is_main) as run_log:
        trainer, resumed = _prepare(opts, layers, dist, md, out)
        run_log.open()  # train.log: the lines so far, then every later one (rank 0)
        # 10. the epoch loop, then the n-best averages
        result = trainer.fit()
        # 11. model.pt = the chosen checkpoint; configuration.json points FunASR at it
        final = None
        if dist.is_main:
            final = select_checkpoint(out, _existing_choice(out, opts.final_checkpoint, result.records))
        barrier(dist)
    last = result.records[-1] if result.records else None
    return {
        "output_dir": out,
        "resumed": resumed,
        "epochs": len(result.records),
        "step": result.step,
        "best_epochs": result.best_epochs,
        "averaged": sorted(result.averaged),
        "final_checkpoint": final,
        "last_dev_cer": last.dev_cer if last else None,
        "last_dev_acc": last.dev_acc if last else None,
        "records": [r.to_dict() for r in result.records],
    }


def _prepare(
    opts: FinetuneOptions, layers: Sequence[Tuple[str, Mapping[str, Any]]], dist: DistInfo, md: ModelDir, out: str
) -> Tuple[Trainer, bool]:
    """Steps 3-9: everything that can refuse the job, then (rank 0) the model files; returns the trainer."""
    # 3. the config: built-in defaults < config.yaml < finetune.yaml < recipe defaults < flags
    cfg = merge_finetune_config(md, layers)
    if dist.is_main:  # the changes from the init model's config; all of it in config.provenance.txt (step 9)
        logger.info("%s", config_summary(cfg, md.root, md.finetune_yaml))
        if opts.verbose:
            logger.info("merged config (value  # where it was set):\n%s", cfg.describe())
    token_list = _token_list(md, cfg)
    # 4. tokenizer, the same one inference uses
    seg_dict = load_seg_dict(md.seg_dict) if md.seg_dict else None
    tokenizer = Tokenizer(token_list, seg_dict)
    # 5. data: pre-flight scan (bad utterances reported, skipped or fatal), then the loaders
    train_dir, dev_dir = find_data_dirs(opts.data_path)
    run = dict(seed=cfg.train_conf.seed, max_bad_ratio=opts.max_bad_ratio, rank=dist.rank, world_size=dist.world_size)
    train_loader = build_dataloader(train_dir, tokenizer, cfg.frontend_conf, cfg.dataset_conf, train=True, **run)
    dev_loader = build_dataloader(dev_dir, tokenizer, cfg.frontend_conf, cfg.dataset_conf, train=False, **run)
    # 6. the model, from the init weights (checkpoint.pb, if any, replaces them in step 8)
    model = build_model(cfg, vocab_size=tokenizer.vocab_size)
    load_weights_strict(model, load_state_dict(md.checkpoint), md.checkpoint)
    model.to(dist.device)
    # 7. optimizer and lr schedule
    optimizer = build_optimizer(cfg.optim, model.parameters(), cfg.optim_conf.kwargs())
    scheduler = build_scheduler(cfg.scheduler, optimizer, cfg.scheduler_conf.kwargs() if cfg.scheduler else {})
    # 8. the trainer; resume from output_dir/checkpoint.pb when it exists (logged either way), refused when the
    # config changed in a way the restored state would not follow
    trainer = Trainer(
        model,
        optimizer,
        scheduler,
        train_loader,
        dev_loader,
        trainer_conf(cfg, opts),
        dist,
        output_dir=out,
        best_model_criterion=opts.best_model_criterion,
        frame_seconds=cfg.frontend_conf.frame_ms / 1000.0,
        decode_fn=greedy_decoder(tokenizer),
        tokenizer=tokenizer,
        progress_bar=opts.progress_bar,
        config=training_config(cfg),
    )
    resumed = trainer.resume()
    # 9. save the merged config (what really trains; with the source of each value in config.provenance.txt)
    # and copy the model files the dir needs (rank 0)
    run_on_rank0(
        dist,
        "writing the model files",
        lambda: (write_model_files(md, cfg, token_list, out), write_provenance(cfg, out)),
        out,
        trainer._last_good(),
    )
    return trainer, resumed


# ---------------------------------------------------------------------------------------------- steps
def merge_finetune_config(md: ModelDir, layers: Sequence[Tuple[str, Mapping[str, Any]]] = ()) -> ModelConfig:
    """Layers 1-3 of the model dir (finetune.yaml on top), then ``layers`` (recipe defaults, flags, overrides).

    Raises:
        ConfigError: an unknown key or bad value in any layer (named with its file/flag), or a setup
            funasr-lite cannot train (optimizer, scheduler, specaug).
    """
    merged = merge_layers(model_dir_layers(md, "finetune") + list(layers))
    for name, section in (("scheduler", "scheduler_conf"), ("specaug", "specaug_conf")):
        if merged.get(name) is None and merged.get(section):
            merged[section] = {}  # --scheduler none / --specaug none: their conf has nothing to configure
    cfg = ModelConfig.from_dict(merged, source="merged finetune config")
    cfg.check_trainable()
    cfg.log_ignored_keys(logger)
    return cfg


def trainer_conf(cfg: ModelConfig, opts: FinetuneOptions) -> TrainConf:
    """The merged ``train_conf``, with ``--amp`` (when given) as its use_bf16/use_fp16. The flag is a run-time
    choice: it does not go into the saved config.yaml nor into the config digest."""
    if opts.amp is None:
        return cfg.train_conf
    return replace(cfg.train_conf, use_bf16=opts.amp == "bf16", use_fp16=opts.amp == "fp16")


def _token_list(md: ModelDir, cfg: ModelConfig) -> List[str]:
    if md.tokens:
        return load_token_list(md.tokens)
    listed = cfg.tokenizer_conf.token_list
    if isinstance(listed, list) and listed:
        return list(listed)
    if isinstance(listed, str) and os.path.isfile(listed):
        return load_token_list(listed)
    raise ConfigError(md.no_tokens_message())


def find_data_dirs(data_path: str):
    """``(train_dir, dev_dir)`` under ``data_path``: ``train/`` and ``dev/`` (or ``validation/``).

    Raises:
        DataDirError: naming what is missing and what the dir holds.
    """
    if not os.path.isdir(data_path):
        raise DataDirError(f"--data_path {data_path} is not a directory")
    train = os.path.join(data_path, "train")
    devs = [os.path.join(data_path, d) for d in ("dev", "validation") if os.path.isdir(os.path.join(data_path, d))]
    missing = [n for n, ok in (("train/", os.path.isdir(train)), ("dev/ (or validation/)", devs)) if not ok]
    if missing:
        raise DataDirError(
            f"--data_path {data_path}: missing {' and '.join(missing)}; it holds: "
            f"{', '.join(sorted(os.listdir(data_path))) or 'nothing'}"
        )
    return train, devs[0]


def greedy_decoder(tokenizer: Tokenizer):
    """A ``decode_fn`` for dev CER: FunASR's default greedy Paraformer decoding of a feature batch."""
    greedy = DecodingOptions()

    def decode(model: Paraformer, feats: torch.Tensor, feat_lens: torch.Tensor) -> List[List[int]]:
        hyps, _, _, _ = search_features(model, feats, feat_lens, greedy, tokenizer)
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
    metas = {
        "init_param": "model.pt",
        "config": "config.yaml",
        "tokenizer_conf": {"token_list": "tokens.json"},
        "frontend_conf": {"cmvn_file": "am.mvn"},
    }
    if os.path.isfile(os.path.join(out, "seg_dict")):
        metas["tokenizer_conf"]["seg_dict_file"] = "seg_dict"
    model = conf.get("model") if isinstance(conf.get("model"), dict) and "am_model_name" not in conf["model"] else {}
    conf.update(
        {
            "framework": conf.get("framework", "pytorch"),
            "task": conf.get("task", "auto-speech-recognition"),
            "model": dict(model, type="funasr"),
            "pipeline": {"type": "funasr-pipeline"},
            "file_path_metas": metas,
        }
    )
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
