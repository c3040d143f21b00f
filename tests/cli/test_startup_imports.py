"""Every entry point answers `--help`, `--cfg job` and a misspelt key without importing torch, Lightning or
MLflow (seconds of start-up each): only a job that runs needs them.

One fresh interpreter runs every command as `python -m` would (runpy, `__main__`) and lists, after each, the
heavy modules loaded so far; modules only accumulate, so the first command that loads one is the one at fault."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "pytorch_lightning", "lightning_fabric", "mlflow")
COMMANDS = [  # module, arguments, whether it exits with 0
    ("detr_ft", ["--help"], True),
    ("detr_ft", ["--cfg", "job", "finetune_strategy=frozen"], True),
    ("detr_ft", ["train.learnin_rate=1e-4"], False),
    ("detr_ft", ["--multirun", "train.learnin_rate=1e-4,2e-4"], False),
    ("detr_ft.predict", ["--help"], True),
    ("detr_ft.predict", ["treshold=0.5"], False),
    ("detr_ft.export", ["--help"], True),
    ("detr_ft.export", ["ovewrite=true"], False),
    ("detr_ft.compare", ["--help"], True),
    ("detr_ft.compare", ["logger.tracking_url=sqlite:///x.db"], False),
    ("detr_ft.check", ["--help"], True),
    ("detr_ft.check", ["data.train_sise=3"], False),
    ("detr_ft.pretrain_backbone", ["--help"], True),
    ("detr_ft.pretrain_backbone", ["epoch=3"], False),
]

RUNNER = """
import json, runpy, sys
from hydra.core.global_hydra import GlobalHydra

commands, heavy = json.loads(sys.argv[1])
for module, args, _ in commands:
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit:
        code = exit.code
    GlobalHydra.instance().clear()
    print("LOADED " + json.dumps({"exit": code, "loaded": sorted(name for name in heavy if name in sys.modules)}))
"""


@pytest.mark.light_process
def test_help_cfg_and_a_misspelt_key_import_no_torch_lightning_or_mlflow(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps([COMMANDS, HEAVY])],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(line[len("LOADED ") :]) for line in result.stdout.splitlines() if line.startswith("LOADED ")]
    assert len(reports) == len(COMMANDS), result.stdout[-3000:] + result.stderr[-3000:]
    for (module, args, succeeds), report in zip(COMMANDS, reports, strict=True):
        command = f"python -m {module} {' '.join(args)}"
        assert (report["exit"] in (0, None)) == succeeds, (command, report, result.stderr[-3000:])
        assert report["loaded"] == [], f"{command} imported {report['loaded']}"
    assert not list(tmp_path.iterdir()), "no outputs/, .hydra/ or log file where the commands ran"
