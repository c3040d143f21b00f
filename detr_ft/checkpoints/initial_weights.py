"""Where a run's starting weights come from: `train.checkpoint_path` (a file, a run folder, `runs:/<id>/path`,
an MLflow run id or a published name such as `detr-r50`) and `train.resume_from`, both checked before any data
is read."""

import logging
from pathlib import Path

import torch

from detr_ft import tracking
from detr_ft.checkpoints import checkpoint_file, published_weights
from detr_ft.checkpoints.resume import ResumePoint
from detr_ft.checkpoints.safe_read import CheckpointError
from detr_ft.checkpoints.weight_loading import LoadReport, load_weights
from detr_ft.model.classification import form_of_config, form_of_head

log = logging.getLogger(__name__)


def resolve_checkpoint_path(reference: str, tracking_uri: str) -> Path:
    """A local path, a published name (downloaded once into the standard cache), or an MLflow reference
    (`runs:/<run_id>/<artifact>` or a bare run id: its best checkpoint) resolved to a local file. Raises
    CheckpointError naming the reference when absent."""
    if published_weights.is_published_name(reference) and not Path(reference).expanduser().exists():
        return published_weights.fetch(reference)
    if tracking.is_run_reference(reference):
        path = Path(tracking.resolve_checkpoint_reference(reference, tracking_uri))
    else:
        path = checkpoint_file.in_run_folder(reference, "best")
    if not path.is_file():
        raise CheckpointError(
            f"train.checkpoint_path: {reference!r} is not a file (looked at {path.resolve()}). "
            "Give a .ckpt/.pth/.bin/.safetensors path, a run folder, runs:/<run_id>/<artifact>, an MLflow run id, "
            f"or the name of published weights: {published_weights.known_names()}."
        )
    return path


def _class_rows_by_name(checkpoint: checkpoint_file.Checkpoint, target_names: list[str]) -> list[int] | None:
    """For our own checkpoints: the source head's row of each target class, matched by class name,
    when every target class is known to the source (e.g. fine-tuning on a subset of its classes)."""
    source_names = checkpoint.class_names
    if not source_names:
        return None
    if source_names == list(target_names) or not set(target_names) <= set(source_names):
        return None
    return [source_names.index(name) for name in target_names]


def starting_points(
    checkpoint_path: str | None, resume: ResumePoint, tracking_uri: str
) -> tuple[Path | None, checkpoint_file.Checkpoint | None]:
    """(weights to fine-tune from, checkpoint to resume, already read) from `train.checkpoint_path` and
    `train.resume_from`, checked before any data is read."""
    if resumed := resume.checked():
        return None, resumed
    if checkpoint_path:
        return resolve_checkpoint_path(str(checkpoint_path), tracking_uri), None
    return None, None


def load_starting_weights(model: torch.nn.Module, path: Path | None, class_names: list[str]) -> dict[str, str]:
    """Load `path`'s weights into `model` when there is one; returns the run's tags that say what was loaded
    (weights_from, class_head, class_head_form when the head's form changed, query_embeddings, query_groups_init)."""
    if path is None:
        return {}
    report = load_initial_weights(model, path, class_names)
    log.info("weights from %s: %s", path, report.summary())
    return {
        "weights_from": str(path),
        "class_head": "re-initialised" if report.reinitialized else "loaded",
        **({"class_head_form": report.form_change} if report.form_change else {}),
        **({"query_embeddings": report.queries} if report.queries else {}),
        **({"query_groups_init": report.training_queries} if report.training_queries else {}),
    }


def load_initial_weights(model: torch.nn.Module, path: Path, class_names: list[str]) -> LoadReport:
    """Load fine-tuning weights into `model` (the file is read once); returns what was loaded, for the log. A class
    head of the other form (softmax or sigmoid, model/classification.py) is re-initialised, and the report says so."""
    checkpoint = checkpoint_file.read(path)
    class_ids = _class_rows_by_name(checkpoint, class_names)
    form = _head_form(checkpoint)
    return load_weights(model, checkpoint.model_state, class_ids, source=str(path), source_classification=form)


def _head_form(checkpoint: checkpoint_file.Checkpoint) -> str:
    """The class head form of the checkpoint's weights: official and Hugging Face ones are softmax; ours, as its
    stored config says, checked against its head's rows for its class count."""
    if checkpoint.source_format != "detr_ft":
        return "softmax"
    form = form_of_config(checkpoint.config)
    head, names = checkpoint.model_state.get("class_head.weight"), checkpoint.class_names
    if head is not None and names and form_of_head(len(head), len(names)) != form:
        raise CheckpointError(
            f"train.checkpoint_path: {checkpoint.path}'s class head has {len(head)} rows for {len(names)} classes, "
            f"which does not fit the model.classification={form} its stored config names"
        )
    return form
