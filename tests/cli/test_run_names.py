from detr_ft.tracking import run_name_from_overrides


def test_sweep_overrides_make_a_readable_name():
    name = run_name_from_overrides(["finetune_strategy=progressive", "train.learning_rate=5e-5"], "x")
    assert name == "progressive-lr5e-05"


def test_no_overrides_gives_the_default():
    assert run_name_from_overrides(["hydra.run.dir=/tmp/a"], "frozen") == "frozen"
