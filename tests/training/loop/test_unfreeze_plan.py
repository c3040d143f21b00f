"""The fine-tuning guide's freeze/unfreeze semantics as a per-stage plan (no training involved)."""

import pytest

from detr_ft.training.loop.finetuning import UnfreezePlan

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


@pytest.mark.parametrize(
    "preset, freeze, at_epoch, schedule, warned",
    [
        ("progressive", True, 5, None, False),  # the README's command: progressive at another epoch is progressive
        ("progressive", True, 2, None, False),  # the lr_sweep / optuna_lr experiments
        ("progressive", True, -1, {"layer4": 3}, False),  # gradual is progressive too
        ("frozen", True, -1, None, False),
        ("full", False, -1, None, False),
        ("frozen", True, 2, None, True),  # frozen that unfreezes: it ran progressive
        ("full", True, -1, None, True),  # full that never trains the backbone: it ran frozen
        ("progressive", True, -1, None, True),  # progressive that never unfreezes
        ("progressive", True, 0, None, True),  # unfreezing at epoch 0 is full
    ],
)
def test_a_warning_only_when_overrides_make_the_preset_something_else(preset, freeze, at_epoch, schedule, warned):
    from detr_ft.training.loop.finetuning import preset_mismatch

    plan = UnfreezePlan(STAGES, freeze, at_epoch, schedule)
    warning = preset_mismatch(preset, plan)
    assert (warning is not None) == warned, warning
    if warned:
        assert f"finetune_strategy={preset}" in warning and plan.kind in warning


@pytest.mark.parametrize("schedule, message", [([3], "mapping"), ({"layer4": "soon"}, "integers")])
def test_a_schedule_that_is_not_stage_to_epoch_is_refused(schedule, message):
    with pytest.raises(ValueError, match=message):
        UnfreezePlan(STAGES, True, -1, schedule)
