"""One image of the built-in data: a textured background and 0-5 shapes of contrasting colour, each with the
tight box of its drawn pixels inside the image (detr_ft/data/synthetic/__init__.py writes the dataset)."""

import math
import random

import numpy as np
from PIL import Image, ImageDraw

from detr_ft.data.synthetic.shapes import draw_shape

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


def make_image(size: int, classes: list[str], rng: random.Random):
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
