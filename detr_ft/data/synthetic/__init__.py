"""The built-in data: a generator that writes a real COCO-format dataset of drawn shapes (image files
plus instances JSON) to a cache folder on first use and reuses it after.

Two class sets: `v1` (4 shapes, for pretraining) and `v2` (6 other shapes, for showing fine-tuning onto
new classes). Each image holds 1-5 objects (about 8% hold none) of 12-45% of the image side, of varied
aspect, colour and position; objects may occlude each other a little and a few run off the image edge.
Backgrounds are gradients, blotches or stripes with noise and clutter lines (which carry no box).
Every box is the tight box of the object's drawn pixels inside the image, so it is exact by
construction, and every object's colour stands out from what lies under it (no invisible labels).
Deterministic by seed; the folder name is a hash of every setting, so settings never collide.
"""

import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path

from detr_ft.data.checks.settings import check_settings
from detr_ft.data.datamodule import DetectionDataModule
from detr_ft.data.synthetic.scenes import make_image

GENERATOR_VERSION = 2  # bump when the drawing changes, so old caches are not reused
CLASS_SETS = {
    "v1": ["circle", "square", "triangle", "cross"],
    "v2": ["ring", "diamond", "star", "hexagon", "frame", "arrow"],
}


def _write_split(folder: Path, split: str, count: int, size: int, classes: list[str], seed: int) -> None:
    rng = random.Random(f"{seed}-{split}")
    (folder / split).mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        image, objects = make_image(size, classes, rng)
        name = f"{image_id:06d}.png"
        image.save(folder / split / name, compress_level=1)  # fast to write; the files stay small
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        for kind, (x0, y0, w, h) in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": kind + 1,
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(classes)]
    (folder / "annotations").mkdir(exist_ok=True)
    (folder / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )


def dataset_folder(cache_dir, variant, train_size, val_size, image_size, seed) -> Path:
    """Where these settings' dataset lives: a hash of every setting, so different ones never collide."""
    settings = json.dumps([GENERATOR_VERSION, variant, train_size, val_size, image_size, seed])
    digest = hashlib.sha1(settings.encode()).hexdigest()[:10]
    return Path(cache_dir).expanduser() / "synthetic" / f"{variant}-{image_size}px-{digest}"


def ensure_dataset(
    cache_dir: str | Path,
    variant: str = "v1",
    train_size: int = 1000,
    val_size: int = 100,
    image_size: int = 128,
    seed: int = 0,
) -> Path:
    """The dataset's folder (train/, val/, annotations/instances_{train,val}.json), generated if missing.

    Generated into a temporary folder and renamed, so an interrupted run never leaves half a dataset.
    """
    if variant not in CLASS_SETS:
        raise ValueError(f"data.variant must be one of {sorted(CLASS_SETS)}, got {variant!r}")
    check_settings(train_size=train_size, val_size=val_size, image_size=image_size, seed=seed)
    folder = dataset_folder(cache_dir, variant, train_size, val_size, image_size, seed)
    if (folder / "annotations" / "instances_val.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".generating-"))
    try:
        _write_split(staging, "train", train_size, image_size, CLASS_SETS[variant], seed)
        _write_split(staging, "val", val_size, image_size, CLASS_SETS[variant], seed)
        try:
            staging.rename(folder)
        except OSError:  # another process finished the same dataset first: keep theirs
            if not (folder / "annotations" / "instances_val.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def synthetic_datamodule(
    cache_dir: str,
    variant: str = "v1",
    train_size: int = 1000,
    val_size: int = 100,
    image_size: int = 128,
    seed: int = 0,
    **datamodule_args,
) -> DetectionDataModule:
    """`data=synthetic`: generate (first use) and return the datamodule over the generated files."""
    folder = ensure_dataset(cache_dir, variant, train_size, val_size, image_size, seed)
    return DetectionDataModule(
        train_images=str(folder / "train"),
        train_annotations=str(folder / "annotations" / "instances_train.json"),
        val_images=str(folder / "val"),
        val_annotations=str(folder / "annotations" / "instances_val.json"),
        **datamodule_args,
    )
