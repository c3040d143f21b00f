"""A multirun is one thing in MLflow: a parent run (named after the experiment and the sweep's start time) whose
jobs are nested child runs, each named by what it varies (`lr=2e-4, frozen`). The parent holds the
sweep's comparison table and plot and the best job's id, metric and checkpoint, updated as each job ends, so it
is right even when the sweep is interrupted.

`MlflowSweep` is a Hydra callback (conf/config.yaml, hydra.callbacks): before any job starts it makes the store
ready (so parallel jobs never race to create it) and creates the parent; it hands the parent's id to the jobs
through a small file in the sweep folder, which every launcher's workers can read (environment variables do
not reach loky or SLURM workers). Each job updates the parent when it ends; the sweep's end closes it FINISHED,
or FAILED (a job failed) or KILLED (interrupted) when the sweep stops early.
"""

import atexit
import fcntl
import logging
import time
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from detr_ft.tracking import comparison, registry, store
from detr_ft.tracking.lookup import child_runs
from detr_ft.tracking.names import SWEEP_FILE, read_record, sweep_record, swept_keys, write_record
from detr_ft.tracking.recording import git_commit
from detr_ft.tracking.tags import KIND_TAG, PARENT_TAG, SWEEP_KIND

log = logging.getLogger(__name__)

METRIC = "val/mAP"


def _uses_mlflow(config: DictConfig) -> bool:
    return str(config.logger.get("_target_", "")).endswith("mlflow_logger")


class MlflowSweep(Callback):
    """Hydra callback: the sweep's parent run, from before the first job to after the last."""

    def __init__(self):
        self._closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if not _uses_mlflow(config):
            return
        uri, experiment = config.logger.tracking_uri, config.logger.experiment_name
        experiment_id = store.prepare_store(uri, experiment)  # once, before the jobs race to it
        sweep_dir = Path(str(config.hydra.sweep.dir))
        keys = swept_keys(config)
        # Short, as the runs table cuts names at about 20 characters; what it sweeps is in the tag `swept`.
        name = f"{config.hydra.runtime.choices.get('experiment') or 'sweep'} {time.strftime('%m-%d %H:%M')}"
        client = MlflowClient(uri)
        parent = store.retry_when_locked(
            lambda: client.create_run(
                experiment_id,
                run_name=name[:250],
                tags={
                    KIND_TAG: SWEEP_KIND,
                    "sweep": str(sweep_dir),
                    "swept": ", ".join(keys),
                    "git_commit": git_commit(),
                    **store.owner_tags(),
                },
            )
        )
        record = {"run_id": parent.info.run_id, "tracking_uri": uri, "swept": keys, "sweep_dir": str(sweep_dir)}
        write_record(sweep_dir, record)
        log.info("MLflow: sweep %r is parent run %s in %s", name, parent.info.run_id, uri)
        atexit.register(self._close_if_interrupted, sweep_dir)

    def on_job_end(self, config: DictConfig, job_return=None, **kwargs) -> None:
        record = sweep_record()
        if record is not None:
            try:
                update_parent(record)
            except Exception as error:  # the job's own result matters more than the parent's summary
                log.warning("could not update the sweep's parent run %s: %s", record["run_id"], error)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        record = read_record(Path(str(config.hydra.sweep.dir)))
        if record is not None:
            update_parent(record)
            if config.logger.get("register_model"):
                _register_best_job(record, config.logger.register_model)
            _terminate(record, "FINISHED")
            self._closed = True

    def _close_if_interrupted(self, sweep_dir: Path) -> None:
        """At interpreter exit without on_multirun_end: Hydra stopped on a failed job, or the user interrupted."""
        record = read_record(sweep_dir)
        if self._closed or record is None:
            return
        try:
            children = update_parent(record)
            failed = [run.info.run_name for run in children if run.info.status == "FAILED"]
            status = "FAILED" if failed else "KILLED"
            reason = f"failed jobs: {', '.join(failed)}" if failed else "the sweep stopped before its last job"
            _terminate(record, status, reason)
        except Exception as error:
            log.warning("could not close the sweep's parent run %s: %s", record["run_id"], error)


def after_resumed_job(logger) -> None:
    """A sweep's job resumed on its own (not in a multirun) updates its sweep's parent run when it ends."""
    if logger is None or getattr(logger, "lost", None) or sweep_record() is not None:
        return  # no MLflow, MLflow gone, or a multirun's job (on_job_end updates the parent)
    tags = logger.experiment.get_run(logger.run_id).data.tags
    record = read_record(Path(tags["sweep"])) if "sweep" in tags else None
    if record is not None and record["run_id"] == tags.get(PARENT_TAG):
        update_parent(record)


@contextmanager
def _locked(sweep_dir: Path):
    """One job at a time updates the parent, so the last one to finish writes the complete table."""
    with open(sweep_dir / (SWEEP_FILE + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_parent(record: dict) -> list:
    """Write the sweep's comparison (table and plot of every job so far) and the best job into the parent run.
    -> the child runs."""
    client = MlflowClient(record["tracking_uri"])
    sweep_dir = Path(record["sweep_dir"])
    with _locked(sweep_dir):
        parent = store.retry_when_locked(lambda: client.get_run(record["run_id"]))
        children = store.retry_when_locked(lambda: child_runs(client, parent))
        if not children:
            return children
        rows = comparison.collect_rows(client, children, METRIC)
        folder = sweep_dir / "comparison"
        folder.mkdir(exist_ok=True)
        table = folder / "runs.txt"
        text = comparison.format_table(rows, METRIC)
        groups = comparison.seed_groups(rows)
        if comparison.has_seed_repeats(groups):  # jobs that differ only by train.seed, grouped
            text += "\n\n" + comparison.format_seed_table(groups, METRIC)
        table.write_text(text + "\n")
        plot = comparison.plot_curves(rows, METRIC, parent.info.run_name, folder / f"{METRIC.replace('/', '_')}.png")
        for path in (table, plot):
            store.retry_when_locked(
                lambda p=path: client.log_artifact(record["run_id"], str(p), artifact_path="comparison")
            )
        ended = sum(run.info.status != "RUNNING" for run in children)
        tags = {"jobs": f"{ended} ended of {len(children)} started"}
        best = rows[0] if rows and rows[0]["best"] is not None else None
        if best is not None:
            tags |= {
                "best_run_id": best["run_id"],
                "best_run_name": best["name"],
                f"best_{METRIC}": f"{best['best']:.4f}",
                "best_epoch": str(best["best_epoch"]),
                "best_checkpoint": best["checkpoint"],
            }
        for key, value in tags.items():
            store.retry_when_locked(lambda k=key, v=value: client.set_tag(record["run_id"], k, v))
    return children


def _register_best_job(record: dict, name: str) -> None:
    """The sweep's best job's model into the registry; @best moves only when it beats the alias's version."""
    try:
        registry.register_sweep_best(record["tracking_uri"], record["run_id"], name)
    except Exception as error:  # e.g. the jobs ran with logger.log_model=none: the sweep itself still finished
        log.warning("could not register the sweep's best job as %r: %s", name, error)


def _terminate(record: dict, status: str, reason: str | None = None) -> None:
    client = MlflowClient(record["tracking_uri"])
    if reason:
        store.retry_when_locked(lambda: client.set_tag(record["run_id"], "status_error", reason))
    store.retry_when_locked(lambda: client.set_terminated(record["run_id"], status=status))
    log.info("MLflow: sweep parent run %s is %s", record["run_id"], status)
