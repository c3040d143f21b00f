"""The MLflow pyfunc face of a detr_ft model: `mlflow.pyfunc.load_model("runs:/<id>/model")` (or
`models:/NAME@best`, or `mlflow models serve`) gives a detector whose `predict` takes images and returns what
`detr_ft.predict` writes to detections.json.

Loading runs no pickled code: the logged model is "models from code" (pyfunc_code.py names this class),
and its weights are a weights-only detr_ft checkpoint read with `torch.load(weights_only=True)` through
`Detector`, which also refuses a stored config that names anything but detr_ft.model classes.
"""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch

from detr_ft.data.images import load_rgb
from detr_ft.inference.detector import Detector
from detr_ft.model.postprocess import to_coco_results

WEIGHTS = "weights"  # the logged model's artifact: a weights-only .ckpt
DEFAULT_THRESHOLD = 0.7  # as detr_ft.predict's
COLUMNS = ["image_id", "file_name", "category_id", "category_name", "bbox", "score"]


class DetectorModel(mlflow.pyfunc.PythonModel):
    """predict(images, params={"threshold": 0.7}) -> one row per detection (COLUMNS): image_id is the image's
    position in the input from 1, file_name its file's name ("" for an array), category_id the annotation
    file's id, bbox [x, y, width, height] in the image's own pixels, score."""

    # No type-hint validation (MLflow warns at class creation without hints): predict takes several input types
    # no one hint describes; the logged signature is given explicitly (detr_ft/inference/model_logging.py).
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self.detector = Detector(context.artifacts[WEIGHTS], device="auto")

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        threshold = float((params or {}).get("threshold", DEFAULT_THRESHOLD))
        categories = self.detector.category_map
        rows = []
        for image_id, (file_name, image) in enumerate(_images(model_input), start=1):
            detections = self.detector(image)
            keep = detections["scores"] >= threshold
            found = to_coco_results([{k: v[keep] for k, v in detections.items()}], [image_id], categories)
            for row in found:
                row.update(file_name=file_name, category_name=categories.id_names.get(row["category_id"], "unknown"))
            rows += found
        return pd.DataFrame(rows, columns=COLUMNS)


def _images(model_input) -> list[tuple[str, torch.Tensor]]:
    """A DataFrame (its first column), a list or 1-D array of paths and/or HxWx3 uint8 arrays, or one such
    array (or a batch NxHxWx3) -> [(file name or "", uint8 [3, H, W])]."""
    if isinstance(model_input, pd.DataFrame):
        model_input = model_input.iloc[:, 0].tolist()
    elif isinstance(model_input, np.ndarray) and model_input.ndim in (3, 4) and model_input.dtype != object:
        model_input = [model_input] if model_input.ndim == 3 else list(model_input)
    elif isinstance(model_input, (str, Path)):
        model_input = [model_input]
    return [_one_image(item) for item in list(model_input)]


def _one_image(item) -> tuple[str, torch.Tensor]:
    if isinstance(item, (str, Path)):
        return Path(item).name, load_rgb(item)
    pixels = np.asarray(item)
    whole = np.issubdtype(pixels.dtype, np.integer) and (pixels.size == 0 or 0 <= pixels.min() <= pixels.max() <= 255)
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or not whole:  # JSON (a served request) turns uint8 into int64
        raise ValueError(
            f"an image array must be [height, width, 3] of 0..255 integers; got {pixels.dtype} {pixels.shape}"
        )
    return "", torch.from_numpy(pixels.astype(np.uint8)).permute(2, 0, 1).contiguous()
