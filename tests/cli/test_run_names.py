from detr_ft.tracking.names import NAME_LIMIT, run_name_from_overrides


def test_sweep_overrides_make_a_readable_name_with_the_usual_swept_keys_first():
    name = run_name_from_overrides(["finetune_strategy=progressive", "train.learning_rate=5e-5"], "x")
    assert name == "lr=5e-5, progressive"
    assert run_name_from_overrides(["train.learning_rate=0.0002", "train.epochs=20"], "x") == "lr=2e-4, ep=20"


def test_a_sweep_job_is_named_by_the_keys_the_sweep_varies_only():
    job = ["model=detr_tiny", "train.epochs=1", "train.learning_rate=0.0002", "finetune_strategy=frozen"]
    name = run_name_from_overrides(job, "x", keys={"train.learning_rate", "finetune_strategy"})
    assert name == "lr=2e-4, frozen"


def test_long_names_are_cut_at_a_whole_override_and_say_so():
    many = [f"train.key{i}=value{i}" for i in range(20)] + ["train.learning_rate=1e-4"]
    name = run_name_from_overrides(many, "x")
    assert len(name) <= NAME_LIMIT and name.startswith("lr=1e-4, ") and name.endswith(", …")


def test_paths_and_repeated_keys_and_no_overrides():
    assert run_name_from_overrides(["hydra.run.dir=/tmp/a", "data.root=/d"], "frozen") == "frozen"
    assert run_name_from_overrides(["train.epochs=1", "train.epochs=3"], "x") == "ep=3"
