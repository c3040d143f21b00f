"""A resumed run logs only the params it does not hold yet, so its keys must be the ones Lightning's MLflow logger
logged the first time: lists of mappings count as mappings (trainer/logger/0/save_dir)."""

from lightning_fabric.utilities.logger import _flatten_dict

from detr_ft.tracking.logger import flat_params


def test_params_are_flattened_to_the_keys_lightning_logs():
    params = {
        "trainer": {"logger": [{"save_dir": "/runs/a", "name": "csv"}], "devices": [0, 1]},
        "train": {"learning_rate": 2e-4, "lr_drop_epochs": [], "resume_from": None},
        "callbacks": {},
    }
    assert flat_params(params) == _flatten_dict(params)
    assert flat_params(params)["trainer/logger/0/save_dir"] == "/runs/a"
