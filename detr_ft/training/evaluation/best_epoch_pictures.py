"""Pictures of the best epoch's evaluation: precision-recall curves at IoU 0.5 and the confusion matrix."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a training machine
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import numpy as np  # noqa: E402

CURVES_SHOWN = 10  # more lines than this make a legend nobody can read
ANNOTATED_CLASSES = 20  # counts are written in the cells up to this many classes


def draw_pr_curves(
    recall: np.ndarray, precision: np.ndarray, class_names: list[str], path: Path, title: str = ""
) -> None:
    """recall [R] (COCOeval's recall thresholds), precision [R, K] at IoU 0.5 (-1 where a class has no
    objects) -> a PNG with the mean curve over the classes with objects and, when there are many classes,
    only the CURVES_SHOWN best ones (their AP50 in the legend)."""
    defined = [k for k in range(precision.shape[1]) if (precision[:, k] > -1).any()]
    ap50 = {k: float(precision[:, k].mean()) for k in defined}
    shown = sorted(defined, key=lambda k: -ap50[k])[:CURVES_SHOWN]
    figure, axes = plt.subplots(figsize=(7, 5.5), dpi=100)
    for k in shown:
        axes.plot(recall, precision[:, k], linewidth=1, label=f"{class_names[k]} ({ap50[k]:.3f})")
    if defined:
        mean = precision[:, defined].mean(axis=1)
        axes.plot(recall, mean, color="black", linewidth=2.5, label=f"mean of {len(defined)} ({mean.mean():.3f})")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    more = f", {len(shown)} best of {len(defined)} classes" if len(shown) < len(defined) else ""
    axes.set_title(f"precision-recall at IoU 0.5{more} {title}".strip(), fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower left", title="class (AP50)", title_fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def draw_confusion_matrix(matrix: np.ndarray, class_names: list[str], path: Path, title: str = "") -> None:
    """matrix [K+1, K+1] (rows true class, columns detected class, last = background) -> a PNG coloured by
    each true class's share (row-normalised; the background row by its own total), counts written in the
    cells when there are few classes."""
    names = [*class_names, "background"]
    totals = matrix.sum(axis=1, keepdims=True)
    shares = matrix / np.where(totals > 0, totals, 1)
    side = min(24.0, 3 + 0.35 * len(names))
    figure, axes = plt.subplots(figsize=(side + 1.5, side), dpi=100)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(names))
    font = 8 if len(names) <= 40 else 5
    axes.set_xticks(ticks, names, rotation=90, fontsize=font)
    axes.set_yticks(ticks, names, fontsize=font)
    axes.set(xlabel="detected as (background: missed)", ylabel="true class (background: false detection)")
    if len(class_names) <= ANNOTATED_CLASSES:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                colour = "white" if shares[i, j] > 0.6 else "black"
                axes.text(j, i, str(count), ha="center", va="center", fontsize=font, color=colour)
    axes.set_title(f"confusion matrix {title}".strip(), fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the row")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
