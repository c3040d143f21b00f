"""The MLflow logger of a training run: Lightning's MLFlowLogger on a store made ready first, that reopens the
run it resumes and survives a tracking server that goes away mid-run."""

import logging
from collections.abc import Mapping

from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from detr_ft.tracking import store

log = logging.getLogger(__name__)


def mlflow_logger(
    tracking_uri: str, experiment_name: str, run_name: str, tags: dict[str, str], resume_run_id: str | None = None, **_
) -> "ResilientMLFlowLogger":
    """`logger=mlflow`: Lightning's MLFlowLogger on the configured store, made ready first (a server that does
    not answer stops the run here, before any data is read). `resume_run_id` continues that run. (The group's
    other keys, such as log_best_checkpoint, are read by the recipe.)"""
    if tracking_uri.startswith(("http://", "https://")):
        store.quick_http_failures()
    store.prepare_store(tracking_uri, experiment_name)
    return ResilientMLFlowLogger(
        experiment_name=experiment_name,
        tracking_uri=tracking_uri,
        run_name=run_name,
        tags={**tags, **store.owner_tags()},
        run_id=resume_run_id,
    )


def no_logger(**_settings) -> None:
    """`logger=none`: nothing is recorded (its tracking_uri is still where run ids are looked up)."""
    return None


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
                return store.retry_when_locked(lambda: method(*args, **kwargs))
            except Exception as error:
                if not self._logger.started:
                    raise  # at start: fail, do not train unrecorded by surprise
                self._logger.lose_connection(name, error)
                return None

        return guarded


class ResilientMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that reopens the run it resumes and survives a tracking server that goes away mid-run:
    training, checkpoints and the other loggers (the run folder's metrics.csv) go on, a warning says what was
    not logged, and `lost` says so at the end."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Lightning has no public way to give MLFlowLogger its client; every call, run creation included,
        # must go through the guard (tested with pytorch-lightning 2.6).
        self._mlflow_client = _GuardedClient(self._mlflow_client, self)
        self.tracking_uri: str = kwargs["tracking_uri"]
        self.started = False  # the run exists: from here a failing call no longer stops training
        self.lost: str | None = None  # why MLflow stopped receiving, once it did
        self.not_logged: dict[str, int] = {}  # client calls skipped since then, by name
        self._resuming = kwargs.get("run_id") is not None
        self._params_before_resume: dict[str, str] = {}
        self._last_step = 0

    @property
    @rank_zero_experiment
    def experiment(self) -> MlflowClient:
        client = super().experiment
        if not self.started:
            self.started = True
            if self._resuming:
                self._reopen(client)
        return client

    def _reopen(self, client) -> None:
        """A resumed run is RUNNING again, owned by this process, without the stale run's error."""
        run_id = self.run_id
        run = client.get_run(run_id)
        client.update_run(run_id, status="RUNNING")
        for key, value in {**(self.tags or {}), **store.owner_tags()}.items():
            client.set_tag(run_id, key, value)
        if "status_error" in run.data.tags:
            client.delete_tag(run_id, "status_error")
        self._params_before_resume = dict(run.data.params)

    def lose_connection(self, call: str, error: Exception) -> None:
        self.lost = f"{call} failed at step {self._last_step}: {type(error).__name__}: {str(error)[:300]}"
        self.not_logged[call] = self.not_logged.get(call, 0) + 1
        log.warning(
            "MLflow at %s stopped answering (%s). Training goes on; from here on metrics, tags and artifacts are "
            "NOT logged to MLflow (the run folder's metrics.csv keeps every metric).",
            self.tracking_uri,
            self.lost,
        )

    @rank_zero_only
    def log_metrics(self, metrics, step=None) -> None:
        self._last_step = step or 0
        super().log_metrics(metrics, step)

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        """A resumed run already holds its params and MLflow refuses to change one: only new keys are logged;
        those the resume changed (its run folder, train.resume_from) are listed in the tag `resume_changed`."""
        if not self._resuming:
            return super().log_hyperparams(params)
        _ = self.experiment
        flat = flat_params(dict(params or {}))
        old = self._params_before_resume
        changed = sorted(k for k, v in flat.items() if k in old and old[k] != str(v)[:250])
        super().log_hyperparams({k: v for k, v in flat.items() if k not in old})
        if changed:
            self.experiment.set_tag(self.run_id, "resume_changed", ", ".join(changed)[:5000])

    def status_note(self) -> str | None:
        """What the end-of-run summary says when MLflow missed part of the run; None when it got everything."""
        if self.lost is None:
            return None
        skipped = ", ".join(f"{n} x{c}" for n, c in sorted(self.not_logged.items()))
        return f"INCOMPLETE: {self.lost}; not logged: {skipped}; every metric is in the run folder's metrics.csv"


def run_reference(logger: ResilientMLFlowLogger | None) -> dict[str, str] | None:
    """What a checkpoint records so that a resume logs into the same run: {run_id, tracking_uri}."""
    if logger is None:
        return None
    return {"run_id": logger.run_id, "tracking_uri": logger.tracking_uri}


def flat_params(params: Mapping, parent: str = "") -> dict:
    """Nested params with their keys joined by "/" (train/learning_rate), as Lightning's MLflow logger logs them:
    a list of mappings counts as one (trainer/logger/0/save_dir), so a resume compares the keys it logged."""
    flat = {}
    for key, value in params.items():
        name = f"{parent}/{key}" if parent else str(key)
        if isinstance(value, list) and all(isinstance(item, Mapping) for item in value):
            value = {str(index): item for index, item in enumerate(value)}
        flat |= flat_params(value, name) if isinstance(value, Mapping) else {name: value}
    return flat
