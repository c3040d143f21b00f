"""`python -m detr_ft` as a user runs it: config errors fail fast, a real tiny run leaves checkpoints,
COCO metrics and an MLflow run with params, metrics and the prediction picture."""

import re
import shutil
import subprocess
import sys

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from detr_ft.config.schema import config_dir
from tests.conftest import REPO, run_app_with_mlflow, run_cli

GROUP_OPTIONS = {
    "model": ["detr_tiny", "detr_small", "detr_r18", "detr_r50", "detr_r101"],
    "data": ["synthetic", "synthetic_v2", "coco"],
    "finetune_strategy": ["auto", "frozen", "full", "progressive"],
    "trainer": ["default", "cpu", "gpu", "ddp"],
    "logger": ["mlflow", "none"],
}


@pytest.mark.parametrize("group, option", [(g, o) for g, options in GROUP_OPTIONS.items() for o in options])
def test_every_config_group_option_builds_what_it_names(group, option):
    """Each option composes with the defaults and builds: models into the architecture they describe (random
    weights, no download), trainers into valid Trainer arguments, strategies into their preset's plan."""
    from hydra.utils import instantiate

    from detr_ft.config.value_checks import check_trainer_keys

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"{group}={option}", "model.backbone.weights=null"])
    GlobalHydra.instance().clear()
    if group == "model":
        model = instantiate(cfg.model, num_classes=3)
        criterion = instantiate(cfg.criterion, num_classes=3)
        assert model.backbone.name == cfg.model.backbone.name and model.num_queries == cfg.model.num_queries
        assert model.transformer.d_model == cfg.model.transformer.d_model
        assert len(model.transformer.decoder.layers) == cfg.model.transformer.num_decoder_layers
        assert criterion.class_weight[-1].item() == pytest.approx(0.1) and criterion.weights["loss_bbox"] == 5
    elif group == "trainer":
        check_trainer_keys(cfg.trainer)
        assert cfg.trainer.accelerator == {"default": "auto", "cpu": "cpu", "gpu": "gpu", "ddp": "gpu"}[option]
    elif group == "finetune_strategy":
        assert cfg.finetune_strategy.name == option
        expected = {"auto": (True, -1), "frozen": (True, -1), "full": (False, -1), "progressive": (True, 5)}[option]
        assert (cfg.train.freeze_backbone, cfg.train.unfreeze_backbone_at_epoch) == expected
    elif group == "data":
        assert cfg.data.name == option
    else:
        assert (
            cfg.logger._target_
            == {"mlflow": "detr_ft.tracking.mlflow_logger", "none": "detr_ft.tracking.no_logger"}[option]
        )


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (REPO / "experiments").glob("*.yaml")))
def test_every_experiment_composes_without_a_preset_warning(experiment):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"])
        assert cfg.train.epochs >= 1
    GlobalHydra.instance().clear()
    assert _preset_warning(cfg) is None


def _preset_warning(cfg) -> str | None:
    from hydra.utils import instantiate

    from detr_ft.training.loop.finetuning import UnfreezePlan, preset_mismatch

    callback = instantiate(cfg.callbacks.backbone_unfreezing)  # what the run's strategy callback is given
    plan = UnfreezePlan(list(cfg.model.backbone.trainable_stages), *callback.settings)
    return preset_mismatch(callback.preset, plan)


