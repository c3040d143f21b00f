"""The MLflow store itself: made ready once (tables, experiment, its kind tag) however many jobs race to it,
checked for reachability before anything else runs, sqlite's transient locks retried, and runs whose process
died (kill -9, a lost node) closed as KILLED instead of staying RUNNING forever.

Jobs of a parallel sweep all open the same sqlite file: MLflow creates its tables and the experiment on first
use, and two processes doing that at once fail (`index ... already exists`, `UNIQUE constraint failed`). A file
lock beside the database serialises that first use; after it, sqlite handles concurrent writers itself, except
for `database is locked` under load, which `retry_when_locked` waits out.
"""

import fcntl
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# MLflow 3's UI opens an experiment of this kind on its training runs, not on the GenAI overview.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
HOST_TAG, PID_TAG = "detr_ft.host", "detr_ft.pid"  # which process owns a RUNNING run
REACHABLE_WITHIN_S = 5

T = TypeVar("T")


class TrackingUnavailable(RuntimeError):
    """The configured tracking server does not answer; raised before any data is read."""


def sqlite_path(tracking_uri: str) -> Path | None:
    """`sqlite:///mlflow.db` -> Path("mlflow.db"); None for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])


@contextmanager
def store_lock(tracking_uri: str):
    """An exclusive lock for a sqlite store's first use (a `.lock` file beside it); nothing for servers."""
    path = sqlite_path(tracking_uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def retry_when_locked(call: Callable[[], T], attempts: int = 12) -> T:
    """Run `call`, retrying sqlite's transient `database is locked` with a growing wait (about 30 s in all)."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:
            if "database is locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(min(0.1 * 2**attempt, 5.0))
    raise AssertionError("unreachable")


def check_reachable(tracking_uri: str) -> None:
    """A tracking server must answer its health check within seconds; otherwise stop now, saying what to do
    (MLflow's own client would retry for minutes before failing with a long traceback)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=REACHABLE_WITHIN_S).close()
    except (urllib.error.URLError, OSError) as error:
        cause = getattr(error, "reason", error)
        raise TrackingUnavailable(
            f"MLflow tracking server {tracking_uri} is not reachable ({cause}). Start it "
            f"(mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db), "
            "fix logger.tracking_uri, log to a local file instead (logger.tracking_uri=sqlite:///mlflow.db), "
            "or run without tracking (logger=none)."
        ) from None


class TrackingStoreUnusable(RuntimeError):
    """The sqlite store cannot be read or written (not a database, read-only); raised before any data is read."""


SQLITE_HEADER = b"SQLite format 3\x00"
_UNUSABLE = ("not a database", "readonly database", "unable to open database", "disk i/o error", "malformed")


def _unusable(tracking_uri: str, cause: str) -> TrackingStoreUnusable:
    return TrackingStoreUnusable(
        f"the MLflow store {tracking_uri} cannot be used ({cause}). Move or repair it, log to another file "
        "(logger.tracking_uri=sqlite:///other.db), or run without tracking (logger=none)."
    )


@contextmanager
def usable_sqlite_store(tracking_uri: str):
    """Around a sqlite store's first use: a file that is no database is named at once, and sqlite's own errors
    for a damaged or read-only store become one message naming the keys to change."""
    path = sqlite_path(tracking_uri)
    if path is not None and path.is_file() and path.stat().st_size:
        with path.open("rb") as file:
            if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise _unusable(tracking_uri, f"{path} is not an sqlite database")
    try:
        yield
    except Exception as error:
        if path is None or not any(text in str(error).lower() for text in _UNUSABLE):
            raise
        raise _unusable(tracking_uri, str(error).splitlines()[0][:300]) from None


def quick_http_failures() -> None:
    """A server that goes away mid-run should cost seconds, not MLflow's default minutes of retries per call
    (the user's own MLFLOW_HTTP_* settings win)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")


def prepare_store(tracking_uri: str, experiment_name: str) -> str:
    """Create the store's tables and the experiment if missing, tag the experiment's kind, close runs whose
    process is gone; safe to call from any number of processes at once. -> the experiment id."""
    check_reachable(tracking_uri)
    with usable_sqlite_store(tracking_uri), store_lock(tracking_uri):
        client = retry_when_locked(lambda: MlflowClient(tracking_uri))  # a new sqlite file gets its tables here
        experiment = retry_when_locked(lambda: client.get_experiment_by_name(experiment_name))
        if experiment is None:
            experiment_id = retry_when_locked(lambda: client.create_experiment(experiment_name))
        else:
            experiment_id = experiment.experiment_id
        if experiment is None or experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
            retry_when_locked(lambda: client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND))
    close_stale_runs(client, experiment_id)
    return experiment_id


# ---- runs whose process is gone ---------------------------------------------------------------------------
def owner_tags() -> dict[str, str]:
    """Tags naming the process that owns a run while it is RUNNING."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds that id
    return True


def is_stale(run) -> bool:
    """A RUNNING run owned by a process of this host that no longer exists. Runs of other hosts are left
    alone: their processes cannot be checked from here."""
    tags = run.data.tags
    if run.info.status != "RUNNING" or tags.get(HOST_TAG) != socket.gethostname() or PID_TAG not in tags:
        return False
    pid = int(tags[PID_TAG])
    return pid != os.getpid() and not _process_alive(pid)


def close_stale_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED every RUNNING run of the experiment whose process is gone. -> their ids."""
    running = retry_when_locked(
        lambda: client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    )
    closed = []
    for run in running:
        if is_stale(run):
            close_as_killed(client, run)
            closed.append(run.info.run_id)
    return closed


def close_as_killed(client: MlflowClient, run) -> None:
    tags = run.data.tags
    reason = f"process {tags[PID_TAG]} on {tags[HOST_TAG]} ended without closing the run (killed?)"
    log.warning(
        "MLflow run %s (%s) was left RUNNING: %s; marking it KILLED", run.info.run_id, run.info.run_name, reason
    )
    retry_when_locked(lambda: client.set_tag(run.info.run_id, "status_error", reason))
    retry_when_locked(lambda: client.set_terminated(run.info.run_id, status="KILLED"))
