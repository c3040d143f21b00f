"""What a run leaves in MLflow (tags, per-group learning rates, the backbone's state, COCO size metrics),
and fine-tuning from an MLflow run by id or by `runs:/` reference, on one real sqlite store."""

import subprocess
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import detr_ft
from detr_ft.train import train
from tests.conftest import compose_config, mlflow_store
from tests.training.recorders import InitialState


@pytest.fixture(scope="module")
def store(tmp_path_factory, data_cache):
    """A source run (4 classes) and a progressive fine-tune of it onto 6 classes, both recorded in MLflow."""
    root = tmp_path_factory.mktemp("mlflow_record")
    uri = mlflow_store(root)
    mlflow = ["logger=mlflow", f"logger.tracking_uri={uri}", "trainer.log_every_n_steps=1"]

    def run(name, *overrides):
        return train(compose_config([*mlflow, *overrides], root / name, data_cache))

    # Two epochs at val/mAP 0: the best checkpoint stays epoch 0 while last.ckpt is epoch 1, so a run id that
    # resolved to the wrong file would show.
    source = run("source", "data=synthetic", "logger.log_best_checkpoint=true", "train.epochs=2")
    finetuned = run(
        "finetune",
        "data=synthetic_v2",
        f"train.checkpoint_path={source.last_checkpoint}",
        "finetune_strategy=progressive",
        "train.unfreeze_backbone_at_epoch=1",
        "train.epochs=2",
    )
    client = MlflowClient(uri)
    return {"uri": uri, "root": root, "cache": data_cache, "source": source, "finetuned": finetuned, "client": client}


def test_the_run_is_tagged_with_what_ran(store):
    run = store["client"].get_run(store["finetuned"].mlflow_run_id)
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert tags["schedule"] == "backbone frozen at start; layer2 from epoch 1, layer3 from epoch 1"
    assert tags["class_head"] == "re-initialised"
    assert tags["weights_from"] == store["source"].last_checkpoint
    assert tags["dataset"] == "synthetic_v2"
    assert tags["model"] == "resnet18"
    assert tags["strategy"] == "progressive" and tags["strategy_preset"] == "progressive"
    package = Path(detr_ft.__file__).parent  # outside a git checkout (an installed wheel) the tag says "unknown"
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=package, capture_output=True, text=True)
    assert tags["git_commit"] == (git.stdout.strip() or "unknown")
    assert tags["best_checkpoint"] == store["finetuned"].best_checkpoint


def test_learning_rates_of_every_group_are_logged_per_step(store):
    client, run_id = store["client"], store["finetuned"].mlflow_run_id
    head = [m.value for m in sorted(client.get_metric_history(run_id, "lr/head"), key=lambda m: m.step)]
    layer3 = [m.value for m in sorted(client.get_metric_history(run_id, "lr/layer3"), key=lambda m: m.step)]
    assert head == pytest.approx([1e-4] * 8)
    assert layer3 == pytest.approx([0.0] * 4 + [1e-5] * 4)  # frozen for epoch 0, trained from epoch 1 (no warm-up)
    assert len(client.get_metric_history(run_id, "lr/layer2")) == 8


def test_the_backbones_trainable_stages_and_coco_size_metrics_are_logged(store):
    client, run_id = store["client"], store["finetuned"].mlflow_run_id
    stages = [
        m.value for m in sorted(client.get_metric_history(run_id, "backbone/trainable_stages"), key=lambda m: m.step)
    ]
    assert stages == [0.0, 2.0]
    metrics = store["client"].get_run(run_id).data.metrics
    for name in ("val/mAP", "val/mAP50", "val/mAP75", "val/mAP_small", "val/mAP_medium", "val/mAP_large", "val/AR100"):
        assert name in metrics, name
        assert len(client.get_metric_history(run_id, name)) == 2


def _model_state(checkpoint_path) -> dict:
    saved = torch.load(checkpoint_path, weights_only=True)["state_dict"]
    return {k.removeprefix("model."): v for k, v in saved.items() if k.startswith("model.")}


@pytest.mark.parametrize("reference", ["run_id", "runs_uri"])
def test_fine_tuning_from_an_mlflow_run_loads_its_best_checkpoint(store, reference):
    source = store["source"]
    name = source.best_checkpoint.rsplit("/", 1)[-1]
    value = source.mlflow_run_id if reference == "run_id" else f"'runs:/{source.mlflow_run_id}/{name}'"
    state = InitialState()
    overrides = [
        "data=synthetic",
        f"train.checkpoint_path={value}",
        "logger=none",
        f"logger.tracking_uri={store['uri']}",
    ]
    summary = train(compose_config(overrides, store["root"] / f"from_{reference}", store["cache"]), [state])
    assert summary.class_head == "loaded"
    expected = _model_state(source.best_checkpoint)
    assert not all(torch.equal(v, _model_state(source.last_checkpoint)[k]) for k, v in expected.items())
    assert state.state.keys() == expected.keys()
    assert all(torch.equal(state.state[k], expected[k]) for k in expected)
