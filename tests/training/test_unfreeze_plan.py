"""The fine-tuning guide's freeze/unfreeze semantics as a per-stage plan (no training involved)."""

import pytest

from detr_ft.finetuning import UnfreezePlan

STAGES = ["layer2", "layer3", "layer4"]


@pytest.mark.parametrize(
    "freeze, at_epoch, epoch, expected",
    [
        (True, -1, 0, []),  # frozen: never trains
        (True, -1, 99, []),
        (False, -1, 0, STAGES),  # full: trains from the start
        (True, 5, 4, []),  # progressive, N=5: epochs 0-4 frozen
        (True, 5, 5, STAGES),  # ... epoch 5 on trained
        (True, 0, 0, STAGES),  # N=0 unfreezes at the very start
    ],
)
def test_guide_semantics(freeze, at_epoch, epoch, expected):
    assert UnfreezePlan(STAGES, freeze, at_epoch).trainable_at(epoch) == expected


def test_gradual_schedule_last_stage_first():
    plan = UnfreezePlan(STAGES, True, -1, {"layer4": 3, "layer3": 5, "layer2": 7})
    assert plan.trainable_at(2) == []
    assert plan.trainable_at(3) == ["layer4"]
    assert plan.trainable_at(5) == ["layer3", "layer4"]
    assert plan.trainable_at(7) == STAGES


def test_schedule_with_unknown_stage_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"layer1.*trainable stages are \['layer2', 'layer3', 'layer4'\]"):
        UnfreezePlan(STAGES, True, -1, {"layer1": 2})


def test_warns_about_unfreeze_past_the_last_epoch():
    warnings = UnfreezePlan(STAGES, True, 10).warnings(epochs=10)
    assert len(warnings) == 1 and "past train.epochs=10" in warnings[0]
    assert UnfreezePlan(STAGES, True, 9).warnings(epochs=10) == []


def test_warns_when_not_frozen_but_an_unfreeze_epoch_is_set():
    warnings = UnfreezePlan(STAGES, False, 5).warnings(epochs=20)
    assert len(warnings) == 1 and "freeze_backbone is false" in warnings[0]


def test_describe():
    assert UnfreezePlan(STAGES, True, -1).describe() == "backbone frozen throughout"
    assert UnfreezePlan(STAGES, False, -1).describe() == "backbone trained from epoch 0"
    assert "layer4 from epoch 5" in UnfreezePlan(STAGES, True, 5).describe()


def test_train_values_that_override_the_chosen_preset_are_named():
    from omegaconf import OmegaConf

    from detr_ft.finetuning import preset_overrides

    frozen = OmegaConf.create({"name": "frozen", "freeze_backbone": True, "unfreeze_backbone_at_epoch": -1})
    as_preset = OmegaConf.create({"freeze_backbone": True, "unfreeze_backbone_at_epoch": -1})
    assert preset_overrides(as_preset, frozen) == []
    changed = OmegaConf.create({"freeze_backbone": True, "unfreeze_backbone_at_epoch": 2})
    assert preset_overrides(changed, frozen) == [
        "train.unfreeze_backbone_at_epoch=2 overrides the frozen preset's unfreeze_backbone_at_epoch=-1"
    ]


@pytest.mark.parametrize("schedule, message", [([3], "mapping"), ({"layer4": "soon"}, "integers")])
def test_a_schedule_that_is_not_stage_to_epoch_is_refused(schedule, message):
    with pytest.raises(ValueError, match=message):
        UnfreezePlan(STAGES, True, -1, schedule)
