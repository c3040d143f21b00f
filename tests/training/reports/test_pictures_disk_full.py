"""A disk that fills mid-run is not worth a run for pictures: the prediction-picture writer warns once, naming
the folder and the keys to change, and training goes on to its checkpoints."""

import errno
import logging
from pathlib import Path

from detr_ft.train import train
from detr_ft.training.reports import prediction_pictures as pictures


def test_a_picture_that_cannot_be_written_is_warned_once_and_the_run_goes_on(tiny_cfg, monkeypatch, caplog):
    tries = []

    def disk_full(path, *args, **kwargs):
        tries.append(path)
        Path(path).write_bytes(b"\x89PNG half")  # what a full disk leaves behind
        raise OSError(errno.ENOSPC, "No space left on device")

    def grid_on_a_full_disk(*args, **kwargs):
        picture = real(*args, **kwargs)
        picture.save = disk_full  # only the prediction pictures' writes fail (the data generator's do not)
        return picture

    real = pictures.prediction_grid
    monkeypatch.setattr(pictures, "prediction_grid", grid_on_a_full_disk)
    with caplog.at_level(logging.WARNING, logger="detr_ft.training.reports.prediction_pictures"):
        summary = train(tiny_cfg("train.epochs=2", pictures=True))
    assert Path(summary.last_checkpoint).is_file()  # the run finished
    assert len(tries) == 1  # warned once, then no more tried
    warnings = [r.getMessage() for r in caplog.records if r.name == "detr_ft.training.reports.prediction_pictures"]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert "predictions" in warnings[0] and "callbacks.prediction_pictures=null" in warnings[0]
    assert not Path(tries[0]).exists()  # no half-written picture left
