"""Looking runs up: a checkpoint reference (`runs:/...`, `models:/NAME@alias`, or a run id), the runs of an
experiment or a sweep, a sweep's jobs, the newest sweep."""

import re
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from detr_ft.tracking.tags import COMPARISON_KIND, KIND_TAG, PARENT_TAG, SWEEP_KIND

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.match(text))


def is_run_reference(reference: str) -> bool:
    """`runs:/<run_id>/<artifact path>`, `models:/NAME@alias` / `models:/NAME/VERSION`, or a bare 32-hex
    MLflow run id."""
    return reference.startswith(("runs:/", "models:/")) or bool(_RUN_ID.match(reference))


def find_runs(
    tracking_uri: str, experiment: str = "detr_ft", sweep: str | None = None, run_ids: list[str] | None = None
) -> list:
    """Runs by id (a sweep's parent run standing for its jobs), else the experiment's (optionally one sweep's,
    by its folder or its parent run's id): training runs only, never comparison or parent runs."""
    client = MlflowClient(tracking_uri)
    if sweep and is_run_id(sweep):
        run_ids, sweep = [sweep], None
    if run_ids:
        found = []
        for run in (client.get_run(run_id) for run_id in run_ids):
            found += child_runs(client, run) if run.data.tags.get(KIND_TAG) == SWEEP_KIND else [run]
        return found
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no MLflow experiment named {experiment!r} in {tracking_uri}")
    query = f"tags.sweep = '{sweep}'" if sweep else ""
    runs = client.search_runs([found.experiment_id], filter_string=query, max_results=5000)
    return [r for r in runs if r.data.tags.get(KIND_TAG) not in (COMPARISON_KIND, SWEEP_KIND)]


def child_runs(client: MlflowClient, parent) -> list:
    """The jobs of a sweep, given its parent run."""
    query = f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    return client.search_runs([parent.info.experiment_id], filter_string=query, max_results=5000)


def newest_sweep(tracking_uri: str, experiment: str = "detr_ft") -> str | None:
    runs = [r for r in find_runs(tracking_uri, experiment) if "sweep" in r.data.tags]
    return max(runs, key=lambda r: r.info.start_time).data.tags["sweep"] if runs else None


def resolve_checkpoint_reference(reference: str, tracking_uri: str) -> Path:
    """`runs:/<run_id>/<artifact path>` -> the downloaded file; `models:/...` -> the weights of that registered
    model version; a bare run id -> its best checkpoint."""
    if reference.startswith("models:/"):
        return registered_weights(reference, tracking_uri)
    if reference.startswith("runs:/"):
        destination = tempfile.mkdtemp(prefix="detr_ft_checkpoint_")
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=reference, dst_path=destination, tracking_uri=tracking_uri)
        )
    if not is_run_id(reference):
        raise ValueError(f"{reference!r} is neither runs:/<run_id>/<path> nor an MLflow run id")
    try:
        run = MlflowClient(tracking_uri).get_run(reference)
    except mlflow.exceptions.MlflowException:
        raise ValueError(f"no MLflow run {reference} in {tracking_uri} (set logger.tracking_uri)") from None
    best = run.data.tags.get("best_checkpoint")
    if not best:
        raise ValueError(f"MLflow run {reference} has no best_checkpoint tag (did it finish?)")
    return Path(best)


def registered_weights(reference: str, tracking_uri: str) -> Path:
    """`models:/NAME@alias` or `models:/NAME/VERSION` (a model logged by `logger.log_model`) -> its weights-only
    checkpoint, downloaded."""
    destination = tempfile.mkdtemp(prefix="detr_ft_model_")
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(tracking_uri)  # the registry follows the tracking store
    try:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=reference, dst_path=destination))
    except mlflow.exceptions.MlflowException as error:
        raise ValueError(f"{reference}: not found in {tracking_uri} ({str(error).splitlines()[0]})") from None
    finally:
        mlflow.set_tracking_uri(previous)
    found = sorted(folder.glob("artifacts/*.ckpt"))
    if len(found) != 1:
        raise ValueError(f"{reference} is not a detr_ft model (logger.log_model): no weights .ckpt in its artifacts")
    return found[0]
