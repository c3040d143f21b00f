"""finetune_strategy=auto: the guide's rule on the number of training images, command-line keys winning."""

import pytest
from hydra.utils import instantiate

from detr_ft.training.finetune_auto import apply_auto_strategy, auto_choice


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


def test_auto_writes_the_choice_where_the_unfreezing_callback_reads_it_and_tags_the_count(tiny_cfg):
    cfg = tiny_cfg("finetune_strategy=auto")
    tags = apply_auto_strategy(cfg, 5000, given=set())
    assert tags == {"strategy_auto": "progressive", "strategy_auto_train_images": "5000"}
    assert instantiate(cfg.callbacks.backbone_unfreezing).settings == (True, 5, None)


def test_a_command_line_key_wins_over_the_rule(tiny_cfg):
    cfg = tiny_cfg("finetune_strategy=auto", "train.unfreeze_backbone_at_epoch=2")
    apply_auto_strategy(cfg, 20_000, given={"train.unfreeze_backbone_at_epoch"})
    assert (cfg.train.freeze_backbone, cfg.train.unfreeze_backbone_at_epoch) == (False, 2)


def test_other_presets_are_left_alone(tiny_cfg):
    cfg = tiny_cfg("finetune_strategy=frozen")
    assert apply_auto_strategy(cfg, 20_000, given=set()) == {}
    assert cfg.train.freeze_backbone is True
