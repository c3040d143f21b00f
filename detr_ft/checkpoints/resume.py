"""`train.resume_from`: read once, before the MLflow run starts, since the run it recorded is the one to
continue; the same contents are then handed to Lightning's restore (lightning_io.py)."""

import logging
from dataclasses import dataclass
from pathlib import Path

from detr_ft.checkpoints.checkpoint_file import Checkpoint, in_run_folder, read
from detr_ft.checkpoints.safe_read import CheckpointError
from detr_ft.config.errors import ConfigError

log = logging.getLogger(__name__)


def read_resumable(path: str | Path) -> Checkpoint:
    """`train.resume_from` (a file, or a run folder: its last.ckpt) read; it must be a detr_ft training
    checkpoint (optimizer, epoch, strategy state)."""
    checkpoint = read(in_run_folder(path, "last"))
    if not checkpoint.resumable:
        raise CheckpointError(
            f"train.resume_from: {checkpoint.path} is not a detr_ft training checkpoint (no optimizer/epoch state). "
            "To start from its weights with a fresh optimizer, use train.checkpoint_path instead."
        )
    return checkpoint


@dataclass
class ResumePoint:
    """`train.resume_from` read once, before the MLflow run starts (the run it recorded is the one to continue).
    A file that cannot be resumed raises in `checked()`, inside the run, so the run is recorded FAILED."""

    checkpoint: Checkpoint | None = None
    error: Exception | None = None

    @classmethod
    def read(cls, resume_from: str | None) -> "ResumePoint":
        if not resume_from:
            return cls()
        try:
            return cls(read_resumable(resume_from))
        except Exception as error:  # raised again by checked(), once the run can record it
            return cls(error=error)

    def checked(self) -> Checkpoint | None:
        if self.error is not None:
            raise self.error
        return self.checkpoint

    def mlflow_run_id(self, tracking_uri: str) -> str | None:
        """The MLflow run the checkpoint recorded, when it lives in the store `tracking_uri`."""
        recorded = self.checkpoint.mlflow_run if self.checkpoint else None
        if recorded and recorded["tracking_uri"] == tracking_uri:
            return recorded["run_id"]
        if recorded:
            log.warning(
                "train.resume_from's MLflow run %s is in %s, not in logger.tracking_uri=%s: logging to a new run",
                recorded["run_id"],
                recorded["tracking_uri"],
                tracking_uri,
            )
        return None


def refuse_finished_run(resumed: Checkpoint | None, epochs: int) -> None:
    """ConfigError when the resumed run has finished `epochs` epochs (train.epochs of this command): resuming it
    would train nothing, exit 0 and leave an empty run folder behind. Read from the checkpoint already read."""
    if resumed is None:
        return
    done = int(resumed.contents.get("epoch", -1)) + 1  # last.ckpt is written when an epoch ends: counts from 0
    if done >= epochs:
        raise ConfigError(
            f"train.resume_from: {resumed.path} is a finished run ({done} of train.epochs={epochs} epochs done): "
            f"there is nothing to resume. To train from its weights in a new run, use "
            f"train.checkpoint_path={resumed.path}; to train this run for longer, raise train.epochs above {done}."
        )
