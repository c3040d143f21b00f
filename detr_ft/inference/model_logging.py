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
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from detr_ft.checkpoints.checkpoint_file import export_weights
from detr_ft.inference import pyfunc_model as serving
from detr_ft.tracking.registry import METRIC, MODEL_TAG, register, using_tracking_uri

log = logging.getLogger(__name__)

ARTIFACT = "model"  # runs:/<run id>/model
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


def log_model(tracking_uri: str, run_id: str, checkpoint: str | Path) -> str:
    """Log `checkpoint`'s weights as the pyfunc model of run `run_id` -> its URI `models:/<model id>` (MLflow 3
    keeps a model apart from the run's artifacts; `runs:/<run id>/model` finds it too), also the run's tag
    MODEL_TAG."""
    with tempfile.TemporaryDirectory(prefix="detr_ft_model_") as folder, using_tracking_uri(tracking_uri):
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
