"""Impossible `train.*` values stop the run before any data is read, with a message naming the key and what is
valid (not torch's `Invalid learning rate` traceback from inside the optimizer)."""

import pytest

import detr_ft.train
from detr_ft.train import train

CASES = [
    ("train.learning_rate=-1e-4", "train.learning_rate must be >= 0"),
    ("train.backbone_learning_rate=-1e-5", "train.backbone_learning_rate must be >= 0"),
    ("train.weight_decay=-0.1", "train.weight_decay must be >= 0"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("train.epochs=0", "train.epochs must be >= 1"),
    ("train.gradient_clip_val=-1", "train.gradient_clip_val must be >= 0"),
    ("train.lr_drop_factor=0", "train.lr_drop_factor must be > 0"),
    ("train.warmup_steps=-5", "train.warmup_steps must be >= 0"),
    ("train.num_workers=-1", "train.num_workers must be >= 0"),
    ("train.lr_drop_epochs=[3,-1]", "train.lr_drop_epochs must list epochs >= 0"),
]


@pytest.mark.parametrize(("override", "message"), CASES)
def test_an_impossible_train_value_stops_before_any_data_is_read_naming_the_key(
    tiny_cfg, monkeypatch, override, message
):
    built = []
    real = detr_ft.train.instantiate
    monkeypatch.setattr(detr_ft.train, "instantiate", lambda node, *a, **k: built.append(node) or real(node, *a, **k))
    cfg = tiny_cfg(override)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        train(cfg)
    assert cfg.data not in built  # the datamodule was never built


def test_a_value_that_is_not_a_number_is_refused():
    from detr_ft.config.schema import TrainConfig
    from detr_ft.config.value_checks import check_train_values

    with pytest.raises(ValueError, match="train.learning_rate must be >= 0 .*got nan"):
        check_train_values(TrainConfig(learning_rate=float("nan")))


def test_the_guides_values_pass(tiny_cfg):
    from detr_ft.config.value_checks import check_train_values

    check_train_values(
        tiny_cfg("train.backbone_learning_rate=0", "train.weight_decay=0", "train.gradient_clip_val=0").train
    )