@pytest.mark.parametrize(
    "overrides, warned",
    [
        (["finetune_strategy=progressive", "train.unfreeze_backbone_at_epoch=5"], False),  # the README's command
        (["finetune_strategy=progressive", "train.unfreeze_backbone_at_epoch=2"], False),
        (["finetune_strategy=frozen"], False),
        (["finetune_strategy=full"], False),
        (["finetune_strategy=frozen", "train.unfreeze_backbone_at_epoch=2"], True),  # frozen that unfreezes
    ],
)
def test_the_readmes_strategy_commands_warn_only_when_a_preset_changes_kind(overrides, warned):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    GlobalHydra.instance().clear()
    assert (_preset_warning(cfg) is not None) == warned


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.learnin_rate=1e-4", "learnin_rate"),
        ("train.epochs=many", "epochs"),
        ("trainer.max_epoch=3", "max_epoch"),
    ],
)
def test_bad_config_fails_fast_naming_the_key(tmp_path, override, named):
    result = run_cli(
        ["-m", "detr_ft", override, f"hydra.run.dir={tmp_path}/run", "logger=none", f"data.cache_dir={tmp_path}/cache"],
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    assert named in result.stderr + result.stdout
    assert not (tmp_path / "cache").exists(), "no data may be read or generated before the config is valid"


def test_cfg_job_prints_the_resolved_config(tmp_path):
    result = run_cli(["-m", "detr_ft", "--cfg", "job", "finetune_strategy=frozen"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "unfreeze_backbone_at_epoch" in result.stdout and "name: frozen" in result.stdout


@pytest.mark.slow
def test_a_real_tiny_run_leaves_checkpoints_metrics_and_an_mlflow_run(tmp_path):
    result, tracking_uri = run_app_with_mlflow(
        tmp_path,
        "train.epochs=2",
        "finetune_strategy=progressive",
        "train.unfreeze_backbone_at_epoch=1",
        "trainer.log_every_n_steps=1",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints
    best = [name for name in checkpoints if name != "last.ckpt"]
    assert len(best) == 1 and re.fullmatch(r"best_epoch=\d+-step=\d+-val_mAP=\d+\.\d{4}\.ckpt", best[0]), best
    assert (tmp_path / "run" / "val_detections_best.json").is_file()
    assert "detr_ft run summary" in result.stdout and "MLflow run id" in result.stdout

    client = mlflow.tracking.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("detr_ft").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["train/learning_rate"] == "0.0001"
    assert run.data.tags["strategy"] == "progressive"
    assert run.data.tags["best_checkpoint"].endswith(best[0])
    for metric in ("val/mAP", "val/mAP50", "val/mAP75", "val/AR100", "train/loss", "lr/head"):
        assert metric in run.data.metrics, metric
    assert len(client.get_metric_history(run.info.run_id, "val/mAP")) == 2
    pictures = [a.path for a in client.list_artifacts(run.info.run_id, "predictions")]
    assert any(p.endswith(".png") for p in pictures), pictures


def test_train_loss_monitor_gives_the_guides_checkpoint_name(tiny_cfg):
    from detr_ft.train import train

    summary = train(tiny_cfg("train.monitor=train_loss"))
    name = summary.best_checkpoint.rsplit("/", 1)[-1]
    assert re.fullmatch(r"best_epoch=0-step=\d+-train_loss=\d+\.\d{4}\.ckpt", name), name


@pytest.mark.slow
def test_the_installed_wheel_carries_its_configs_and_runs_from_any_folder(tmp_path):
    """Built and installed as users get it (not the source checkout): configs come from detr_ft/conf."""
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    for name in ("detr_ft", "conf", "experiments"):
        shutil.copytree(REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path / "wheel",
            source,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    site = tmp_path / "site"
    wheel = next((tmp_path / "wheel").glob("detr_ft-*.whl"))
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The wheel's folder goes first on sys.path, so its copy is imported, not the checkout's (-I: no cwd).
    code = "import sys, runpy; sys.path.insert(0, sys.argv.pop(1)); runpy.run_module('detr_ft', run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, str(site), "--cfg", "job", "--resolve", "experiment=quickstart"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "name: progressive" in result.stdout
    assert str(site / "detr_ft" / "assets" / "synthetic_pretrained.ckpt") in result.stdout


def test_a_config_file_of_ones_own_extends_the_built_in_one(tmp_path):
    """The fine-tuning guide's `--config`: a user's file elsewhere, building on `config`."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "frozen_short.yaml").write_text(
        "defaults:\n  - config\n  - override finetune_strategy: frozen\n  - _self_\ntrain:\n  epochs: 3\n"
    )
    args = ["-m", "detr_ft", "--config-dir", str(tmp_path / "mine"), "--config-name", "frozen_short", "--cfg", "job"]
    result = run_cli(args, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "epochs: 3" in result.stdout and "name: frozen" in result.stdout


def test_last_ckpt_holds_the_final_epoch_when_the_best_is_earlier(tiny_cfg):
    """With nothing learning (rate 0) the metric never improves after epoch 0: the best file stays at
    epoch 0 while last.ckpt must still follow every epoch, or a resume would go back in time."""
    import torch

    from detr_ft.train import train

    summary = train(tiny_cfg("train.epochs=3", "train.learning_rate=0", "train.backbone_learning_rate=0"))
    assert "best_epoch=0-" in summary.best_checkpoint
    last = torch.load(summary.last_checkpoint, weights_only=True)
    assert summary.last_checkpoint.endswith("checkpoints/last.ckpt")
    assert last["epoch"] == 2 and last["global_step"] == 3 * 4  # 16 images / batch 4 per epoch
