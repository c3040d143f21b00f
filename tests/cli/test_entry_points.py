"""The secondary entry points share the main app's command line: Hydra apps over their own small configs,
whose `--help` describes the tool and lists its keys, whose schema rejects a misspelt key by name, and
which leave nothing (outputs/, .hydra/, log files) in the folder they are run from. A misspelt key's error
lists the valid keys where the name went wrong, with the nearest one."""

import pytest

from tests.conftest import run_cli

TOOLS = [  # module, what --help must list, a misspelt override, the key the error suggests
    (
        "detr_ft",
        [
            "finetune_strategy: auto, frozen, full, progressive",
            "checkpoint_path:",
            "unfreeze_backbone_at_epoch:",
            "epochs:",
        ],
        "train.learnin_rate=1e-4",
        "train.learning_rate",
    ),
    (
        "detr_ft.predict",
        ["checkpoint: ???", "input: ???", "threshold: 0.7", "output: predictions"],
        "treshold=0.5",
        "threshold",
    ),
    (
        "detr_ft.export",
        ["checkpoint: ???", "output: ???", "half: true", "overwrite: false"],
        "ovewrite=true",
        "overwrite",
    ),
    (
        "detr_ft.compare",
        ["sweep: null", "runs: null", "metric: val/mAP", "tracking_uri: sqlite:///mlflow.db", "experiment_name"],
        "logger.tracking_url=sqlite:///x.db",
        "logger.tracking_uri",
    ),
    (
        "detr_ft.check",
        ["data:", "_target_: detr_ft.data.synthetic", "train_size: 800"],
        "data.train_sise=3",
        "data.train_size",
    ),
    (
        "detr_ft.pretrain_backbone",
        ["epochs: 4", "background_weight: 0.3", "output:", "model:", "data:"],
        "epoch=3",
        "epochs",
    ),
]


@pytest.mark.parametrize("module, keys, misspelt, nearest", TOOLS, ids=[tool[0] for tool in TOOLS])
def test_help_lists_the_keys_and_a_misspelt_key_fails_naming_it_and_the_valid_ones(
    tmp_path, module, keys, misspelt, nearest
):
    shown = run_cli(["-m", module, "--help"], cwd=tmp_path, timeout=180)
    assert shown.returncode == 0, shown.stderr
    for key in keys:
        assert key in shown.stdout, (key, shown.stdout)
    description, example = shown.stdout.split("Example:", 1)
    assert len(description.split()) > 30, "a paragraph saying what the tool does"
    assert f"python -m {module} " in example.split("==")[0]

    wrong = run_cli(["-m", module, misspelt], cwd=tmp_path, timeout=180)
    assert wrong.returncode != 0
    assert "Could not override" not in wrong.stderr, wrong.stderr  # our one line only, not Hydra's as well
    assert f"(did you mean {nearest}?). Valid keys under" in wrong.stderr, wrong.stderr
    listed = wrong.stderr.rsplit("Valid keys under", 1)[1].split(": ", 1)[1].split()
    assert f"{nearest.rsplit('.', 1)[-1]}," in listed or listed[-1] == nearest.rsplit(".", 1)[-1], listed
    assert not list(tmp_path.iterdir()), "a tool leaves no outputs/, .hydra/ or log file where it is run"
