"""`<run_dir>/results.png`: what training did, per epoch, in one picture: the training loss and each term, val mAP
and mAP50, the learning rate of every optimizer group and the matching health (matching_health.py), with
the epochs where backbone stages unfroze and the best epoch marked.

The data comes from the run's metrics.csv (metrics_csv.py), so the picture shows exactly what was logged;
it is redrawn when each epoch has ended (a running or killed run has an up-to-date picture) and uploaded to MLflow
when the fit ends.
"""

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from pytorch_lightning.loggers import CSVLogger

from detr_ft.tracking.recording import log_artifact

LOSS_TERMS = ("train_loss", "train/loss_ce", "train/loss_bbox", "train/loss_giou")
VAL_METRICS = ("val/mAP", "val/mAP50")
HEALTH = ("matching/instability", "matching/unmatched_queries", "matching/no_object_prob")


@dataclass
class ResultsData:
    """Each panel's series (name -> {epoch: value}), the epochs where stages unfroze and the best epoch."""

    losses: dict[str, dict[int, float]] = field(default_factory=dict)
    validation: dict[str, dict[int, float]] = field(default_factory=dict)
    learning_rates: dict[str, dict[int, float]] = field(default_factory=dict)
    health: dict[str, dict[int, float]] = field(default_factory=dict)
    unfreeze_epochs: list[int] = field(default_factory=list)
    best_epoch: int | None = None


def read_epoch_means(csv_path: Path) -> dict[str, dict[int, float]]:
    """metrics.csv (name, step, value rows) -> name -> {epoch: mean of the values logged in that epoch}.

    Lightning closes every logging call with an `epoch` row: the rows before it belong to that epoch."""
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    pending: list[tuple[str, float]] = []
    with open(csv_path, newline="") as file:
        for row in csv.DictReader(file):
            if row["name"] == "epoch":
                epoch = int(float(row["value"]))
                for name, value in pending:
                    sums[name][epoch].append(value)
                pending = []
            else:
                pending.append((row["name"], float(row["value"])))
    return {name: {epoch: sum(v) / len(v) for epoch, v in sorted(per.items())} for name, per in sums.items()}


def results_data(series: dict[str, dict[int, float]], monitor: str = "val/mAP") -> ResultsData:
    """The picture's data from the per-epoch series: the panels, the unfreeze epochs (where the count of training
    backbone stages grew) and the best epoch of `monitor` (highest, or lowest for a loss)."""
    stages = series.get("backbone/trainable_stages", {})
    epochs = sorted(stages)
    unfreeze = [b for a, b in zip(epochs, epochs[1:], strict=False) if stages[b] > stages[a]]
    watched = series.get(monitor, {})
    pick = min if "loss" in monitor else max
    return ResultsData(
        losses={name: series[name] for name in LOSS_TERMS if name in series},
        validation={name: series[name] for name in VAL_METRICS if name in series},
        learning_rates={name: values for name, values in sorted(series.items()) if name.startswith("lr/")},
        health={name: series[name] for name in HEALTH if name in series},
        unfreeze_epochs=unfreeze,
        best_epoch=pick(watched, key=watched.get) if watched else None,
    )


def draw_results(data: ResultsData, path: Path, title: str = "") -> Path:
    """Four panels side by side (losses, validation, learning rates, matching health) as a PNG."""
    figure = Figure(figsize=(16, 4))
    panels = [
        ("training loss (epoch mean)", data.losses),
        ("validation", data.validation),
        ("learning rate per group", data.learning_rates),
        ("matching health", data.health),
    ]
    for index, (name, lines) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        for label, values in lines.items():
            axes.plot(list(values), list(values.values()), marker=".", label=label)
        for epoch in data.unfreeze_epochs:
            axes.axvline(epoch, color="grey", linestyle="--", linewidth=1)
        if data.best_epoch is not None:
            axes.axvline(data.best_epoch, color="red", linestyle=":", linewidth=1.5)
        axes.set_title(name, fontsize="medium")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if lines:
            axes.legend(fontsize="x-small")
        else:
            axes.text(0.5, 0.5, "not logged yet", ha="center", va="center", transform=axes.transAxes)
    marks = "grey dashes: backbone stages unfroze; red dots: best epoch"
    figure.suptitle(f"{title}  ({marks})" if title else marks, fontsize="small")
    figure.subplots_adjust(left=0.04, right=0.99, bottom=0.14, top=0.86, wspace=0.25)  # tight_layout doubles the cost
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    return path


class ResultsPicture(pl.Callback):
    """Redraws `path` from metrics.csv after each epoch (validation included) and at the fit's end or failure; the
    last picture goes to MLflow beside the run's other pictures."""

    def __init__(self, path: str, monitor: str = "val/mAP"):
        self.path = Path(path)
        self.monitor = monitor

    def _metrics_file(self, trainer: pl.Trainer) -> Path | None:
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger):
                return Path(logger.experiment.metrics_file_path)
        return None

    def draw(self, trainer: pl.Trainer) -> Path | None:
        if not trainer.is_global_zero:  # other ranks' CSVLogger has a stand-in experiment, and no file
            return None
        source = self._metrics_file(trainer)
        if source is None or not source.exists():
            return None
        return draw_results(results_data(read_epoch_means(source), self.monitor), self.path, self.path.parent.name)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch > 0:  # the previous epoch's metrics, its end-of-epoch ones included, are written
            self.draw(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.draw(trainer) is not None:
            log_artifact(trainer.loggers, self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        try:
            self.draw(trainer)
        except Exception:  # the run's own error is what matters
            pass
