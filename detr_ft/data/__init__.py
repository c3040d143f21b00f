"""COCO-format data in plain PyTorch (plus a LightningDataModule): dataset, transforms, batching,
the built-in synthetic data and the validator
(`python -m detr_ft.check` is its command line)."""

from detr_ft.data.categories import CategoryMap
from detr_ft.data.coco import CocoDetection
from detr_ft.data.datamodule import DetectionDataModule

__all__ = ["CategoryMap", "CocoDetection", "DetectionDataModule"]
