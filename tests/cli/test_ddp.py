"""DDP on the CPU: `trainer=ddp_cpu` (gloo, 2 processes) runs a progressive fine-tuning that unfreezes mid-run,
into one run folder, one set of checkpoints and one MLflow run, prints the summary once, and its gathered
validation metrics equal one process's on a validation set of odd size (the sampler pads it to 8 for 2 ranks).
One DDP launch serves every assertion: each costs seconds of process start-up."""

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from detr_ft.checkpoints import checkpoint_file
from detr_ft.config.schema import ASSETS_DIR
from tests.conftest import compose_config, run_app_with_mlflow

# The shipped checkpoint on the classes it knows: a val/mAP well above 0, so equality means something.
RUN = [
    "model=detr_small",
    "data.image_size=128",
    "data.train_scales=[128]",
    "data.eval_scale=128",
    "data.max_size=128",
    "data.train_size=8",
    "data.val_size=7",
    "train.batch_size=2",
    "train.epochs=2",
    "finetune_strategy=progressive",
    "train.unfreeze_backbone_at_epoch=1",
    f"train.checkpoint_path={ASSETS_DIR / 'synthetic_pretrained.ckpt'}",
]


def _one_process_metrics(checkpoint, tmp_path) -> dict[str, float]:
    """Validation of the checkpoint's weights by one process, as the app composes model and data."""
    cfg = compose_config(RUN, tmp_path / "single", tmp_path / "cache")
    datamodule = instantiate(cfg.data, batch_size=2, num_workers=0)
    model = instantiate(cfg.model, num_classes=datamodule.num_classes)
    model.load_state_dict(checkpoint_file.read(checkpoint).model_state)
    module = instantiate(
        cfg.module, model=model, criterion=instantiate(cfg.criterion, num_classes=datamodule.num_classes)
    )
    evaluation = instantiate(cfg.callbacks.coco_evaluation, detections_file=None)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[evaluation], enable_progress_bar=False)
    (metrics,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    return metrics


def test_ddp_on_cpu_runs_a_progressive_fine_tuning_once_with_gathered_metrics(tmp_path):
    result, uri = run_app_with_mlflow(tmp_path, "trainer=ddp_cpu", *RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("detr_ft run summary") == 1

    (run_dir,) = [p.parent for p in (tmp_path / "outputs").glob("*/*/config.yaml")]
    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(saved) == 2 and saved[1] == "last.ckpt" and saved[0].startswith("best_epoch=")

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("detr_ft").experiment_id])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "backbone/trainable_stages")
    assert [m.value for m in history] == [0.0, 2.0]  # detr_small's layer2 and layer3 unfroze at epoch 1

    single = _one_process_metrics(run_dir / "checkpoints" / "last.ckpt", tmp_path)
    for name in ("val/mAP", "val/mAP50", "val/mAP75", "val/AR100"):
        history = client.get_metric_history(run.info.run_id, name)
        gathered = max(history, key=lambda m: m.step).value  # the last epoch's (history is not ordered by step)
        assert gathered == pytest.approx(single[name], abs=1e-6), (name, [(m.step, m.value) for m in history])
    assert single["val/mAP"] > 0.1
