"""A strategy whose unfreeze epoch lies past the run's last epoch is tagged and logged as what ran: with
`finetune_strategy=frozen train.unfreeze_backbone_at_epoch=99` the backbone never trains, so `strategy=frozen`,
and the warning that those stages never train is kept."""

import logging

from mlflow.tracking import MlflowClient

from detr_ft.train import train
from detr_ft.training.loop.finetuning import UnfreezePlan, preset_mismatch
from tests.conftest import mlflow_store

STAGES = ["layer2", "layer3", "layer4"]


def test_a_plan_within_the_runs_epochs_drops_the_stages_that_never_start():
    asked = UnfreezePlan(STAGES, True, 99)
    assert asked.kind == "progressive" and asked.within(1).kind == "frozen"
    assert asked.within(1).describe() == "backbone frozen throughout"
    assert preset_mismatch("frozen", asked.within(1)) is None
    partly = UnfreezePlan(STAGES, True, -1, {"layer4": 1, "layer3": 5}).within(3)
    assert partly.start_epochs == {"layer4": 1} and partly.kind == "progressive"
    assert "layer3" not in partly.describe()


def test_an_unfreeze_epoch_past_the_end_is_tagged_frozen_with_the_warning_kept(tiny_cfg, tmp_path, caplog):
    uri = mlflow_store(tmp_path)
    cfg = tiny_cfg("logger=mlflow", f"logger.tracking_uri={uri}", "finetune_strategy=frozen")
    cfg.train.unfreeze_backbone_at_epoch = 99  # the preset's own key, overridden after it as on the command line
    with caplog.at_level(logging.INFO, logger="detr_ft.training.loop.finetuning"):
        summary = train(cfg)
    tags = MlflowClient(uri).get_run(summary.mlflow_run_id).data.tags
    assert tags["strategy"] == "frozen" and tags["schedule"] == "backbone frozen throughout"
    assert tags["strategy_preset"] == "frozen"
    assert "fine-tuning strategy frozen: backbone frozen throughout" in caplog.text
    assert "past train.epochs=1" in caplog.text and "never train" in caplog.text
