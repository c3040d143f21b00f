"""The MLflow store made ready by racing processes, sqlite's transient locks retried, runs whose process died
closed as KILLED, and a tracking server that does not answer refused at once with what to do."""

import multiprocessing
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from detr_ft.tracking import store


def _prepare(uri: str, queue) -> None:
    try:
        queue.put(store.prepare_store(uri, "detr_ft"))
    except Exception as error:  # reported to the test, which shows it
        queue.put(f"{type(error).__name__}: {error}")


def test_processes_racing_to_a_fresh_sqlite_store_all_get_the_one_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as parallel jobs are
    queue = context.Queue()
    workers = [context.Process(target=_prepare, args=(uri, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=240) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert len(set(results)) == 1 and results[0].isdigit(), results
    experiment = MlflowClient(uri).get_experiment_by_name("detr_ft")
    assert experiment.experiment_id == results[0]
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_database_is_locked_is_waited_out_and_other_errors_are_not(monkeypatch):
    monkeypatch.setattr(store.time, "sleep", lambda seconds: None)
    calls = []

    def locked_twice():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "done"

    assert store.retry_when_locked(locked_twice) == "done" and len(calls) == 3
    with pytest.raises(ValueError):
        store.retry_when_locked(lambda: (_ for _ in ()).throw(ValueError("no such table")))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_running_run_whose_process_is_gone_is_closed_as_killed_and_a_live_ones_is_not(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = store.prepare_store(uri, "detr_ft")
    client = MlflowClient(uri)
    owner = store.owner_tags()
    dead = client.create_run(experiment_id, tags={**owner, store.PID_TAG: str(_dead_pid())})
    alive = client.create_run(experiment_id, tags={**owner, store.PID_TAG: str(os.getppid())})
    elsewhere = client.create_run(experiment_id, tags={**owner, store.HOST_TAG: "another-host"})

    store.prepare_store(uri, "detr_ft")  # what every later job does first

    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    assert "ended without closing the run" in client.get_run(dead.info.run_id).data.tags["status_error"]
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    assert client.get_run(elsewhere.info.run_id).info.status == "RUNNING"  # cannot be checked from here


def test_an_unreachable_tracking_server_is_refused_with_the_fixes():
    with pytest.raises(store.TrackingUnavailable) as refused:
        store.prepare_store("http://127.0.0.1:9", "detr_ft")
    message = str(refused.value)
    assert "http://127.0.0.1:9" in message and "refused" in message.lower()
    for fix in ("mlflow server", "logger.tracking_uri=sqlite:///mlflow.db", "logger=none"):
        assert fix in message
