"""What a run writes to MLflow besides its metrics and params: tags, end-of-run artifacts, its failure, the
commit it ran."""

import subprocess
from pathlib import Path

from pytorch_lightning.loggers import Logger, MLFlowLogger


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
