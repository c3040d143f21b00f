"""The small typed schemas of the secondary entry points (pretrain_backbone, predict, export, compare, check):
a misspelt key fails while Hydra composes, as it does for training."""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class TrackingStoreConfig:
    """Where MLflow runs live: `logger.*` of the main app and of `detr_ft.compare`, one spelling for both."""

    tracking_uri: str = "sqlite:///mlflow.db"  # also where run ids in train.checkpoint_path are looked up
    experiment_name: str = "detr_ft"


@dataclass
class BackbonePretrainingConfig:
    """conf/pretrain_backbone.yaml: `python -m detr_ft.pretrain_backbone` (model and data as above)."""

    epochs: int = 4
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    background_weight: float = 0.3
    core_fraction: float = 0.7
    num_workers: int = 1
    seed: int = 0
    output: str = MISSING
    overwrite: bool = False
    default_weights: str | None = None  # the model group's DETR weights: unused here
    model: Any = MISSING
    criterion: Any = MISSING
    data: Any = MISSING


@dataclass
class PredictConfig:
    """conf/predict.yaml: `python -m detr_ft.predict`."""

    checkpoint: str = MISSING  # a .ckpt written by `python -m detr_ft` or `python -m detr_ft.export`
    input: str = MISSING  # an image, or a folder of images
    threshold: float = 0.7
    output: str = "predictions"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    tracking_uri: str = "sqlite:///mlflow.db"  # where runs:/, models:/ and run-id checkpoints are looked up


@dataclass
class ExportConfig:
    """conf/export.yaml: `python -m detr_ft.export`."""

    checkpoint: str = MISSING
    output: str = MISSING
    format: str = "ckpt"  # ckpt (weights-only detr_ft checkpoint) | onnx
    half: bool = True  # ckpt: float16 weights, half the size
    image_size: int = 800  # onnx: the traced image size (the graph takes any size)
    opset: int = 18  # onnx: the ONNX opset version
    overwrite: bool = False


@dataclass
class CompareConfig:
    """conf/compare.yaml: `python -m detr_ft.compare`."""

    sweep: str | None = None
    runs: list[str] | None = None
    metric: str = "val/mAP"
    output: str | None = None
    logger: TrackingStoreConfig = field(default_factory=TrackingStoreConfig)


@dataclass
class CheckConfig:
    """conf/check.yaml: `python -m detr_ft.check` (the main config's `data` and `model` groups)."""

    data: Any = MISSING
    model: Any = MISSING  # only model.num_queries is read: images with more objects than queries are reported
    criterion: Any = MISSING  # the model group's; unused here
    default_weights: str | None = None  # the model group's; unused here
    overview: str | None = "dataset_overview.png"  # the dataset's picture, written when it has no errors; null: none
    decode: bool = True  # decode every image (finds damaged pixel data); false: header reads only, as training does
    export: str | None = None  # coco: write the data out in COCO form into `out` (when it has no errors)
    out: str | None = None  # export's folder: new or empty (nothing is overwritten)
