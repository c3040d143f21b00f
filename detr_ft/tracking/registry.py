"""The Model Registry: a logged model registered as a version tagged with its run's best val/mAP; the alias
`@best` moves to it only when that beats the value stored on the alias's current version, so a worse sweep never
takes the alias away. A sweep registers its best job's model (inference/model_logging.py logs each job's)."""

import logging
from contextlib import contextmanager

import mlflow
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

MODEL_TAG = "model_uri"  # the run's tag naming its logged model
ALIAS = "best"
METRIC = "val/mAP"  # what the alias compares (higher is better), stored as a tag of each version


@contextmanager
def using_tracking_uri(uri: str):
    """MLflow's model logging reads the global tracking URI; set it for the call only."""
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def register(tracking_uri: str, model_uri: str, name: str, value: float | None) -> tuple[str, bool]:
    """A new version of registered model `name` from `model_uri`, tagged with its val/mAP; `@best` moves to it
    when it beats the alias's version (or no version holds the alias) -> (version, whether the alias moved)."""
    with using_tracking_uri(tracking_uri):
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
