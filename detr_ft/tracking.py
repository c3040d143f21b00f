"""MLflow glue: the logger, run names and tags, the per-epoch prediction picture, end-of-run artifacts.

Conventions (also read by detr_ft.compare and detr_ft.runs): one run per Hydra job; params are the
flattened resolved config (`train/learning_rate`); tags `strategy`, `schedule`, `dataset`, `model`,
`sweep`, `git_commit`, `monitor`, `best_checkpoint`, `best_epoch`; failed runs are FAILED with
`status_error`.
"""

import logging
import subprocess
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import MLFlowLogger

log = logging.getLogger(__name__)

# Short names for the overrides people sweep most, so run names stay readable: progressive-lr5e-05.
_SHORT_KEYS = {
    "train.learning_rate": "lr",
    "train.backbone_learning_rate": "blr",
    "train.batch_size": "bs",
    "train.unfreeze_backbone_at_epoch": "unfreeze",
    "train.epochs": "ep",
}
_PATH_KEYS = ("dir", "path", "uri", "root", "images", "annotations", "resume_from")
_GROUPS = {"finetune_strategy", "model", "data", "experiment", "trainer"}


def run_name_from_overrides(overrides: list[str], default: str) -> str:
    """`finetune_strategy=progressive train.learning_rate=5e-5` -> `progressive-lr5e-05`."""
    parts = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.startswith(("hydra.", "logger")) or key.endswith(_PATH_KEYS):
            continue  # where things are stored says nothing about the experiment
        if key in _GROUPS:
            parts.append(value)
            continue
        try:
            value = f"{float(value):g}" if "." in value or "e" in value.lower() else value
        except ValueError:
            pass
        parts.append(_SHORT_KEYS.get(key, key.rsplit(".", 1)[-1]) + value)
    return "-".join(parts)[:250] or default


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def build_logger(logger_cfg, run_name: str, tags: dict[str, str]) -> MLFlowLogger | None:
    """Lightning's MLFlowLogger on the configured store, or None for `logger=none`."""
    if logger_cfg.kind == "none":
        return None
    if logger_cfg.kind != "mlflow":
        raise ValueError(f"logger.kind must be 'mlflow' or 'none', got {logger_cfg.kind!r}")
    return MLFlowLogger(
        experiment_name=logger_cfg.experiment_name,
        tracking_uri=logger_cfg.tracking_uri,
        run_name=logger_cfg.run_name or run_name,
        tags=tags,
        log_model=False,
    )


class PredictionPictureLogger(pl.Callback):
    """Each validation epoch: the LightningModule's picture of predictions vs ground truth, saved in the run
    folder and logged to MLflow as `predictions/epoch_NNN.png`."""

    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir) / "predictions"

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        picture = getattr(pl_module, "prediction_picture", None)
        if picture is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"epoch_{trainer.current_epoch:03d}.png"
        picture.save(path)
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.log_artifact(logger.run_id, str(path), artifact_path="predictions")


def set_tags(logger: MLFlowLogger | None, tags: dict[str, str]) -> None:
    if logger is None:
        return
    for key, value in tags.items():
        logger.experiment.set_tag(logger.run_id, key, value)


def log_run_end(logger: MLFlowLogger | None, tags: dict[str, str], files: list[Path]) -> None:
    """Tags and artifacts known only at the end (best checkpoint, best epoch, config, detections)."""
    if logger is None:
        return
    set_tags(logger, tags)
    client, run_id = logger.experiment, logger.run_id
    for path in files:
        if path.is_file():
            client.log_artifact(run_id, str(path))


def mark_failed(logger: MLFlowLogger | None, error: BaseException) -> None:
    """A failed job is FAILED in MLflow with its error, so a sweep's other jobs are still comparable."""
    if logger is None:
        return
    client = logger.experiment  # creates the run if the job failed before training started
    client.set_tag(logger.run_id, "status_error", f"{type(error).__name__}: {error}"[:5000])
    client.set_terminated(logger.run_id, status="FAILED")
