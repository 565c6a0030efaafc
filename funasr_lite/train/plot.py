"""Training curves as a PNG: train/dev loss, dev acc, dev CER and lr against epoch.

Drawn from the epoch sidecars (``{N}epoch.yaml``, see :mod:`funasr_lite.train.checkpoint`), so the plot
of a resumed run is the same as that of an uninterrupted one. Uses matplotlib's Agg backend (no
display needed; the figure is built without pyplot) and writes the file atomically.
"""

import io
import logging
import os
from typing import List, Optional, Sequence

from funasr_lite.train.checkpoint import EpochRecord, read_sidecars
from funasr_lite.utils.fileio import atomic_open

__all__ = ["plot_training_curves", "CURVES_NAME"]

logger = logging.getLogger(__name__)

CURVES_NAME = "training_curves.png"


def _series(records: Sequence[EpochRecord], attr: str):
    xs, ys = [], []
    for r in records:
        v = getattr(r, attr)
        if v is not None:
            xs.append(r.epoch)
            ys.append(float(v))
    return xs, ys


def plot_training_curves(
    output_dir: str, records: Optional[List[EpochRecord]] = None, path: Optional[str] = None
) -> Optional[str]:
    """Write the 4-panel curves PNG; returns its path, or None when there are no records yet.

    Args:
        output_dir: the finetune output dir (sidecars are read from it unless ``records`` is given).
        records: epoch records to plot (default: all sidecars in ``output_dir``).
        path: the PNG path (default ``output_dir/training_curves.png``).
    """
    from matplotlib.figure import Figure  # no pyplot: never touches the global backend or a display

    records = read_sidecars(output_dir) if records is None else sorted(records, key=lambda r: r.epoch)
    if not records:
        return None
    path = path or os.path.join(output_dir, CURVES_NAME)
    fig = Figure(figsize=(10, 7), dpi=100)
    axes = fig.subplots(2, 2)
    panels = [
        (axes[0][0], "loss", [("train_loss", "train"), ("dev_loss", "dev")]),
        (axes[0][1], "dev acc", [("dev_acc", "dev acc")]),
        (axes[1][0], "dev CER (%)", [("dev_cer", "dev CER")]),
        (axes[1][1], "learning rate", [("lr", "lr (last update)")]),
    ]
    for ax, title, curves in panels:
        drawn = False
        for attr, label in curves:
            xs, ys = _series(records, attr)
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
                drawn = True
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if drawn and len(curves) > 1:
            ax.legend()
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    best_cer = [r for r in records if r.metric("cer") is not None]
    if best_cer:
        b = min(best_cer, key=lambda r: r.metric("cer"))
        axes[1][0].annotate(f"best {b.dev_cer:.2f}% @ {b.epoch}", (b.epoch, b.dev_cer), fontsize=8)
    fig.suptitle(f"{os.path.basename(os.path.abspath(output_dir))}: {len(records)} epoch(s)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())
    return path
