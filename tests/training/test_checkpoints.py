"""The .ckpt file through its one owner (detr_ft.training.checkpoints): what a run writes, reading it for
fine-tuning and resume, the weights-only export, and writes that never leave a half-written file."""

import pickle

import pytest
import torch
from omegaconf import OmegaConf

from detr_ft.model.checkpoints import CheckpointError, load_weights
from detr_ft.train import train
from detr_ft.training import checkpoints
from tests.model.helpers import tiny_detr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_cache):
    from tests.conftest import compose_config

    return train(compose_config([], tmp_path_factory.mktemp("ckpt") / "run", data_cache))


def test_a_runs_checkpoints_hold_weights_config_and_category_map_as_plain_types(tiny_run):
    for path in (tiny_run.best_checkpoint, tiny_run.last_checkpoint):
        raw = torch.load(path, weights_only=True)  # plain types only: nothing in the file runs code
        checkpoint = checkpoints.read(path)
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
    exported = checkpoints.export_weights(tiny_run.last_checkpoint, tmp_path / "small.ckpt", half=True)
    copy, original = checkpoints.read(exported), checkpoints.read(tiny_run.last_checkpoint)
    assert not copy.resumable and copy.config_yaml == original.config_yaml
    assert all(
        copy.model_state[k].dtype == torch.float16
        for k in copy.model_state
        if original.model_state[k].is_floating_point()
    )
    assert exported.stat().st_size < 0.6 * original.path.stat().st_size  # no optimizer state, half precision
    with pytest.raises(CheckpointError, match="train.checkpoint_path instead"):
        checkpoints.check_resumable(exported)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        checkpoints.export_weights(tiny_run.last_checkpoint, exported)


def test_a_failed_write_leaves_the_previous_file_whole_and_no_temporary(tmp_path):
    path = checkpoints.save_atomically({"weights": torch.ones(3)}, tmp_path / "last.ckpt")
    before = path.read_bytes()
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):  # a lambda does not pickle
        checkpoints.save_atomically({"weights": torch.zeros(3), "not_a_tensor": lambda: None}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_official_or_hugging_face_file_reads_as_its_layout(tmp_path):
    source = tiny_detr()
    path = tmp_path / "detr.pth"
    state = {k.replace("class_head.", "class_embed."): v for k, v in source.state_dict().items()}
    torch.save({"model": state}, path)
    checkpoint = checkpoints.read(path)
    assert checkpoint.source_format == "official" and not checkpoint.resumable and checkpoint.config_yaml is None
    assert torch.equal(checkpoint.model_state["class_head.weight"], source.class_head.weight)
