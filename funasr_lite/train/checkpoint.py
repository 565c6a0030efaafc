"""Finetuning outputs: epoch checkpoints with sidecars, best/averaged models, pruning, resume state.

Files written into ``output_dir`` (every write is atomic: temp file + fsync + rename;
no symlinks, so FunASR's loader and copies of the dir always see real files):

* ``{N}epoch.pb``: the model's plain ``state_dict`` after epoch N (FunASR loads it as ``model.pt``).
* ``{N}epoch.yaml``: its sidecar (:class:`EpochRecord`: epoch, step, lr, train/dev loss and acc,
  dev CER, times). Sidecars are never pruned, so the training curves stay complete.
* ``valid.{m}.best.pb`` (+ ``.yaml``): the best epoch by criterion ``m`` (``acc`` max, ``cer`` min).
* ``valid.{m}.ave_{n}best.pb`` (+ ``.yaml``): element-wise mean of the n best epochs by ``m``, for
  each n of ``keep_nbest_models``. With fewer than n ranked epochs all of them are averaged, and
  the log and the sidecar (``n_used`` < ``n_requested``, ``note``) say so.
* ``valid.{m}.ave.pb`` (+ ``.yaml``): the same weights as the largest n.
* ``checkpoint.pb``: the full resume state (see :func:`save_resume_state`).

Best and ``ave`` files are hard links to the file they equal where the filesystem allows
(a real file either way, loadable on its own); otherwise they are copies.

Integer buffers when averaging: FunASR 1.4.16 (``average_nbest_models.py``) and ESPnet *sum*
integer tensors over the n checkpoints; for a counter such as BatchNorm's
``num_batches_tracked`` that gives n times the count, and for an index/position buffer it is
simply wrong. Here integer and bool tensors are taken unchanged from the best-ranked checkpoint
(a warning is logged if the checkpoints disagree); floating tensors are averaged in float64 and
cast back to their dtype.

Pruning: after each epoch, ``{N}epoch.pb`` files outside the union over criteria of the top
``max(keep_nbest_models)`` epochs are deleted. The ranking is a total order (metric, then the
later epoch wins ties), so an epoch that falls out of the top K can never come back, and every
average (``n <= K``) is drawn from the same kept list: averaging never needs a deleted file.
"""

import contextlib
import logging
import math
import os
import random
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

import numpy as np
import torch
import yaml

from funasr_lite.errors import CheckpointError
from funasr_lite.utils.fileio import atomic_copy, atomic_torch_save, atomic_write_text

__all__ = [
    "EpochRecord",
    "CRITERIA",
    "RESUME_NAME",
    "epoch_ckpt_name",
    "write_epoch_checkpoint",
    "read_sidecars",
    "rank_records",
    "kept_epochs",
    "prune_epoch_files",
    "update_best",
    "write_averages",
    "average_checkpoint_files",
    "average_nbest",
    "capture_rng_state",
    "restore_rng_state",
    "save_resume_state",
    "load_resume_state",
    "link_or_copy",
    "remove_stale_temp_files",
]

logger = logging.getLogger(__name__)

# criterion name -> "max" (higher is better) or "min"
CRITERIA = {"acc": "max", "cer": "min", "loss": "min"}
RESUME_NAME = "checkpoint.pb"
RESUME_FORMAT = "funasr_lite.resume/1"


@dataclass
class EpochRecord:
    """What one epoch produced; stored as the sidecar ``{N}epoch.yaml``."""

    # 1-based epoch number
    epoch: int
    # optimizer updates done since the start of training, at the end of this epoch
    step: int
    # learning rate of the last update of this epoch
    lr: float
    # mean training loss / accuracy over the epoch's batches (None if no batch was finite)
    train_loss: Optional[float] = None
    train_acc: Optional[float] = None
    # dev loss / token accuracy (teacher-forced, as FunASR's "valid acc")
    dev_loss: Optional[float] = None
    dev_acc: Optional[float] = None
    # dev CER in percent from greedy decoding (None when no decoder was given)
    dev_cer: Optional[float] = None
    # seconds spent on this epoch (training + validation)
    epoch_time: float = 0.0
    # seconds of training since the run started, summed over resumed runs
    wall_time: float = 0.0
    # audio seconds trained per wall second in this epoch
    throughput: Optional[float] = None
    # training steps skipped because of a NaN/Inf loss or gradient
    skipped_steps: int = 0
    # the epoch checkpoint file this record describes
    checkpoint: str = ""

    def metric(self, name: str) -> Optional[float]:
        """``dev_<name>`` as a finite float, else None (``name`` in :data:`CRITERIA`)."""
        value = getattr(self, f"dev_{name}")
        return float(value) if value is not None and math.isfinite(float(value)) else None

    def to_dict(self) -> Dict[str, Any]:
        """Plain types only (safe for YAML and for ``torch.load(weights_only=True)``)."""
        return {k: (float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = "<dict>") -> "EpochRecord":
        """Build from :meth:`to_dict` output; unknown keys are ignored, missing required ones raise."""
        try:
            return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        except TypeError as e:
            raise CheckpointError(f"{source}: not an epoch record: {e}") from e


def epoch_ckpt_name(epoch: int) -> str:
    return f"{epoch}epoch.pb"


def _epoch_path(output_dir: str, epoch: int) -> str:
    return os.path.join(output_dir, epoch_ckpt_name(epoch))


def _sidecar(path: str) -> str:
    return os.path.splitext(path)[0] + ".yaml"


def _write_yaml(path: str, obj: Dict[str, Any]) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, allow_unicode=True, sort_keys=False))


