"""The callbacks train(cfg) builds from `conf/callbacks/`, by name, and the references some need to others:
handed over here, so no callback finds another by scanning the trainer's list or relies on the file's order."""

from dataclasses import dataclass

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from detr_ft.training.evaluation.coco_evaluation import CocoEvaluation
from detr_ft.training.guards.early_stopping import EarlyStopping
from detr_ft.training.loop.checkpoint_callbacks import BestCheckpoint, LastCheckpoint
from detr_ft.training.loop.ema import ExponentialMovingAverage
from detr_ft.training.loop.finetuning import BackboneUnfreezing


@dataclass
class RunCallbacks:
    """The built callbacks by their config name; the ones others read are named properties."""

    built: dict[str, pl.Callback]

    @property
    def best_checkpoint(self) -> BestCheckpoint:
        return self.built["best_checkpoint"]

    @property
    def last_checkpoint(self) -> LastCheckpoint:
        return self.built["last_checkpoint"]

    @property
    def ema(self) -> ExponentialMovingAverage | None:
        return self.built.get("ema")

    @property
    def evaluation(self) -> CocoEvaluation | None:
        return self.built.get("coco_evaluation")

    @property
    def early_stopping(self) -> EarlyStopping | None:
        return self.built.get("early_stopping")

    @property
    def unfreezing(self) -> BackboneUnfreezing | None:
        return self.built.get("backbone_unfreezing")


def build_callbacks(nodes: DictConfig, config_yaml: str) -> RunCallbacks:
    """Every non-null node of `callbacks` built (run_metadata also gets the resolved config, the one value a
    node cannot interpolate), then each handed the others it reads."""
    built = {
        name: instantiate(node, **({"config_yaml": config_yaml} if name == "run_metadata" else {}))
        for name, node in nodes.items()
        if node is not None
    }
    callbacks = RunCallbacks(built)
    for name in ("best_checkpoint", "last_checkpoint"):
        if name not in built:
            raise ValueError(f"callbacks.{name} is required (the run summary and resume read it); it is null")
    callbacks.best_checkpoint.unfreezing, callbacks.best_checkpoint.ema = callbacks.unfreezing, callbacks.ema
    if "feature_cache" in built:
        built["feature_cache"].unfreezing = callbacks.unfreezing
    if "divergence_guard" in built:
        built["divergence_guard"].last_checkpoint = callbacks.last_checkpoint
    return callbacks
