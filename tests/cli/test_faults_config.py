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


MODEL_CASES = [
    ("model.num_queries=0", "model.num_queries=0: want an integer >= 1"),
    ("model.query_groups=0", "model.query_groups=0: want an integer >= 1"),
    ("model.one_to_many_queries=-2", "model.one_to_many_queries=-2: want an integer >= 0"),
    ("model.query_groups_init=clone", "model.query_groups_init='clone': want copy or fresh"),
    ("model.transformer.d_model=63", "model.transformer.d_model=63: want an even integer >= 2"),
    ("model.transformer.nhead=3", "model.transformer.nhead=3: want a divisor of model.transformer.d_model=64"),
    ("model.transformer.num_decoder_layers=0", "model.transformer.num_decoder_layers=0: want an integer >= 1"),
    ("model.transformer.dim_feedforward=0", "model.transformer.dim_feedforward=0: want an integer >= 1"),
    ("model.transformer.dropout=1.5", "model.transformer.dropout=1.5: want a number >= 0 and < 1"),
    ("model.backbone.blocks_per_stage=[1,1,0,1]", "model.backbone.blocks_per_stage=[1, 1, 0, 1]: want null"),
]


@pytest.mark.parametrize(("override", "message"), MODEL_CASES)
def test_an_impossible_model_value_stops_before_any_data_is_read_naming_the_key(
    tiny_cfg, monkeypatch, override, message
):
    built = []
    real = detr_ft.train.instantiate
    monkeypatch.setattr(detr_ft.train, "instantiate", lambda node, *a, **k: built.append(node) or real(node, *a, **k))
    cfg = tiny_cfg(override)
    with pytest.raises(ValueError) as raised:
        train(cfg)
    assert message in str(raised.value)
    assert cfg.data not in built and cfg.model not in built  # neither the data nor the model was built


@pytest.mark.parametrize("model", ["detr_tiny", "detr_small", "detr_r18", "detr_r50", "detr_r101"])
def test_every_shipped_model_passes_the_model_checks(tiny_cfg, model):
    from detr_ft.config.model_checks import check_model_values

    check_model_values(tiny_cfg(f"model={model}").model)
