"""Where fine-tuning weights come from, and every bad-checkpoint case failing before training."""

import pytest
import torch

from detr_ft.model.checkpoints import CheckpointError
from detr_ft.train import train


def test_missing_checkpoint_fails_before_any_data_is_read(tiny_cfg, tmp_path):
    cfg = tiny_cfg(f"train.checkpoint_path={tmp_path}/nope.ckpt", f"data.cache_dir={tmp_path}/fresh_cache")
    with pytest.raises(CheckpointError, match="nope.ckpt"):
        train(cfg)
    assert not (tmp_path / "fresh_cache").exists()


def test_checkpoint_that_needs_pickled_code_is_refused(tiny_cfg, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": ValueError("runs code on load")}, path)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        train(tiny_cfg(f"train.checkpoint_path={path}"))


def test_resume_from_a_weights_only_file_is_refused(tiny_cfg, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="train.checkpoint_path instead"):
        train(tiny_cfg(f"train.resume_from={path}"))


def test_finetune_onto_another_class_count_reinitialises_the_class_head(tiny_cfg):
    pretrained = train(tiny_cfg("data=synthetic"))
    summary = train(tiny_cfg("data=synthetic_v2", f"train.checkpoint_path={pretrained.last_checkpoint}"))
    assert summary.class_head == "re-initialised"
    same_classes = train(tiny_cfg("data=synthetic", f"train.checkpoint_path={pretrained.last_checkpoint}"))
    assert same_classes.class_head == "loaded"


def test_checkpoint_of_another_architecture_fails_naming_the_path(tiny_cfg):
    tiny = train(tiny_cfg())
    with pytest.raises(CheckpointError, match="last.ckpt"):
        train(tiny_cfg("model.transformer.d_model=48", f"train.checkpoint_path={tiny.last_checkpoint}"))


def test_a_run_folder_with_checkpoints_is_never_overwritten(tiny_cfg):
    first = train(tiny_cfg())
    from pathlib import Path

    from detr_ft.train import _refuse_to_overwrite_checkpoints

    with pytest.raises(FileExistsError, match="resume_from"):
        _refuse_to_overwrite_checkpoints(Path(first.run_dir), resuming=False)
