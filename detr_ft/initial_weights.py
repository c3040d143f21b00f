"""Where a run's starting weights come from: `train.checkpoint_path` (a file, `runs:/<id>/path` or an
MLflow run id) and `train.resume_from`, both checked before any data is read."""

import logging
import re
from pathlib import Path

import torch

from detr_ft.model.checkpoints import CheckpointError, load_weights, read_checkpoint

log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def resolve_checkpoint_path(reference: str, tracking_uri: str) -> Path:
    """A local path, or an MLflow reference (`runs:/<run_id>/<artifact>` or a bare run id: its best
    checkpoint) resolved to a local file. Raises CheckpointError naming the reference when absent."""
    if reference.startswith("runs:/") or _RUN_ID.match(reference):
        from detr_ft.runs import resolve_checkpoint_reference

        path = Path(resolve_checkpoint_reference(reference, tracking_uri))
    else:
        path = Path(reference).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"train.checkpoint_path: {reference!r} is not a file (looked at {path.resolve()}). "
            "Give a .ckpt/.pth/.bin/.safetensors path, runs:/<run_id>/<artifact>, or an MLflow run id."
        )
    return path


def check_resume_checkpoint(path: str) -> Path:
    """`train.resume_from` must be a detr_ft Lightning checkpoint (optimizer, epoch, strategy state)."""
    resolved = Path(path).expanduser()
    checkpoint = read_checkpoint(resolved)
    if "detr_ft" not in checkpoint or "optimizer_states" not in checkpoint:
        raise CheckpointError(
            f"train.resume_from: {resolved} is not a detr_ft training checkpoint (no optimizer/epoch state). "
            "To start from its weights with a fresh optimizer, use train.checkpoint_path instead."
        )
    return resolved


def _class_rows_by_name(checkpoint: dict, target_names: list[str]) -> list[int] | None:
    """For our own checkpoints: the source head's row of each target class, matched by class name,
    when every target class is known to the source (e.g. fine-tuning on a subset of its classes)."""
    saved = checkpoint.get("detr_ft", {}).get("category_map") if isinstance(checkpoint, dict) else None
    if not saved:
        return None
    source_names = list(saved.get("names", []))
    if source_names == list(target_names) or not set(target_names) <= set(source_names):
        return None
    return [source_names.index(name) for name in target_names]


def load_initial_weights(model: torch.nn.Module, path: Path, class_names: list[str]):
    """Load fine-tuning weights into `model`; returns load_weights' report (logged by the caller)."""
    checkpoint = read_checkpoint(path)
    class_ids = _class_rows_by_name(checkpoint, class_names)
    del checkpoint
    report = load_weights(model, path, class_ids=class_ids)
    return report
