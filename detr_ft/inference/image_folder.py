"""Detect objects in image files with a detr_ft checkpoint and write what was found: `detections.json` (COCO
results format plus `file_name` and `category_name`; boxes in the original image's pixels, category ids of the
annotation file the model was trained on) and a copy of each image with its boxes, class names and scores drawn.
Input images are never modified; an existing non-empty output folder is never written into (a numbered sibling,
`predictions_1`, ... is used instead). `python -m detr_ft.predict` is the command-line shell over it.
"""

import json
import sys
from pathlib import Path

import torch
from PIL import Image

from detr_ft.checkpoints.checkpoint_file import in_run_folder
from detr_ft.data.images import BadImageError, load_rgb
from detr_ft.inference.detector import Detector
from detr_ft.inference.drawing import PREDICTION_COLOUR, draw_boxes
from detr_ft.model.postprocess import to_coco_results

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def find_images(source: str | Path) -> list[Path]:
    """One image file, or a folder's image files (sorted by name, not recursive)."""
    source = Path(source).expanduser()
    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"input={source} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"input={source} does not exist (give an image file or a folder of images)")
    images = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"input folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def fresh_output_dir(output: str | Path) -> Path:
    """`output` if it is missing or empty, else the first missing `<output>_N` beside it: an earlier run's
    results, or a folder of the user's own images, are never overwritten."""
    output = Path(output).expanduser()
    candidate, number = output, 0
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = output.with_name(f"{output.name}_{number}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def predict(
    checkpoint: str | Path,
    input: str | Path,
    threshold: float = 0.7,
    output: str | Path = "predictions",
    device: str = "auto",
) -> Path:
    """Detect objects in `input` (an image or a folder) with `checkpoint`; returns the output folder,
    which holds detections.json and the drawn copies of the images."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold={threshold} must be between 0 and 1")
    checkpoint = in_run_folder(checkpoint, "best")  # a run folder: its best checkpoint
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint={checkpoint} does not exist")
    images = find_images(input)
    detector = Detector(checkpoint, device)
    folder = fresh_output_dir(output)
    names = detector.category_map.id_names
    results = []
    skipped = []
    for image_id, path in enumerate(images, start=1):
        try:
            image = load_rgb(path)
        except BadImageError as error:  # one unreadable file should not cost the whole folder's results
            print(f"skipped: {error}", file=sys.stderr)
            skipped.append(path.name)
            continue
        detections = detector(image)
        keep = detections["scores"] >= threshold
        kept = {key: value[keep] for key, value in detections.items()}
        found = to_coco_results([kept], [image_id], detector.category_map)
        for result in found:
            result.update(file_name=path.name, category_name=names.get(result["category_id"], "unknown"))
        results += found
        labels = [f"{r['category_name']} {r['score']:.2f}" for r in found]
        drawn = draw_boxes(image, kept["boxes"], labels, PREDICTION_COLOUR)
        _save_copy(drawn, folder / path.name)
        print(f"{path.name}: {len(found)} detections")
    (folder / "detections.json").write_text(json.dumps(results, indent=1))
    print(
        f"wrote {len(results)} detections for {len(images) - len(skipped)} images to {folder}"
        + (f"; skipped {len(skipped)} unreadable: {skipped}" if skipped else "")
    )
    if len(skipped) == len(images):
        raise ValueError(f"none of the input images could be read: {skipped}")
    return folder


def _save_copy(image: torch.Tensor, path: Path) -> None:
    """uint8 [3, H, W] -> an image file in the format its suffix names (lossy ones at high quality)."""
    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    if path.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        picture.save(path, quality=95)
    else:
        picture.save(path)
