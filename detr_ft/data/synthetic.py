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
import math
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from detr_ft.data.datamodule import DetectionDataModule
from detr_ft.data.shapes import draw_shape

GENERATOR_VERSION = 2  # bump when the drawing changes, so old caches are not reused
CLASS_SETS = {
    "v1": ["circle", "square", "triangle", "cross"],
    "v2": ["ring", "diamond", "star", "hexagon", "frame", "arrow"],
}
EMPTY_FRACTION = 0.08  # images without objects: DETR learns "no object" from them too
MIN_CONTRAST = 100.0  # RGB distance between an object and the mean colour under it
OFF_EDGE_FRACTION = 0.15  # objects allowed to run up to 30% of their size off the image


def _random_colour(rng: random.Random) -> np.ndarray:
    return np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)


def _background(size: int, rng: random.Random) -> Image.Image:
    """A gradient, smooth blotches or soft stripes, plus pixel noise and a few clutter lines."""
    kind = rng.choice(("gradient", "blotches", "stripes"))
    grid = np.linspace(0, 1, size, dtype=np.float32)
    if kind == "gradient":  # two colours along a random direction
        angle = rng.uniform(0, 2 * math.pi)
        t = math.cos(angle) * grid[None, :] + math.sin(angle) * grid[:, None]
        t = ((t - t.min()) / (t.max() - t.min() + 1e-6))[..., None]
        pixels = _random_colour(rng) * (1 - t) + _random_colour(rng) * t
    elif kind == "blotches":  # a coarse random colour grid, smoothly upsampled, muted so blotches
        cells = rng.randint(4, 8)  # read as texture rather than as unlabelled round objects
        coarse = np.array([[_random_colour(rng) for _ in range(cells)] for _ in range(cells)], dtype=np.uint8)
        blotches = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)
        strength = rng.uniform(0.25, 0.5)
        pixels = _random_colour(rng) * (1 - strength) + blotches * strength
    else:  # a base colour with sinusoidal stripes of another at a random angle and period
        angle, period = rng.uniform(0, math.pi), rng.uniform(0.08, 0.3)
        phase = (math.cos(angle) * grid[None, :] + math.sin(angle) * grid[:, None]) / period
        t = (0.5 + 0.5 * np.sin(2 * math.pi * phase))[..., None] * rng.uniform(0.3, 0.7)
        pixels = _random_colour(rng) * (1 - t) + _random_colour(rng) * t
    noise = np.random.default_rng(rng.randrange(2**32)).integers(-12, 13, (size, size, 3))
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 4)):
        ends = [(rng.uniform(0, size), rng.uniform(0, size)) for _ in range(2)]
        draw.line(ends, fill=tuple(int(c) for c in _random_colour(rng)), width=rng.randint(1, 2))
    return image


def _overlap(a, b) -> float:
    """Intersection over the smaller box's area, for (x0, y0, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / min(a[2] * a[3], b[2] * b[3])


def _contrasting_colour(under: np.ndarray, rng: random.Random) -> tuple[int, int, int]:
    """A random colour at least MIN_CONTRAST from `under` (the mean colour it is drawn on), or the most
    distant of a few tries."""
    best, best_distance = None, -1.0
    for _ in range(12):
        colour = _random_colour(rng)
        distance = float(np.linalg.norm(colour - under))
        if distance >= MIN_CONTRAST:
            return tuple(int(c) for c in colour)
        if distance > best_distance:
            best, best_distance = colour, distance
    return tuple(int(c) for c in best)


def _place(size: int, rng: random.Random) -> tuple[float, float, float, float]:
    """A box (x0, y0, w, h) of 12-45% of the image side; some run partly off the image."""
    side = rng.uniform(0.12, 0.45) * size
    aspect = rng.uniform(0.75, 1.33)
    w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
    off = 0.3 if rng.random() < OFF_EDGE_FRACTION else 0.0
    return (rng.uniform(-off * w, size - (1 - off) * w), rng.uniform(-off * h, size - (1 - off) * h), w, h)


def _make_image(size: int, classes: list[str], rng: random.Random):
    """One image and its objects [(class index, (x0, y0, w, h) tight box of its visible pixels)]."""
    image = _background(size, rng)
    objects = []
    count = 0 if rng.random() < EMPTY_FRACTION else rng.randint(1, 5)
    for _ in range(count * 10):  # placement attempts
        if len(objects) == count:
            break
        box = _place(size, rng)
        if any(_overlap(box, other) > 0.3 for _, other in objects):
            continue
        kind = rng.randrange(len(classes))
        mask = Image.new("L", (size, size))  # the object's own pixels: its exact box and what lies under it
        draw_shape(ImageDraw.Draw(mask), classes[kind], box, 255, rng)
        visible = mask.getbbox()
        if visible is None or (visible[2] - visible[0]) * (visible[3] - visible[1]) < 0.4 * box[2] * box[3]:
            continue  # mostly off the image: not a fair object to label
        under = np.asarray(image, dtype=np.float32)[np.asarray(mask) > 0].mean(axis=0)
        image.paste(_contrasting_colour(under, rng), mask=mask)
        left, top, right, bottom = visible
        objects.append((kind, (left, top, right - left, bottom - top)))
    return image, objects


def _write_split(folder: Path, split: str, count: int, size: int, classes: list[str], seed: int) -> None:
    rng = random.Random(f"{seed}-{split}")
    (folder / split).mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        image, objects = _make_image(size, classes, rng)
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
    if train_size < 1 or val_size < 1 or image_size < 32:
        raise ValueError(
            f"synthetic data needs data.train_size >= 1, data.val_size >= 1 and data.image_size >= 32, got "
            f"{train_size}, {val_size} and {image_size}"
        )
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
