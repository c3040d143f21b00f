"""Training runs the validator when it builds the datamodule: a broken COCO folder stops `train()` with the
DatasetError naming the file, the annotation and the key, before the trainer exists (so before any training
step and any checkpoint); the same folder unbroken trains. Also data=coco given only its four paths."""

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import open_dict

from detr_ft.config.schema import config_dir
from detr_ft.data.checks.split import DatasetError
from detr_ft.train import train
from tests.data.tiny_coco import write_tiny_coco


class StepCounter(pl.Callback):
    def __init__(self):
        self.steps = 0

    def on_train_batch_start(self, *args):
        self.steps += 1


def _coco_config(tiny_cfg, images, annotations):
    """The tiny setup (model=detr_tiny, trainer=cpu, logger=none, train.epochs=1) on a COCO folder."""
    cfg = tiny_cfg("train.batch_size=3")
    with open_dict(cfg):
        cfg.data = {
            "_target_": "detr_ft.data.DetectionDataModule",
            "name": "coco",
            "train_images": str(images),
            "train_annotations": str(annotations),
            "val_images": str(images),
            "val_annotations": str(annotations),
            "train_scales": [64],
            "max_size": 64,
            "eval_scale": 64,
            "crop": False,
            "batch_size": 3,  # the data node carries the loader's settings (train.* interpolated there)
            "num_workers": 0,
        }
    return cfg


def test_a_bad_box_stops_training_before_any_step_and_the_same_folder_unbroken_trains(tiny_cfg, tmp_path):
    def negative_width(data):
        data["annotations"][2]["bbox"] = [8, 8, -24, 20]

    images, annotations = write_tiny_coco(tmp_path / "broken", negative_width)
    cfg, counter = _coco_config(tiny_cfg, images, annotations), StepCounter()
    with pytest.raises(Exception) as raised:
        train(cfg, callbacks=[counter])
    error = raised.value if isinstance(raised.value, DatasetError) else raised.value.__cause__
    assert isinstance(error, DatasetError), raised.value
    assert f"annotation file {annotations} (train split)" in str(error)
    assert "annotation id 13 (image 3): 'bbox' [8, 8, -24, 20] has a negative width or height" in str(error)
    assert counter.steps == 0 and not list((tmp_path / "run1").rglob("*.ckpt"))

    images, annotations = write_tiny_coco(tmp_path / "whole")
    counter = StepCounter()
    summary = train(_coco_config(tiny_cfg, images, annotations), callbacks=[counter])
    assert counter.steps == 2 and summary.best_value is not None


def _compose_coco(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("config", overrides=["data=coco", "data.train_scales=[64]", "data.eval_scale=64", *overrides])


def test_data_coco_builds_from_its_four_paths_alone_and_without_them_names_the_keys(tmp_path):
    images, annotations = write_tiny_coco(tmp_path)
    paths = [
        f"data.{split}_{kind}={images if kind == 'images' else annotations}"
        for split in ("train", "val")
        for kind in ("images", "annotations")
    ]
    try:
        module = instantiate(_compose_coco(*paths).data)
        assert module.num_classes == 2 and module.paths["val"] == (images, annotations)
        with pytest.raises(Exception) as raised:
            instantiate(_compose_coco().data)
    finally:
        GlobalHydra.instance().clear()
    error = raised.value.__cause__ or raised.value
    assert isinstance(error, DatasetError) and "set data.root" in str(error)
    assert "data.train_images, data.train_annotations, data.val_images and data.val_annotations" in str(error)
