"""MLflow: the logger, run names and tags, end-of-run artifacts, failures, and looking runs up.

Conventions (read by detr_ft.compare too): one run per Hydra job; params are the flattened resolved config
(`train/learning_rate`, `module/backbone_learning_rate`); tags `strategy` (what ran), `strategy_preset`,
`schedule`, `dataset`, `model`, `sweep`, `git_commit`, `monitor`, `eval_weights` (ema | raw: what val/* scored),
`best_checkpoint`, `best_epoch`, `stop_reason`; failed runs are FAILED with `status_error`. A sweep's jobs are
children (`mlflow.parentRunId`) of a parent run tagged `detr_ft.kind=sweep` (detr_ft/sweep.py); the store
itself is made ready in detr_ft/tracking_store.py.
"""

import csv
import logging
import re
import subprocess
import tempfile
from pathlib import Path

import mlflow
from lightning_fabric.utilities.logger import _convert_params, _flatten_dict
from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import Logger, MLFlowLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from detr_ft import tracking_store

log = logging.getLogger(__name__)

COMPARISON_TAG = "detr_ft.kind"  # "comparison" (detr_ft.compare) or "sweep" (a multirun's parent run)
SWEEP_KIND = "sweep"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests a sweep's jobs under their parent
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")

# Short names for the overrides people sweep most, first in a run's name so names differ where runs do.
_SHORT_KEYS = {
    "train.learning_rate": "lr",
    "finetune_strategy": "strategy",
    "train.backbone_learning_rate": "blr",
    "train.unfreeze_backbone_at_epoch": "unfreeze",
    "train.batch_size": "bs",
    "train.epochs": "ep",
    "train.seed": "seed",
    "experiment": "exp",
}
_PATH_KEYS = ("dir", "path", "uri", "root", "images", "annotations", "resume_from")
_GROUPS = ("model", "data", "trainer")
NAME_LIMIT = 40  # short: the MLflow runs table shows about 20 characters before cutting


def _short_value(value: str) -> str:
    """`0.0002` -> `2e-4`, `1.0e-05` -> `1e-5`, `20` -> `20`, other text as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer() and abs(number) < 1e5 and "e" not in value.lower():
        return str(int(number))
    if 1e-3 <= abs(number) < 1e5:
        return f"{number:g}"
    mantissa, exponent = f"{number:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _describe(key: str, value: str) -> str:
    """A config group's choice speaks for itself (`frozen`, `detr_tiny`); a value gets its short key."""
    if key in _GROUPS or key in ("finetune_strategy", "experiment"):
        return value
    return f"{_SHORT_KEYS.get(key, key.rsplit('.', 1)[-1])}={_short_value(value)}"


def run_name_from_overrides(overrides: list[str], default: str, keys: set[str] | None = None) -> str:
    """`train.learning_rate=2e-4 finetune_strategy=frozen` -> `lr=2e-4, frozen`: the experiment's
    overrides (only `keys` when given: what a sweep varies), the usual swept keys first, at most NAME_LIMIT
    characters. Where things are stored (paths, logger, hydra) says nothing about the experiment."""
    pairs = {}  # the last value of a key given twice wins, as in Hydra
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if keys is not None and key not in keys:
            continue
        if key.startswith(("hydra.", "logger")) or key.endswith(_PATH_KEYS):
            continue
        pairs[key] = value
    order = list(_SHORT_KEYS) + list(_GROUPS)
    keys_in_order = sorted(pairs, key=lambda key: order.index(key) if key in order else len(order))
    name = ", ".join(_describe(key, pairs[key]) for key in keys_in_order)
    if len(name) > NAME_LIMIT:
        name = name[: NAME_LIMIT - 1].rsplit(", ", 1)[0] + ", …"
    return name or default


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
    tracking_uri: str,
    experiment_name: str,
    run_name: str,
    tags: dict[str, str],
    metrics_file: str | Path | None = None,
    resume_run_id: str | None = None,
    **_settings,
) -> "ResilientMLFlowLogger":
    """`logger=mlflow`: Lightning's MLFlowLogger on the configured store, made ready first (a server that does
    not answer stops the run here, before any data is read). `resume_run_id` continues that run. (The group's
    other keys, such as log_best_checkpoint, are read by the recipe.)"""
    if tracking_uri.startswith(("http://", "https://")):
        tracking_store.quick_http_failures()
    tracking_store.prepare_store(tracking_uri, experiment_name)
    return ResilientMLFlowLogger(
        experiment_name=experiment_name,
        tracking_uri=tracking_uri,
        run_name=run_name,
        tags={**tags, **tracking_store.owner_tags()},
        run_id=resume_run_id,
        metrics_file=metrics_file,
    )


class _GuardedClient:
    """The logger's MlflowClient, each call retried through sqlite's transient locks; once the run exists, a
    call that still fails (the server went away) is reported once and training goes on without MLflow."""

    def __init__(self, client: MlflowClient, logger: "ResilientMLFlowLogger"):
        self._client, self._logger = client, logger

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def guarded(*args, **kwargs):
            if self._logger.lost is not None:
                self._logger.not_logged[name] = self._logger.not_logged.get(name, 0) + 1
                return None
            try:
                return tracking_store.retry_when_locked(lambda: method(*args, **kwargs))
            except Exception as error:
                if not self._logger._initialized:
                    raise  # at start: fail, do not train unrecorded by surprise
                self._logger.lose_connection(name, error)
                return None

        return guarded


class ResilientMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that keeps a local record of every metric (`metrics_file`, CSV: step, name, value), reopens
    the run it resumes, and survives a tracking server that goes away mid-run: training, checkpoints and the
    local record go on, a warning says what was not logged, and `lost` says so at the end."""

    def __init__(self, *args, metrics_file: str | Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._mlflow_client = _GuardedClient(self._mlflow_client, self)
        self.metrics_file = Path(metrics_file) if metrics_file else None
        self.lost: str | None = None  # why MLflow stopped receiving, once it did
        self.not_logged: dict[str, int] = {}  # client calls skipped since then, by name
        self._resuming = kwargs.get("run_id") is not None
        self._last_step = 0

    @property
    @rank_zero_experiment
    def experiment(self) -> MlflowClient:
        first = not self._initialized
        client = super().experiment
        if first and self._resuming:
            self._reopen(client)
        return client

    def _reopen(self, client) -> None:
        """A resumed run is RUNNING again, owned by this process, without the stale run's error."""
        run = client.get_run(self._run_id)
        client.update_run(self._run_id, status="RUNNING")
        for key, value in {**(self.tags or {}), **tracking_store.owner_tags()}.items():
            client.set_tag(self._run_id, key, value)
        if "status_error" in run.data.tags:
            client.delete_tag(self._run_id, "status_error")
        self._logged_params = dict(run.data.params)

    def lose_connection(self, call: str, error: Exception) -> None:
        self.lost = f"{call} failed at step {self._last_step}: {type(error).__name__}: {str(error)[:300]}"
        self.not_logged[call] = self.not_logged.get(call, 0) + 1
        log.warning(
            "MLflow at %s stopped answering (%s). Training goes on; from here on metrics, tags and artifacts are "
            "NOT logged to MLflow%s.",
            self._tracking_uri,
            self.lost,
            f" (every metric stays in {self.metrics_file})" if self.metrics_file else "",
        )

    @rank_zero_only
    def log_metrics(self, metrics, step=None) -> None:
        self._last_step = step or 0
        if self.metrics_file is not None:
            self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
            new = not self.metrics_file.exists()
            with open(self.metrics_file, "a", newline="") as file:
                writer = csv.writer(file)
                if new:
                    writer.writerow(["step", "name", "value"])
                writer.writerows([step or 0, name, float(value)] for name, value in metrics.items())
        super().log_metrics(metrics, step)

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        """A resumed run already holds its params and MLflow refuses to change one: only new keys are logged;
        those the resume changed (its run folder, train.resume_from) are listed in the tag `resume_changed`."""
        if not self._resuming:
            return super().log_hyperparams(params)
        _ = self.experiment
        flat = _flatten_dict(_convert_params(params))
        old = getattr(self, "_logged_params", {})
        changed = sorted(k for k, v in flat.items() if k in old and old[k] != str(v)[:250])
        super().log_hyperparams({k: v for k, v in flat.items() if k not in old})
        if changed:
            self.experiment.set_tag(self.run_id, "resume_changed", ", ".join(changed)[:5000])

    def status_note(self) -> str | None:
        """What the end-of-run summary says when MLflow missed part of the run; None when it got everything."""
        if self.lost is None:
            return None
        skipped = ", ".join(f"{n} x{c}" for n, c in sorted(self.not_logged.items()))
        local = f"; every metric is in {self.metrics_file}" if self.metrics_file else ""
        return f"INCOMPLETE: {self.lost}; not logged: {skipped}{local}"


def run_reference(logger: MLFlowLogger | None) -> dict[str, str] | None:
    """What a checkpoint records so that a resume logs into the same run: {run_id, tracking_uri}."""
    if logger is None:
        return None
    return {"run_id": logger.run_id, "tracking_uri": logger._tracking_uri}


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
    """Runs by id (a sweep's parent run standing for its jobs), else the experiment's (optionally one sweep's,
    by its folder or its parent run's id): training runs only, never comparison or parent runs."""
    client = MlflowClient(tracking_uri)
    if sweep and _RUN_ID.match(sweep):
        run_ids, sweep = [sweep], None
    if run_ids:
        found = []
        for run in (client.get_run(run_id) for run_id in run_ids):
            found += child_runs(client, run) if run.data.tags.get(COMPARISON_TAG) == SWEEP_KIND else [run]
        return found
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no MLflow experiment named {experiment!r} in {tracking_uri}")
    query = f"tags.sweep = '{sweep}'" if sweep else ""
    runs = client.search_runs([found.experiment_id], filter_string=query, max_results=5000)
    return [r for r in runs if r.data.tags.get(COMPARISON_TAG) not in ("comparison", SWEEP_KIND)]


def child_runs(client: MlflowClient, parent) -> list:
    """The jobs of a sweep, given its parent run."""
    query = f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    return client.search_runs([parent.info.experiment_id], filter_string=query, max_results=5000)


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
