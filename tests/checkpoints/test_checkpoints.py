"""The .ckpt file through its one owner (detr_ft.checkpoints.checkpoint_file): what a run writes, reading it for
fine-tuning and resume, the weights-only export, and writes that never leave a half-written file."""

import errno
import pickle
import shutil
import signal
import subprocess
import sys
import time

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from detr_ft.checkpoints import checkpoint_file
from detr_ft.checkpoints.resume import read_resumable
from detr_ft.checkpoints.safe_read import CheckpointError
from detr_ft.checkpoints.weight_loading import load_weights
from detr_ft.train import train
from detr_ft.training.guards import run_folder
from tests.model.helpers import tiny_detr


def test_a_runs_checkpoints_hold_weights_config_and_category_map_as_plain_types(tiny_run):
    for path in (tiny_run.best_checkpoint, tiny_run.last_checkpoint):
        raw = torch.load(path, weights_only=True)  # plain types only: nothing in the file runs code
        checkpoint = checkpoint_file.read(path)
        assert checkpoint.source_format == "detr_ft" and checkpoint.resumable
        assert OmegaConf.create(checkpoint.config_yaml).model.backbone.name == "resnet18"
        assert checkpoint.category_map["names"] == ["circle", "square", "triangle", "cross"]
        assert set(checkpoint.model_state) == {
            k.removeprefix("model.") for k in raw["state_dict"] if k.startswith("model.")
        }
        model = tiny_detr_like(checkpoint)
        assert not load_weights(model, checkpoint.model_state).missing


def tiny_detr_like(checkpoint):
    from hydra.utils import instantiate

    config = OmegaConf.create(checkpoint.config_yaml)
    return instantiate(config.model, num_classes=len(checkpoint.category_map["names"]))


def test_the_export_is_a_small_weights_only_copy_that_cannot_be_resumed(tiny_run, tmp_path):
    exported = checkpoint_file.export_weights(tiny_run.last_checkpoint, tmp_path / "small.ckpt", half=True)
    copy, original = checkpoint_file.read(exported), checkpoint_file.read(tiny_run.last_checkpoint)
    assert not copy.resumable and copy.config_yaml == original.config_yaml
    assert all(
        copy.model_state[k].dtype == torch.float16
        for k in copy.model_state
        if original.model_state[k].is_floating_point()
    )
    assert exported.stat().st_size < 0.6 * original.path.stat().st_size  # no optimizer state, half precision
    with pytest.raises(CheckpointError, match="train.checkpoint_path instead"):
        read_resumable(exported)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        checkpoint_file.export_weights(tiny_run.last_checkpoint, exported)


def test_a_failed_write_leaves_the_previous_file_whole_and_no_temporary(tmp_path):
    path = checkpoint_file.save_atomically({"weights": torch.ones(3)}, tmp_path / "last.ckpt")
    before = path.read_bytes()
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):  # a lambda does not pickle
        checkpoint_file.save_atomically({"weights": torch.zeros(3), "not_a_tensor": lambda: None}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_official_or_hugging_face_file_reads_as_its_layout(tmp_path):
    source = tiny_detr()
    path = tmp_path / "detr.pth"
    state = {k.replace("class_head.", "class_embed."): v for k, v in source.state_dict().items()}
    torch.save({"model": state}, path)
    checkpoint = checkpoint_file.read(path)
    assert checkpoint.source_format == "official" and not checkpoint.resumable and checkpoint.config_yaml is None
    assert torch.equal(checkpoint.model_state["class_head.weight"], source.class_head.weight)


def test_a_disk_full_write_keeps_the_previous_file_and_says_so(tmp_path, monkeypatch):
    path = checkpoint_file.save_atomically({"weights": torch.ones(3)}, tmp_path / "last.ckpt")
    before = path.read_bytes()

    def half_then_disk_full(contents, file):
        file.write(b"\x00" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_file.torch, "save", half_then_disk_full)
    with pytest.raises(OSError, match="No space left.*previous file is intact"):
        checkpoint_file.save_atomically({"weights": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


KILLED_WRITER = """
import sys, time, torch
from detr_ft.checkpoints import checkpoint_file
from detr_ft.training.guards import run_folder
def slow_save(contents, file):
    file.write(b"half of a checkpoint")
    file.flush()
    open(sys.argv[2], "w").close()  # tell the test the write is under way
    time.sleep(600)
checkpoint_file.torch.save = slow_save
checkpoint_file.save_atomically({"weights": torch.zeros(3)}, sys.argv[1])
"""


def test_a_write_killed_midway_leaves_the_previous_file_whole(tmp_path):
    path = checkpoint_file.save_atomically({"weights": torch.ones(3)}, tmp_path / "last.ckpt")
    started = tmp_path / "started"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(started)])
    deadline = time.monotonic() + 120
    while not started.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the writer never started writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=60)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(3))
    assert checkpoint_file.in_run_folder(tmp_path, "last") == path  # the partial .tmp is never taken for last.ckpt


class FitStarted(pl.Callback):
    started = False

    def on_fit_start(self, trainer, pl_module):
        self.started = True


def test_an_unwritable_checkpoint_folder_fails_before_training(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "checkpoints").write_text("a file where the folder should be")
    fit = FitStarted()
    with pytest.raises(OSError, match=r"cannot write checkpoints to .*run1/checkpoints.*hydra.run.dir"):
        train(cfg, callbacks=[fit])
    assert not fit.started


def test_too_little_free_space_fails_before_training(tiny_cfg, monkeypatch):
    monkeypatch.setattr(run_folder.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10**12, 10**12, 0))
    fit = FitStarted()
    with pytest.raises(OSError, match=r"has 0 MiB free but this model's checkpoints need about \d+ MiB"):
        train(tiny_cfg(), callbacks=[fit])
    assert not fit.started
