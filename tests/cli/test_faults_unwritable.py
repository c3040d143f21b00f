"""Unwritable places name the key to change: a run folder that cannot be created (`hydra.run.dir`), an MLflow
store that is no database or is read-only (`logger.tracking_uri`, `logger=none`), each before any data is read."""

import pytest

from detr_ft.tracking import store
from detr_ft.train import train
from tests.conftest import TINY_OVERRIDES, run_cli


def test_a_run_folder_that_cannot_be_created_names_hydra_run_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_cli(["-m", "detr_ft", *TINY_OVERRIDES, f"hydra.run.dir={blocker}/run"], cwd=tmp_path)
    assert result.returncode != 0
    assert f"cannot write to the run folder {blocker}/run" in result.stderr and "hydra.run.dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_store_file_that_is_no_database_names_the_keys_to_change(tiny_cfg, tmp_path):
    (tmp_path / "mlflow.db").write_bytes(b"these bytes are no sqlite file" * 10)
    cfg = tiny_cfg("logger=mlflow", f"logger.tracking_uri=sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(Exception) as raised:
        train(cfg)
    message = str(raised.value)
    assert "is not an sqlite database" in message
    assert "logger.tracking_uri=" in message and "logger=none" in message


def test_a_read_only_store_names_the_keys_to_change(tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def read_only(uri):  # what sqlite says when its file or folder cannot be written (root ignores chmod)
        raise OperationalError("INSERT INTO experiments", {}, Exception("attempt to write a readonly database"))

    monkeypatch.setattr(store, "MlflowClient", read_only)
    with pytest.raises(store.TrackingStoreUnusable, match="readonly database.*logger.tracking_uri=.*logger=none"):
        store.prepare_store(f"sqlite:///{tmp_path}/mlflow.db", "detr_ft")
