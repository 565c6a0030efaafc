"""What a finetune run says about itself: ``output_dir/train.log``, the short config summary, the full config file.

* :class:`RunLog`: rank 0's ``train.log``, the INFO-and-above lines of the ``funasr_lite`` loggers (the lines the
  console shows at INFO), appended across resumes. Lines logged before the run holds the output dir and has
  passed its checks are kept in memory and written when :meth:`RunLog.open` creates the file, so a start that
  fails (a wrong ``--data_path``, a locked dir) writes nothing.
* :func:`config_summary`: a few lines for the console: the keys whose value does not come from the init model
  dir (its config.yaml, configuration.json, files; or a built-in default), each with its source.
* :data:`PROVENANCE_NAME`: the whole merged config, one leaf per line with its source
  (:meth:`~funasr_lite.config.schema.ModelConfig.describe`); ``finetune.py --verbose`` also logs it.
"""

import logging
import os
from typing import Any, Dict, List, Optional

from funasr_lite.config.schema import ModelConfig
from funasr_lite.config.yaml_io import format_provenance
from funasr_lite.utils.fileio import atomic_open

__all__ = ["RunLog", "config_summary", "write_provenance", "LOG_NAME", "PROVENANCE_NAME"]

LOG_NAME = "train.log"
PROVENANCE_NAME = "config.provenance.txt"
FORMAT = "%(asctime)s %(levelname)s %(message)s"


class RunLog(logging.Handler):
    """``with RunLog(output_dir, is_main) as log: ...; log.open()``: see the module docstring."""

    def __init__(self, output_dir: str, is_main: bool, logger_name: str = "funasr_lite") -> None:
        super().__init__(logging.INFO)
        self.path = os.path.join(output_dir, LOG_NAME)
        self.is_main, self.logger = is_main, logging.getLogger(logger_name)
        self._pending: List[logging.LogRecord] = []
        self._file: Optional[logging.FileHandler] = None
        self.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))

    def __enter__(self) -> "RunLog":
        if self.is_main:
            self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.logger.removeHandler(self)
        self._pending = []
        if self._file is not None:
            self._file.close()
            self._file = None

    def open(self) -> None:
        """Create (or append to) train.log and write the lines kept so far; call once the run holds the dir."""
        if not self.is_main or self._file is not None:
            return
        self._file = logging.FileHandler(self.path, mode="a", encoding="utf-8")
        self._file.setFormatter(self.formatter)
        pending, self._pending = self._pending, []
        for record in pending:
            self._file.handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        if self._file is not None:
            self._file.handle(record)
        else:
            self._pending.append(record)


def _from_model_dir(source: str, model_root: str, finetune_yaml: Optional[str]) -> bool:
    if source in ("built-in defaults", "default"):
        return True
    if finetune_yaml and source.startswith(finetune_yaml):
        return False  # the model dir's finetune settings: a change from its config.yaml
    return source.startswith(os.path.join(model_root, ""))


def config_summary(cfg: ModelConfig, model_root: str, finetune_yaml: Optional[str] = None) -> str:
    """The keys whose value does not come from the init model dir (``key: value  # source``), or a line saying
    there are none."""
    changed: Dict[str, Any] = {}
    full = cfg.to_dict(full=True, include_decoding=True)
    for key, source in cfg.provenance.items():
        if _from_model_dir(source, model_root, finetune_yaml):
            continue
        node, dst, parts = full, changed, key.split(".")
        for p in parts[:-1]:
            node = node.get(p) if isinstance(node, dict) else None
            dst = dst.setdefault(p, {})
        if isinstance(node, dict) and parts[-1] in node:
            dst[parts[-1]] = node[parts[-1]]
    if not changed:
        return f"config: the one of {model_root} (no key changed)"
    body = format_provenance(changed, cfg.provenance)
    return f"config: the one of {model_root} with these changes (value  # where it was set):\n{body}"


def write_provenance(cfg: ModelConfig, output_dir: str) -> str:
    """Write ``output_dir/config.provenance.txt`` (atomic); returns its path."""
    path = os.path.join(output_dir, PROVENANCE_NAME)
    with atomic_open(path, "w") as f:
        f.write("# the merged finetune config: value  # where it was set (default: a built-in default)\n")
        f.write(cfg.describe() + "\n")
    return path
