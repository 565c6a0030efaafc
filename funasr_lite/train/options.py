"""The options of training: :class:`TrainConf` (``train_conf``, the one options type of the training loop)
and :class:`FinetuneOptions` (a finetune run). Imports no torch, so ``finetune.py --help`` stays fast."""

import os
from dataclasses import dataclass
from typing import ClassVar, List, Optional, Tuple, Union

from funasr_lite.config.fields import Section, option
from funasr_lite.errors import ConfigError


@dataclass(frozen=True)
class TrainConf(Section):
    """``train_conf``: the training loop. 0.x top-level trainer keys are moved here."""

    SECTION: ClassVar[str] = "train_conf"
    KNOWN_UNUSED: ClassVar[Tuple[str, ...]] = (
        "avg_nbest_model",
        "avg_keep_nbest_models_type",
        "validate_interval",
        "save_checkpoint_interval",
        "early_stopping_patience",
        "reset_gpu_cache",
        "use_wandb",
        "wandb_token",
        "wandb_project",
        "wandb_team",
        "wandb_exp_name",
        "use_deepspeed",
        "deepspeed_config",
        "use_fsdp",
        "effective_save_name_excludes",
        "excludes",
        "resume",
        "val_scheduler_criterion",
        "best_model_criterion",
        "patience",
        "early_stopping_criterion",
        "max_update",
        "nbest_averaging_interval",
        "train_dtype",
        "use_amp",
        "use_tensorboard",
        "detect_anomaly",
        "grad_noise",
        "no_forward_run",
        "num_iters_per_epoch",
    )
    max_epoch: int = option(40, "epochs (0.x argparse default)", flag=True)
    accum_grad: int = option(1, "gradient accumulation steps", flag=True)
    grad_clip: float = option(5.0, "gradient-norm clip threshold (<= 0: off)")
    grad_clip_type: float = option(2.0, "p of the clipped norm")
    keep_nbest_models: Union[int, List[int]] = option(
        factory=lambda: [10],
        help="n of the averages valid.acc.ave_{n}best.pb and valid.cer.ave_{n}best.pb (one per ranking metric); "
        "the largest n is also how many epoch checkpoints each metric keeps",
        flag=True,
    )
    log_interval: int = option(50, "log every N steps")
    use_fp16: bool = option(False, "AMP with float16 (GPU only)")
    use_bf16: bool = option(False, "AMP with bfloat16 (GPU only)")
    seed: int = option(0, "random seed", flag=True)
    find_unused_parameters: bool = option(False, "DDP find_unused_parameters (0.x: unused_parameters)")
    max_nan_steps: int = option(
        10, "consecutive steps with a NaN/Inf loss or gradient norm (each skipped) before the run stops"
    )

    def nbest_list(self) -> List[int]:
        """keep_nbest_models as a list (FunASR 1.x writes an int, 0.x a list)."""
        return [self.keep_nbest_models] if isinstance(self.keep_nbest_models, int) else list(self.keep_nbest_models)

    def validate(self):
        for k in ("max_epoch", "accum_grad", "log_interval", "max_nan_steps"):
            if getattr(self, k) < 1:
                raise self._fail(k, "must be >= 1")
        self._range(["seed"], 0)
        self._range(["grad_clip_type"], 0.0, lo_open=True)
        if any(n < 1 for n in self.nbest_list()):
            raise self._fail("keep_nbest_models", "every n must be >= 1")
        if self.use_fp16 and self.use_bf16:
            raise self._fail("use_fp16", "use_fp16 and use_bf16 are exclusive")


@dataclass(frozen=True)
class FinetuneOptions:
    """The run-time options of :func:`finetune`; training hyper-parameters live in the merged config."""

    model: str = option(help="init model: a ModelScope hub id or a local model dir (FunASR 1.x or 0.x)", flag=True)
    data_path: str = option(
        help="dir with train/ and dev/ (or validation/), each with wav.scp and text (large: data.list)", flag=True
    )
    output_dir: str = option("./checkpoint", "the finetuned model dir (created; never the init model dir)", flag=True)
    device: str = option("auto", "auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)", flag=True)
    amp: Optional[str] = option(
        None,
        "mixed precision on GPU (default: train_conf.use_bf16/use_fp16)",
        flag=True,
        choices=("none", "bf16", "fp16"),
    )
    max_bad_ratio: float = option(
        0.1,
        "stop before training if more than this fraction of train utterances is unusable, else skip them",
        flag=True,
    )
    final_checkpoint: str = option("valid.acc.ave.pb", "the checkpoint that becomes model.pt at the end", flag=True)
    best_model_criterion: Tuple[str, ...] = option(
        ("acc", "cer"), "dev metrics that rank checkpoints: acc (valid.acc.*), cer (valid.cer.*)"
    )
    progress_bar: bool = option(True, "tqdm progress bar on rank 0")
    verbose: bool = option(False, "log the whole merged config with the source of each value (else only the changes)")

    def __post_init__(self) -> None:
        from funasr_lite.train.checkpoint import RESUME_NAME  # torch: only when a run is configured, not for --help

        for name in ("model", "data_path"):
            if not getattr(self, name):
                raise ConfigError(f"--{name} is required (no recipe default)")
        name = self.final_checkpoint
        if (
            not isinstance(name, str)
            or name != os.path.basename(name)
            or "\\" in name
            or name.startswith(".")
            or not name.endswith((".pb", ".pt", ".pth"))
            or name in ("model.pt", RESUME_NAME)
        ):
            raise ConfigError(
                f"--final_checkpoint {name!r}: not a checkpoint of the output dir; use a plain file name, one of "
                "valid.acc.ave.pb, valid.acc.best.pb, valid.cer.ave.pb, valid.cer.best.pb, "
                "valid.acc.ave_<n>best.pb (n of keep_nbest_models), valid.cer.ave_<n>best.pb or <N>epoch.pb"
            )
        ratio = self.max_bad_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise ConfigError(f"--max_bad_ratio {ratio!r}: must be a number from 0 to 1 (a fraction of utterances)")
        if self.amp not in (None, "none", "bf16", "fp16"):
            raise ConfigError(f"--amp {self.amp!r}: use none, bf16 or fp16")
