"""Detection data in plain PyTorch (plus a LightningDataModule), by floors that import only downwards:
images and categories (files, class ids); formats/ (COCO, Roboflow, YOLO, VOC and Hugging Face data read into
one COCO form); checks/ (the one validator of that form, which `python -m detr_ft.check` prints); the dataset,
transforms, batching and sampling; the datamodule; the overview picture and the built-in synthetic data."""

from detr_ft.data.categories import CategoryMap
from detr_ft.data.coco import CocoDetection
from detr_ft.data.datamodule import DetectionDataModule

__all__ = ["CategoryMap", "CocoDetection", "DetectionDataModule"]
