"""A run's weights as an MLflow model (`logger.log_model=best|last|none`) and in the Model Registry
(`logger.register_model=NAME`).

The model is pyfunc "models from code" (inference/pyfunc_code.py names pyfunc_model.DetectorModel) with one
artifact, a weights-only detr_ft checkpoint (float32: the run's own weights, so it predicts exactly what the
run's checkpoint does). Loading it needs no Hydra config and unpickles nothing.

Registering adds a version tagged with the run's best val/mAP; the alias `@best` moves to it only when that
beats the value stored on the alias's current version, so a worse sweep never takes the alias away.
"""

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from detr_ft.checkpoints.checkpoint_file import export_weights
from detr_ft.inference import pyfunc_model as serving

log = logging.getLogger(__name__)

ARTIFACT = "model"  # runs:/<run id>/model
MODEL_TAG = "model_uri"  # the run's tag naming its logged model
ALIAS = "best"
METRIC = "val/mAP"  # what the alias compares (higher is better), stored as a tag of each version
SIGNATURE = ModelSignature(
    inputs=None,  # image paths, HxWx3 uint8 arrays or a DataFrame of paths: no one column schema fits all three
    outputs=Schema(
        [
            ColSpec(DataType.long, "image_id"),
            ColSpec(DataType.string, "file_name"),
            ColSpec(DataType.long, "category_id"),
            ColSpec(DataType.string, "category_name"),
            ColSpec(Array(DataType.double), "bbox"),
            ColSpec(DataType.double, "score"),
        ]
    ),
    params=ParamSchema([ParamSpec("threshold", DataType.double, serving.DEFAULT_THRESHOLD)]),
)
REQUIREMENTS = ["torch", "torchvision", "mlflow", "hydra-core", "omegaconf", "pandas", "pillow"]


@contextmanager
def _tracking_uri(uri: str):
    """MLflow's model logging reads the global tracking URI; set it for the call only."""
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def log_model(tracking_uri: str, run_id: str, checkpoint: str | Path) -> str:
    """Log `checkpoint`'s weights as the pyfunc model of run `run_id` -> its URI `models:/<model id>` (MLflow 3
    keeps a model apart from the run's artifacts; `runs:/<run id>/model` finds it too), also the run's tag
    MODEL_TAG."""
    with tempfile.TemporaryDirectory(prefix="detr_ft_model_") as folder, _tracking_uri(tracking_uri):
        weights = export_weights(checkpoint, Path(folder) / "weights.ckpt", half=False)
        client = MlflowClient(tracking_uri)
        status = client.get_run(run_id).info.status
        mlflow.start_run(run_id=run_id)  # log_model files the model under the active run's experiment
        try:
            logged = mlflow.pyfunc.log_model(
                name=ARTIFACT,
                python_model=str(Path(serving.__file__).with_name("pyfunc_code.py")),
                artifacts={serving.WEIGHTS: str(weights)},
                signature=SIGNATURE,
                input_example=np.zeros((32, 32, 3), dtype=np.uint8),  # an image array: portable, unlike a path
                pip_requirements=REQUIREMENTS,  # given: inferring them starts a slow pip subprocess
            )
        finally:
            mlflow.end_run(status=status)  # the run keeps the status it ended with
    client.set_tag(run_id, MODEL_TAG, logged.model_uri)
    return logged.model_uri


def register(tracking_uri: str, model_uri: str, name: str, value: float | None) -> tuple[str, bool]:
    """A new version of registered model `name` from `model_uri`, tagged with its val/mAP; `@best` moves to it
    when it beats the alias's version (or no version holds the alias) -> (version, whether the alias moved)."""
    with _tracking_uri(tracking_uri):
        tags = {METRIC: f"{value:.6f}"} if value is not None else {}
        version = mlflow.register_model(model_uri, name, tags=tags).version
    moved = move_alias_if_better(MlflowClient(tracking_uri), name, str(version), value)
    log.info("MLflow: %s is version %s of %r%s", model_uri, version, name, f" (now @{ALIAS})" if moved else "")
    return str(version), moved


def move_alias_if_better(client: MlflowClient, name: str, version: str, value: float | None) -> bool:
    """Point `name@best` at `version` if its value beats the value tagged on the alias's current version."""
    if value is None:
        return False
    try:
        holder = client.get_model_version_by_alias(name, ALIAS)
    except mlflow.exceptions.MlflowException:
        holder = None  # no version holds the alias yet
    stored = holder.tags.get(METRIC) if holder is not None else None
    if stored is not None and value <= float(stored):
        return False
    client.set_registered_model_alias(name, ALIAS, version)
    return True


def register_sweep_best(tracking_uri: str, parent_run_id: str, name: str) -> tuple[str, bool] | None:
    """A sweep's end: register the model of the best job its parent run names (tags best_run_id and
    best_val/mAP, see sweep_parent.update_parent) -> (version, whether @best moved); None without a best job."""
    client = MlflowClient(tracking_uri)
    tags = client.get_run(parent_run_id).data.tags
    if "best_run_id" not in tags:
        return None
    value = float(tags[f"best_{METRIC}"])
    best_job = client.get_run(tags["best_run_id"]).data.tags
    if MODEL_TAG not in best_job:
        raise ValueError(f"the best job {tags['best_run_id']} logged no model (logger.log_model=none?)")
    version, moved = register(tracking_uri, best_job[MODEL_TAG], name, value)
    client.set_tag(parent_run_id, "registered_model", f"{name}/{version}" + (f" (@{ALIAS})" if moved else ""))
    return version, moved


def log_run_model(logger, summary, settings, in_sweep: bool) -> str | None:
    """The end of a run: log its `settings.log_model` (best | last | none) checkpoint as its model and register
    it under `settings.register_model` (a sweep's job leaves that to the sweep, which registers its best job)
    -> the model's URI."""
    which = str(getattr(settings.get("log_model"), "name", settings.get("log_model") or "none"))
    if logger is None or getattr(logger, "lost", None) or which == "none":
        return None
    checkpoint = summary.best_checkpoint if which == "best" else summary.last_checkpoint
    if not checkpoint:
        return None
    try:
        uri = log_model(logger.tracking_uri, logger.run_id, checkpoint)
        if settings.get("register_model") and not in_sweep:
            register(logger.tracking_uri, uri, settings.register_model, summary.best_metrics.get(METRIC))
    except Exception as error:  # the run trained and its checkpoints are written: a lost server must not fail it
        log.warning("MLflow: could not log or register the run's model (%s: %s)", type(error).__name__, error)
        return None
    return uri
