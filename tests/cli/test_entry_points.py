"""The secondary entry points share the main app's command line: Hydra apps over their own small configs,
whose `--help` describes the tool and lists its keys, whose schema rejects a misspelt key by name, and
which leave nothing (outputs/, .hydra/, log files) in the folder they are run from."""

import pytest

from tests.conftest import run_cli

TOOLS = [  # module, what --help must list, a misspelt override
    (
        "detr_ft",
        ["finetune_strategy: frozen, full, progressive", "checkpoint_path:", "unfreeze_backbone_at_epoch:", "epochs:"],
        "train.learnin_rate=1e-4",
    ),
    ("detr_ft.predict", ["checkpoint: ???", "input: ???", "threshold: 0.7", "output: predictions"], "treshold=0.5"),
    ("detr_ft.export", ["checkpoint: ???", "output: ???", "half: true", "overwrite: false"], "ovewrite=true"),
    (
        "detr_ft.compare",
        ["sweep: null", "runs: null", "metric: val/mAP", "tracking_uri: sqlite:///mlflow.db", "experiment_name"],
        "logger.tracking_url=sqlite:///x.db",
    ),
    ("detr_ft.data.check", ["data:", "_target_: detr_ft.data.synthetic", "train_size: 800"], "data.train_sise=3"),
]


@pytest.mark.parametrize("module, keys, misspelt", TOOLS, ids=[tool[0] for tool in TOOLS])
def test_help_lists_the_keys_and_a_misspelt_key_fails_naming_it(tmp_path, module, keys, misspelt):
    shown = run_cli(["-m", module, "--help"], cwd=tmp_path, timeout=180)
    assert shown.returncode == 0, shown.stderr
    for key in keys:
        assert key in shown.stdout, (key, shown.stdout)
    description, example = shown.stdout.split("Example:", 1)
    assert len(description.split()) > 30, "a paragraph saying what the tool does"
    assert f"python -m {module} " in example.split("==")[0]

    wrong = run_cli(["-m", module, misspelt], cwd=tmp_path, timeout=180)
    assert wrong.returncode != 0
    assert f"Could not override '{misspelt.split('=')[0]}'" in wrong.stderr, wrong.stderr
    assert not list(tmp_path.iterdir()), "a tool leaves no outputs/, .hydra/ or log file where it is run"
