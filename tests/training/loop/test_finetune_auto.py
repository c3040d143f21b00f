"""finetune_strategy=auto: the guide's rule on the number of training images, applied by the unfreezing callback
when training starts (it knows the datamodule then), command-line keys winning."""

from types import SimpleNamespace

import pytest

from detr_ft.training.feature_cache.callback import run_plan
from detr_ft.training.loop import finetuning
from detr_ft.training.loop.finetune_auto import auto_choice, auto_settings
from detr_ft.training.loop.finetuning import BackboneUnfreezing


@pytest.mark.parametrize(
    ("images", "preset", "freeze", "unfreeze_at"),
    [
        (999, "frozen", True, -1),
        (1000, "progressive", True, 5),
        (10_000, "progressive", True, 5),
        (10_001, "full", False, -1),
    ],
)
def test_the_rule_on_the_number_of_training_images(images, preset, freeze, unfreeze_at):
    assert auto_choice(images) == (preset, {"freeze_backbone": freeze, "unfreeze_backbone_at_epoch": unfreeze_at})


def test_a_command_line_key_wins_over_the_rule():
    settings, tags = auto_settings((True, 2, None), 20_000, given={"train.unfreeze_backbone_at_epoch"})
    assert settings == (False, 2, None)
    assert tags == {"strategy_auto": "full", "strategy_auto_train_images": "20000"}


def fake_trainer(images: int, *callbacks) -> SimpleNamespace:
    counts = SimpleNamespace(per_image=(1,) * images)
    datamodule = SimpleNamespace(train_object_counts=lambda: counts)
    return SimpleNamespace(datamodule=datamodule, callbacks=list(callbacks), is_global_zero=True, loggers=[])


def fake_module() -> SimpleNamespace:
    return SimpleNamespace(model=SimpleNamespace(backbone=SimpleNamespace(trainable_stages=["layer3", "layer4"])))


@pytest.mark.parametrize(("images", "kind"), [(16, "frozen"), (5000, "progressive"), (20_000, "full")])
def test_the_unfreezing_callback_plans_what_the_rule_chose_and_tags_it(images, kind, monkeypatch):
    tagged = {}
    monkeypatch.setattr(finetuning, "MLFlowLogger", SimpleNamespace)
    monkeypatch.setattr(finetuning.tracking, "set_tags", lambda logger, tags: tagged.update(tags))
    callback = BackboneUnfreezing(True, -1, None, preset="auto", epochs=10)
    trainer = fake_trainer(images, callback)
    trainer.loggers = [SimpleNamespace()]
    callback.setup(trainer, fake_module(), "fit")
    cache_plan = run_plan(callback, fake_module().model.backbone, (True, -1, None))  # the yaml's frozen keys
    assert callback.plan.kind == kind and cache_plan is callback.plan  # the feature cache plans what auto chose
    assert tagged["strategy"] == kind
    assert (tagged["strategy_auto"], tagged["strategy_auto_train_images"]) == (kind, str(images))


def test_other_presets_are_left_alone():
    callback = BackboneUnfreezing(True, -1, None, preset="frozen", epochs=10)
    callback.setup(fake_trainer(20_000), fake_module(), "fit")
    assert callback.settings == (True, -1, None) and callback.plan.kind == "frozen"
