"""The built-in data: a generator that writes a real COCO-format dataset of drawn shapes (image files
plus instances JSON) to a cache folder on first use and reuses it after.

Two class sets: `v1` (4 shapes, for pretraining) and `v2` (6 other shapes, for showing fine-tuning onto
new classes). Objects vary in size (12-45% of the image side), aspect, colour and position, may
overlap a little, and sit on gradient backgrounds with noise and clutter lines; some images are empty.
Deterministic by seed; the folder name is a hash of every setting, so settings never collide.
"""

import hashlib
import json
import math
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from detr_ft.data.datamodule import DetectionDataModule

GENERATOR_VERSION = 1  # bump when the drawing changes, so old caches are not reused
CLASS_SETS = {
    "v1": ["circle", "square", "triangle", "cross"],
    "v2": ["ring", "diamond", "star", "hexagon", "frame", "arrow"],
}


def _polygon(kind: str, x0: float, y0: float, w: float, h: float, rng: random.Random) -> list[tuple[float, float]]:
    """Outline points of a polygonal shape filling the box (x0, y0, w, h)."""
    cx, cy = x0 + w / 2, y0 + h / 2
    if kind == "triangle":
        return [(cx, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    if kind == "diamond":
        return [(cx, y0), (x0 + w, cy), (cx, y0 + h), (x0, cy)]
    if kind == "hexagon":
        return [(cx + w / 2 * math.cos(a), cy + h / 2 * math.sin(a)) for a in (math.pi / 3 * i for i in range(6))]
    if kind == "star":
        points = []
        for i in range(10):
            radius = 1.0 if i % 2 == 0 else 0.45
            angle = -math.pi / 2 + math.pi / 5 * i
            points.append((cx + w / 2 * radius * math.cos(angle), cy + h / 2 * radius * math.sin(angle)))
        return points
    if kind == "cross":
        t = 0.32
        xs = [x0, x0 + w * (0.5 - t / 2), x0 + w * (0.5 + t / 2), x0 + w]
        ys = [y0, y0 + h * (0.5 - t / 2), y0 + h * (0.5 + t / 2), y0 + h]
        return [
            (xs[1], ys[0]),
            (xs[2], ys[0]),
            (xs[2], ys[1]),
            (xs[3], ys[1]),
            (xs[3], ys[2]),
            (xs[2], ys[2]),
            (xs[2], ys[3]),
            (xs[1], ys[3]),
            (xs[1], ys[2]),
            (xs[0], ys[2]),
            (xs[0], ys[1]),
            (xs[1], ys[1]),
        ]
    if kind == "arrow":
        points = [(0, 0.35), (0.55, 0.35), (0.55, 0), (1, 0.5), (0.55, 1), (0.55, 0.65), (0, 0.65)]
        if rng.random() < 0.5:  # pointing left or right
            points = [(1 - px, py) for px, py in points]
        return [(x0 + px * w, y0 + py * h) for px, py in points]
    raise ValueError(kind)


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[float, float, float, float], colour, rng) -> None:
    x0, y0, w, h = box
    if kind == "circle":
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
    elif kind == "ring":
        draw.ellipse([x0, y0, x0 + w, y0 + h], outline=colour, width=max(2, round(min(w, h) * 0.18)))
    elif kind == "square":
        draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
    elif kind == "frame":
        draw.rectangle([x0, y0, x0 + w, y0 + h], outline=colour, width=max(2, round(min(w, h) * 0.18)))
    else:
        draw.polygon(_polygon(kind, x0, y0, w, h, rng), fill=colour)


def _background(size: int, rng: random.Random) -> Image.Image:
    """A colour gradient with noise and a few clutter lines (not objects: they carry no box)."""
    top = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
    bottom = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    noise = np.random.default_rng(rng.randrange(2**32)).integers(-12, 13, (size, size, 3))
    pixels = np.clip(top + (bottom - top) * t + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 4)):
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        draw.line(
            [(rng.uniform(0, size), rng.uniform(0, size)) for _ in range(2)], fill=colour, width=rng.randint(1, 2)
        )
    return image


def _overlap(a, b) -> float:
    """Intersection over the smaller box's area, for (x0, y0, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / min(a[2] * a[3], b[2] * b[3])


def _make_image(size: int, classes: list[str], rng: random.Random):
    """One image and its objects [(class index, (x0, y0, w, h))]."""
    image = _background(size, rng)
    draw = ImageDraw.Draw(image)
    objects = []
    count = 0 if rng.random() < 0.08 else rng.randint(1, 5)
    for _ in range(count * 10):  # placement attempts
        if len(objects) == count:
            break
        side = rng.uniform(0.12, 0.45) * size
        aspect = rng.uniform(0.75, 1.33)
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        box = (rng.uniform(0, size - w), rng.uniform(0, size - h), w, h)
        if any(_overlap(box, other) > 0.3 for _, other in objects):
            continue
        kind = rng.randrange(len(classes))
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        _draw_shape(draw, classes[kind], box, colour, rng)
        objects.append((kind, box))
    return image, objects


def _write_split(folder: Path, split: str, count: int, size: int, classes: list[str], seed: int) -> None:
    rng = random.Random(f"{seed}-{split}")
    (folder / split).mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        image, objects = _make_image(size, classes, rng)
        name = f"{image_id:06d}.png"
        image.save(folder / split / name)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        for kind, (x0, y0, w, h) in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": kind + 1,
                    "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(classes)]
    (folder / "annotations").mkdir(exist_ok=True)
    (folder / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )


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
    settings = json.dumps([GENERATOR_VERSION, variant, train_size, val_size, image_size, seed])
    folder = (
        Path(cache_dir).expanduser() / "synthetic" / f"{variant}-{hashlib.sha1(settings.encode()).hexdigest()[:10]}"
    )
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
