"""``train_conf``: how the training loop runs; the one options type of
:class:`funasr_lite.train.trainer.Trainer`."""

from dataclasses import dataclass
from typing import ClassVar, List, Tuple, Union

from funasr_lite.config.fields import Section, option


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
        factory=lambda: [10], help="n of valid.acc.ave_{n}best.pb", flag=True
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