def _state_dict_cpu(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state_dict.items()}


def write_epoch_checkpoint(output_dir: str, record: EpochRecord, state_dict: Dict[str, torch.Tensor]) -> str:
    """Write ``{N}epoch.pb`` (plain state_dict), then its sidecar ``{N}epoch.yaml``; returns the .pb path."""
    path = _epoch_path(output_dir, record.epoch)
    record.checkpoint = os.path.basename(path)
    atomic_torch_save(_state_dict_cpu(state_dict), path)
    _write_yaml(_sidecar(path), record.to_dict())
    return path


def read_sidecars(output_dir: str) -> List[EpochRecord]:
    """All ``{N}epoch.yaml`` sidecars in ``output_dir``, sorted by epoch (whether or not the .pb still exists).
    Raises CheckpointError naming an unreadable sidecar."""
    records = []
    for name in os.listdir(output_dir):
        if not (name.endswith("epoch.yaml") and name[: -len("epoch.yaml")].isdigit()):
            continue
        path = os.path.join(output_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                obj = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise CheckpointError(f"{path}: cannot read sidecar: {e}") from e
        if not isinstance(obj, dict):
            raise CheckpointError(f"{path}: sidecar is not a YAML mapping")
        records.append(EpochRecord.from_dict(obj, source=path))
    return sorted(records, key=lambda r: r.epoch)


def rank_records(records: Iterable[EpochRecord], metric: str) -> List[EpochRecord]:
    """Records with a finite ``dev_<metric>``, best first; ties go to the later epoch.

    Raises:
        ValueError: unknown metric (not in :data:`CRITERIA`).
    """
    if metric not in CRITERIA:
        raise ValueError(f"unknown ranking metric {metric!r}; choose one of {', '.join(CRITERIA)}")
    sign = -1.0 if CRITERIA[metric] == "max" else 1.0
    ranked = [r for r in records if r.metric(metric) is not None]
    return sorted(ranked, key=lambda r: (sign * r.metric(metric), -r.epoch))


def kept_epochs(records: Sequence[EpochRecord], criteria: Sequence[str], keep: int) -> Set[int]:
    """Epochs whose files must stay: the union over ``criteria`` of the top ``keep`` by each.

    Epochs without any finite ranked metric are kept only while no criterion has a value at all
    (so a run without dev metrics keeps its latest ``keep`` epochs).
    """
    kept = {r.epoch for metric in criteria for r in rank_records(records, metric)[:keep]}
    if not kept:  # no criterion has a value (keep >= 1)
        kept.update(r.epoch for r in sorted(records, key=lambda r: r.epoch)[-keep:])
    return kept


def prune_epoch_files(output_dir: str, records: Sequence[EpochRecord], criteria: Sequence[str], keep: int) -> List[str]:
    """Delete ``{N}epoch.pb`` of recorded epochs outside :func:`kept_epochs`; returns the deleted names.

    Sidecars stay (they feed the plots). Only epochs in ``records`` are considered, so files of an
    epoch that a resumed run is about to redo are left alone.
    """
    kept = kept_epochs(records, criteria, keep)
    deleted = []
    for r in records:
        path = _epoch_path(output_dir, r.epoch)
        if r.epoch not in kept and os.path.exists(path):
            os.unlink(path)
            deleted.append(os.path.basename(path))
    if deleted:
        logger.info("pruned epoch checkpoints outside the kept %d-best: %s", keep, ", ".join(deleted))
    return deleted


def link_or_copy(src: str, dst: str) -> None:
    """Make ``dst`` a real file with ``src``'s content, atomically: a hard link, else a copy."""
    with contextlib.suppress(OSError):
        if os.path.samefile(src, dst):
            return  # already linked (a resumed run): renaming a link onto itself would leave the temp file behind
    directory = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dst) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    os.unlink(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        atomic_copy(src, dst)  # no hard links here (another filesystem, FAT...): copy instead
        return
    try:
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def update_best(output_dir: str, records: Sequence[EpochRecord], metric: str) -> Optional[EpochRecord]:
    """Point ``valid.{metric}.best.pb`` (+ ``.yaml``) at the best epoch's file; returns that record."""
    best = next((r for r in rank_records(records, metric) if os.path.isfile(_epoch_path(output_dir, r.epoch))), None)
    if best is None:
        return None
    dst = os.path.join(output_dir, f"valid.{metric}.best.pb")
    link_or_copy(_epoch_path(output_dir, best.epoch), dst)
    _write_yaml(
        _sidecar(dst),
        {
            "criterion": f"valid.{metric}",
            "mode": CRITERIA[metric],
            "epoch": best.epoch,
            "value": best.metric(metric),
            "source": epoch_ckpt_name(best.epoch),
        },
    )
    return best


def average_checkpoint_files(paths: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of the weights files ``paths`` (best-ranked first), loading one at a time; integer
    buffers are taken from the first (see the module docstring).

    Raises:
        CheckpointError: no paths, or mismatched keys/shapes.
    """
    from funasr_lite.hub.model_dir import load_state_dict

    if not paths:
        raise CheckpointError("nothing to average: no checkpoint files given")
    sums: Dict[str, torch.Tensor] = {}
    first: Dict[str, torch.Tensor] = {}
    disagree: Set[str] = set()
    for i, path in enumerate(paths):
        sd = load_state_dict(path)
        if i and set(sd) != set(first):
            diff = sorted(set(sd) ^ set(first))
            raise CheckpointError(f"{path}: keys differ from the first checkpoint: {', '.join(diff[:5])}")
        for k, v in sd.items():
            v = v.detach().cpu()
            if i and v.shape != first[k].shape:
                raise CheckpointError(
                    f"{path}: {k} has shape {tuple(v.shape)}, the first checkpoint {tuple(first[k].shape)}"
                )
            if not i:
                first[k] = v.clone()
            if v.is_floating_point() or v.is_complex():
                wide = v.to(torch.complex128 if v.is_complex() else torch.float64)
                sums[k] = wide.clone() if not i else sums[k] + wide
            elif i and not torch.equal(v, first[k]):
                disagree.add(k)
    if disagree:
        logger.warning(
            "integer buffers differ between averaged checkpoints; taken from the best one: %s",
            ", ".join(sorted(disagree)[:10]),
        )
    return {k: (sums[k] / len(paths)).to(v.dtype) if k in sums else v for k, v in first.items()}


def _write_average_sidecar(
    path: str, metric: str, n: int, chosen: Sequence[EpochRecord], note: str, **extra: Any
) -> None:
    _write_yaml(
        _sidecar(path),
        {
            "criterion": f"valid.{metric}",
            "mode": CRITERIA[metric],
            "n_requested": n,
            "n_used": len(chosen),
            "epochs": [r.epoch for r in chosen],
            "values": [r.metric(metric) for r in chosen],
            "note": note,
            **extra,
            "integer_buffers": "taken from the best epoch (FunASR sums them)",
        },
    )


def write_averages(
    output_dir: str, records: Sequence[EpochRecord], metric: str, nbest: Sequence[int]
) -> Dict[int, str]:
    """Write ``valid.{metric}.ave_{n}best.pb`` for each n, and ``valid.{metric}.ave.pb`` (largest n).

    Only epochs of the ranking whose ``{N}epoch.pb`` exists are used (the pruner keeps the top
    ``max(nbest)``, so normally all of them). Returns {n: path}; {} when no epoch has the metric.
    """
    ranked = rank_records(records, metric)
    available = [r for r in ranked if os.path.isfile(_epoch_path(output_dir, r.epoch))]
    missing = [r.epoch for r in ranked[: max(nbest, default=0)] if r not in available]
    if missing:
        logger.warning(
            "epoch checkpoints %s rank among the best by dev %s but their files are gone; averaging the remaining ones",
            missing,
            metric,
        )
    if not available:
        logger.warning("no epoch checkpoint with a dev %s value exists; valid.%s.ave*.pb not written", metric, metric)
        return {}
    written: Dict[int, str] = {}
    done: Dict[tuple, str] = {}
    for n in sorted(set(int(x) for x in nbest if int(x) > 0)):
        chosen = available[:n]
        epochs = tuple(r.epoch for r in chosen)
        name = f"valid.{metric}.ave_{n}best.pb"
        path = os.path.join(output_dir, name)
        note = ""
        if len(chosen) < n:
            note = f"only {len(chosen)} epoch(s) with dev {metric} exist; averaged all of them instead of {n}"
            logger.warning("%s: %s", name, note)
        if epochs in done:
            link_or_copy(done[epochs], path)
        elif len(chosen) == 1:
            link_or_copy(_epoch_path(output_dir, chosen[0].epoch), path)
        else:
            atomic_torch_save(average_checkpoint_files([_epoch_path(output_dir, e) for e in epochs]), path)
        done[epochs] = path
        _write_average_sidecar(path, metric, n, chosen, note)
        logger.info(
            "%s = average of epochs %s (dev %s %s)",
            name,
            list(epochs),
            metric,
            [round(r.metric(metric), 4) for r in chosen],
        )
        written[n] = path
    if written:
        largest = written[max(written)]
        ave = os.path.join(output_dir, f"valid.{metric}.ave.pb")
        link_or_copy(largest, ave)
        atomic_copy(_sidecar(largest), _sidecar(ave))
    return written


def average_nbest(output_dir: str, metric: str, n: int, output: str) -> List[EpochRecord]:
    """Average the ``n`` best epochs by their sidecars' ``dev_<metric>`` into ``output`` (+ ``.yaml``).

    Epochs whose ``{N}epoch.pb`` was pruned are skipped with a warning (their sidecars stay), so
    only existing files are averaged. Returns the records used, best first.

    Raises:
        CheckpointError: no sidecars, or no epoch file with a finite ``dev_<metric>``.
    """
    if not os.path.isdir(output_dir):
        raise CheckpointError(f"{output_dir}: not a directory")
    records = read_sidecars(output_dir)
    if not records:
        raise CheckpointError(f"{output_dir}: no epoch sidecars ({{N}}epoch.yaml) found")
    ranked = rank_records(records, metric)
    chosen, skipped = [], []
    for r in ranked:
        if len(chosen) == n:
            break
        (chosen if os.path.isfile(_epoch_path(output_dir, r.epoch)) else skipped).append(r)
    if skipped:
        logger.warning(
            "skipped epochs whose files were pruned: %s", ", ".join(epoch_ckpt_name(r.epoch) for r in skipped)
        )
    if not chosen:
        raise CheckpointError(f"{output_dir}: no epoch checkpoint with a finite dev {metric} exists")
    note = f"only {len(chosen)} epoch file(s) with dev {metric} exist" if len(chosen) < n else ""
    if note:
        logger.warning("%s; averaging all of them", note)
    atomic_torch_save(average_checkpoint_files([_epoch_path(output_dir, r.epoch) for r in chosen]), output)
    _write_average_sidecar(output, metric, n, chosen, note, skipped_pruned=[r.epoch for r in skipped])
    return chosen


def capture_rng_state() -> Dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain types (weights_only-safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(
        (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_resume_state(output_dir: str, state: Dict[str, Any]) -> None:
    """Write ``checkpoint.pb`` atomically. ``state`` must hold only tensors and plain types.

    Keys written by the trainer: ``format``, ``model`` (state_dict), ``optimizer``, ``scheduler``,
    ``scaler`` (or None), ``rng`` (:func:`capture_rng_state`), ``epoch`` (epochs completed),
    ``batches_done`` (batches of epoch ``epoch + 1`` already trained, for a Ctrl-C mid-epoch),
    ``step`` (optimizer updates), ``records`` (list of :meth:`EpochRecord.to_dict`), ``wall_time``,
    ``partial`` (running sums of the interrupted epoch), ``world_size``, ``config`` (the merged config, flat).
    """
    state = dict(state, format=RESUME_FORMAT)
    state["model"] = _state_dict_cpu(state["model"])
    atomic_torch_save(state, os.path.join(output_dir, RESUME_NAME))


def load_resume_state(output_dir: str) -> Optional[Dict[str, Any]]:
    """Load ``checkpoint.pb`` with ``weights_only=True``; None when there is none.

    Raises:
        CheckpointError: the file exists but is unreadable or not a funasr-lite resume state.
    """
    path = os.path.join(output_dir, RESUME_NAME)
    if not os.path.exists(path):
        return None
    from funasr_lite.hub.model_dir import load_failure

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure to parse the file (KeyError, struct.error, ...) is reported
        raise CheckpointError(
            f"{path}: cannot read the resume state ({load_failure(e, os.path.getsize(path))}). "
            f"Move it away to start this output dir over, or use another --output_dir"
        ) from e
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise CheckpointError(
            f"{path}: not a funasr-lite resume state (format {RESUME_FORMAT} expected). "
            f"Move it away to start this output dir over, or use another --output_dir"
        )
    return state


def remove_stale_temp_files(output_dir: str) -> List[str]:
    """Delete temp files (``.<name>.*.tmp``) that a killed run left behind; returns their names."""
    removed = []
    for name in os.listdir(output_dir):
        if name.startswith(".") and name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(output_dir, name))
                removed.append(name)
    if removed:
        logger.info("removed %d temp file(s) left by an interrupted run", len(removed))
    return removed
