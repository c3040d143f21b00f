"""Looking runs up in MLflow: a sweep's or an experiment's runs, and a run's checkpoint."""

import re
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
COMPARISON_TAG = "detr_ft.kind"


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
