"""Training curves as a PNG: train/dev loss, dev acc, dev CER and lr against epoch.

Drawn from the records of all epochs (as in the sidecars ``{N}epoch.yaml``, see :mod:`funasr_lite.train.checkpoint`),
so the plot of a resumed run is the same as that of an uninterrupted one. Uses matplotlib's Agg backend (no
display needed; the figure is built without pyplot) and writes the file atomically.
"""

import os
from typing import Optional, Sequence

from funasr_lite.train.checkpoint import EpochRecord
from funasr_lite.utils.fileio import atomic_open

__all__ = ["plot_training_curves", "CURVES_NAME"]

CURVES_NAME = "training_curves.png"


def plot_training_curves(output_dir: str, records: Sequence[EpochRecord]) -> Optional[str]:
    """Write ``training_curves.png`` of ``records`` into ``output_dir``; returns its path, None without records."""
    from matplotlib.figure import Figure  # no pyplot: never touches the global backend or a display
    from matplotlib.ticker import MaxNLocator

    records = sorted(records, key=lambda r: r.epoch)
    if not records:
        return None
    path = os.path.join(output_dir, CURVES_NAME)
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
            pts = [(r.epoch, float(getattr(r, attr))) for r in records if getattr(r, attr) is not None]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", markersize=3, label=label)
                drawn = True
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
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
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    return path
