from detr_ft.training.loop.lr_schedule import LearningRateSchedule


def test_constant_without_warmup_or_drops():
    schedule = LearningRateSchedule()
    assert [schedule.factor(step, 0) for step in range(3)] == [1.0, 1.0, 1.0]


def test_drops_by_epoch():
    schedule = LearningRateSchedule(lr_drop_epochs=(2, 4), lr_drop_factor=0.1)
    assert schedule.factor(0, 1) == 1.0
    assert abs(schedule.factor(0, 2) - 0.1) < 1e-12
    assert abs(schedule.factor(0, 5) - 0.01) < 1e-12


def test_unfreeze_warmup_is_linear_from_the_unfreeze_step():
    schedule = LearningRateSchedule(unfreeze_warmup_steps=4)
    factors = [schedule.factor(step, 3, unfreeze_step=10) for step in range(9, 16)]
    assert factors == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_global_warmup_and_unfreeze_warmup_multiply():
    schedule = LearningRateSchedule(warmup_steps=10, unfreeze_warmup_steps=2)
    assert abs(schedule.factor(4, 0, unfreeze_step=4) - 0.5 * 0.5) < 1e-12
