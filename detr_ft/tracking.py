"""MLflow: the logger, run names and tags, end-of-run artifacts, failures, and looking runs up.

Conventions (read by detr_ft.compare too): one run per Hydra job; params are the flattened resolved config
(`train/learning_rate`, `module/backbone_learning_rate`); tags `strategy` (what ran), `strategy_preset`,
`schedule`, `dataset`, `model`, `sweep`, `git_commit`, `monitor`, `eval_weights` (ema | raw: what val/* scored),
`best_checkpoint`, `best_epoch`, `stop_reason`; failed
runs are FAILED with `status_error`.
"""

import logging
import re
import subprocess
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import Logger, MLFlowLogger

log = logging.getLogger(__name__)

COMPARISON_TAG = "detr_ft.kind"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")

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


def mlflow_logger(
    tracking_uri: str, experiment_name: str, run_name: str, tags: dict[str, str], **_settings
) -> MLFlowLogger:
    """`logger=mlflow`: Lightning's MLFlowLogger on the configured store (the rest of the group's keys, such
    as log_best_checkpoint, are read by the recipe)."""
    return MLFlowLogger(
        experiment_name=experiment_name, tracking_uri=tracking_uri, run_name=run_name, tags=tags, log_model=False
    )


def no_logger(**_settings) -> None:
    """`logger=none`: nothing is recorded (its tracking_uri is still where run ids are looked up)."""
    return None


def log_artifact(loggers: list[Logger], path: Path, artifact_path: str | None = None) -> None:
    """Upload a file to every MLflow logger's run."""
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=artifact_path)


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
    for path in files:
        if path.is_file():
            log_artifact([logger], path)


def mark_failed(logger: MLFlowLogger | None, error: BaseException) -> None:
    """A failed job is FAILED in MLflow with its error, so a sweep's other jobs are still comparable."""
    if logger is None:
        return
    client = logger.experiment  # creates the run if the job failed before training started
    client.set_tag(logger.run_id, "status_error", f"{type(error).__name__}: {error}"[:5000])
    client.set_terminated(logger.run_id, status="FAILED")


# ---- looking runs up ---------------------------------------------------------------------------------
def is_run_reference(reference: str) -> bool:
    """`runs:/<run_id>/<artifact path>` or a bare 32-hex MLflow run id."""
    return reference.startswith("runs:/") or bool(_RUN_ID.match(reference))


def find_runs(
    tracking_uri: str, experiment: str = "detr_ft", sweep: str | None = None, run_ids: list[str] | None = None
) -> list:
    """Runs by id, else the experiment's (optionally one sweep's), leaving out comparison runs."""
    client = MlflowClient(tracking_uri)
    if run_ids:
        return [client.get_run(run_id) for run_id in run_ids]
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no MLflow experiment named {experiment!r} in {tracking_uri}")
    query = f"tags.sweep = '{sweep}'" if sweep else ""
    runs = client.search_runs([found.experiment_id], filter_string=query, max_results=5000)
    return [r for r in runs if r.data.tags.get(COMPARISON_TAG) != "comparison"]


def newest_sweep(tracking_uri: str, experiment: str = "detr_ft") -> str | None:
    runs = [r for r in find_runs(tracking_uri, experiment) if "sweep" in r.data.tags]
    return max(runs, key=lambda r: r.info.start_time).data.tags["sweep"] if runs else None


def resolve_checkpoint_reference(reference: str, tracking_uri: str) -> Path:
    """`runs:/<run_id>/<artifact path>` -> the downloaded file; a bare run id -> its best checkpoint."""
    client = MlflowClient(tracking_uri)
    if reference.startswith("runs:/"):
        destination = tempfile.mkdtemp(prefix="detr_ft_checkpoint_")
        mlflow.set_tracking_uri(tracking_uri)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=reference, dst_path=destination))
    if not _RUN_ID.match(reference):
        raise ValueError(f"{reference!r} is neither runs:/<run_id>/<path> nor an MLflow run id")
    try:
        run = client.get_run(reference)
    except mlflow.exceptions.MlflowException:
        raise ValueError(f"no MLflow run {reference} in {tracking_uri} (set logger.tracking_uri)") from None
    best = run.data.tags.get("best_checkpoint")
    if not best:
        raise ValueError(f"MLflow run {reference} has no best_checkpoint tag (did it finish?)")
    return Path(best)
