"""The short table printed at the end of a run: best metric and epoch, checkpoints, MLflow run."""

from dataclasses import dataclass

import pytorch_lightning as pl


@dataclass
class RunSummary:
    monitor: str
    best_value: float | None
    best_epoch: int | None
    best_val_map: float | None
    best_val_map50: float | None
    final_val_metrics: dict
    best_checkpoint: str
    last_checkpoint: str
    run_dir: str
    mlflow_run_id: str | None
    tracking_uri: str | None
    class_head: str | None = None  # "loaded" | "re-initialised" when weights came from train.checkpoint_path

    @classmethod
    def from_training(cls, trainer: pl.Trainer, module, checkpoints, last, logger, logger_cfg) -> "RunSummary":
        """checkpoints: the best-file ModelCheckpoint; last: the one that writes last.ckpt."""
        best = checkpoints.best_model_score
        epoch = _epoch_of(checkpoints.best_model_path)
        return cls(
            monitor=checkpoints.monitor,
            best_value=float(best) if best is not None else None,
            best_epoch=epoch,
            best_val_map=module.best_val_map,
            best_val_map50=module.best_val_map50,
            final_val_metrics=dict(module.last_val_metrics),
            best_checkpoint=checkpoints.best_model_path,
            last_checkpoint=last.best_model_path,  # its "best" is simply its newest
            run_dir=str(trainer.default_root_dir),
            mlflow_run_id=logger.run_id if logger is not None else None,
            tracking_uri=logger_cfg.tracking_uri if logger is not None else None,
        )

    def tags(self) -> dict[str, str]:
        found = {"best_checkpoint": self.best_checkpoint, "last_checkpoint": self.last_checkpoint}
        if self.best_epoch is not None:
            found["best_epoch"] = str(self.best_epoch)
        return found


def _epoch_of(checkpoint_path: str) -> int | None:
    """`.../best_epoch=6-step=51751-val_mAP=0.41.ckpt` -> 6."""
    marker = "best_epoch="
    if marker not in checkpoint_path:
        return None
    digits = checkpoint_path.split(marker, 1)[1].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def print_summary(summary: RunSummary) -> None:
    rows = [
        (f"best {summary.monitor}", f"{_fmt(summary.best_value)} (epoch {summary.best_epoch})"),
        ("best val/mAP (its mAP50)", f"{_fmt(summary.best_val_map)} ({_fmt(summary.best_val_map50)})"),
        (
            "final val/mAP, mAP50",
            f"{_fmt(summary.final_val_metrics.get('mAP'))}, {_fmt(summary.final_val_metrics.get('mAP50'))}",
        ),
        ("best checkpoint", summary.best_checkpoint or "n/a"),
        ("last checkpoint", summary.last_checkpoint or "n/a"),
        ("run folder", summary.run_dir),
    ]
    if summary.mlflow_run_id:
        rows.append(("MLflow run id", summary.mlflow_run_id))
        if summary.tracking_uri.startswith("http"):
            rows.append(("open MLflow UI", summary.tracking_uri))
        else:
            rows.append(("open MLflow UI", f"mlflow ui --backend-store-uri {summary.tracking_uri}  (or make ui)"))
    width = max(len(key) for key, _ in rows)
    line = "-" * (width + 3 + max(len(value) for _, value in rows))
    print(f"\n{line}\ndetr_ft run summary\n{line}")
    for key, value in rows:
        print(f"{key.ljust(width)} : {value}")
    print(line)
