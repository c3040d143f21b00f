"""Whether a split can be trained on: the one validator (split.py) over the COCO form every format is read into,
its parts (categories and annotations, images and their files), the data config's values, and the data
check's printout."""

from detr_ft.data.checks.split import DatasetError, SplitReport, read_split, validate_split

__all__ = ["DatasetError", "SplitReport", "read_split", "validate_split"]
